package exporter

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

var (
	testSymptomNames  = map[uint16]string{1: "MAIL", 4: "P2P", 9: "MP3"}
	testCategoryNames = map[uint16]string{1: "Web", 2: "Campus backup"}
)

// TestNamesOptionsRoundTrip exports records with the symptom and category
// names options over a byte stream and checks that the decoder reports
// the names and the records are intact.
func TestNamesOptionsRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	e := NewWriter(&buf, &Config{SymptomNames: testSymptomNames, CategoryNames: testCategoryNames})
	recs := ipfixtest.Samples()
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	domains := map[uint32]bool{}
	for _, r := range recs {
		domains[r.ObservationDomain] = true
	}
	want := len(domains) * (len(testSymptomNames) + len(testCategoryNames))
	if st := e.Stats(); st.OptionsRecords != uint64(want) {
		t.Fatalf("options records %d, want %d", st.OptionsRecords, want)
	}
	s := ipfix.NewSession("stream")
	got := map[uint32]ipfix.DomainOptions{}
	s.OnOptions = func(d uint32, o ipfix.DomainOptions) { got[d] = o }
	var out []flow.Record
	for b := buf.Bytes(); len(b) > 0; {
		h, ok := ipfix.ParseHeader(b)
		if !ok {
			t.Fatal("bad header")
		}
		var err error
		if out, _, err = s.Decode(b[:h.Length], out); err != nil {
			t.Fatal(err)
		}
		b = b[h.Length:]
	}
	if len(out) != len(recs) {
		t.Fatalf("%d records, want %d", len(out), len(recs))
	}
	for d := range domains {
		o := got[d]
		for id, n := range testSymptomNames {
			if o.Symptoms[id] != n {
				t.Errorf("domain %d symptom %d: %q, want %q", d, id, o.Symptoms[id], n)
			}
		}
		for id, n := range testCategoryNames {
			if o.Categories[id] != n {
				t.Errorf("domain %d category %d: %q, want %q", d, id, o.Categories[id], n)
			}
		}
	}
}

// TestIpfixDumpNames writes the names options to an RFC 5655 file and
// reads it with libfixbuf's ipfixDump: every flow record and symptom list
// decoded, and the names under MIRA's elements.
func TestIpfixDumpNames(t *testing.T) {
	dir := t.TempDir()
	e, err := New("file://"+dir, &Config{SymptomNames: testSymptomNames, CategoryNames: testCategoryNames, StreamMessageSize: 2000})
	if err != nil {
		t.Fatal(err)
	}
	recs := append(ipfixtest.Samples(), ipfixtest.Random(6, 200)...)
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "mira-*.ipfix"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	domains := map[uint32]bool{}
	for _, r := range recs {
		domains[r.ObservationDomain] = true
	}
	out := runIpfixDump(t, files[0])
	checkIpfixDump(t, out, recs, len(domains)*(len(testSymptomNames)+len(testCategoryNames)))
	for _, re := range []string{
		`tid:\s+389[^\n]*\n(?s:.*?)\(32473/11\) \(S\)\s+symptomId : 4\n\s*\(32473/16\)\s+symptomName : \(len: 3\) P2P\n`,
		`tid:\s+390[^\n]*\n(?s:.*?)\(32473/8\) \(S\)\s+categoryId : 2\n\s*\(32473/17\)\s+categoryName : \(len: 13\) Campus backup\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("ipfixDump output lacks %s", re)
		}
	}
}

// TestNfdumpNames sends records with the names options over UDP to a real
// nfcapd: nfdump must still show every flow with its packets and bytes
// (nfcapd 1.7.1 skips the options records; like the sampling options
// they cost one sequence error per options message, which is logged).
func TestNfdumpNames(t *testing.T) {
	n := peertest.StartNfcapd(t)
	recs := append(ipfixtest.Samples(), ipfixtest.Random(8, 200)...)
	e, err := New(fmt.Sprintf("udp://127.0.0.1:%d", n.Port), &Config{SymptomNames: testSymptomNames, CategoryNames: testCategoryNames})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	got := n.Records(t)
	if m := regexp.MustCompile(`Flows: (\d+), Packets: \d+, Bytes: \d+, Sequence Errors: (\d+), Bad Packets: (\d+)`).FindStringSubmatch(n.Log()); m != nil {
		t.Logf("nfcapd: %d flows, %s sequence errors, %s bad packets", len(recs), m[2], m[3])
	}
	if len(got) != len(recs) {
		t.Fatalf("nfdump shows %d flows, want %d", len(got), len(recs))
	}
	type pb struct{ p, b uint64 }
	want := map[flow.Key]pb{}
	for _, r := range recs {
		k := r.Key
		k.VLAN = 0
		w := want[k]
		want[k] = pb{w.p + r.Packets, w.b + r.Octets}
	}
	have := map[flow.Key]pb{}
	for _, f := range got {
		k := nfKey(t, &f)
		h := have[k]
		have[k] = pb{h.p + f.InPackets, h.b + f.InBytes}
	}
	for k, w := range want {
		if have[k] != w {
			t.Errorf("%v: nfdump %+v, want %+v", k, have[k], w)
		}
	}
}

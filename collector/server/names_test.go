package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/synth"
)

// otherSymptoms is a second symptom database: its ids (1, 2, ...) name
// other symptoms than the default database's (MAIL is 1 there).
const otherSymptoms = `version: 1
symptoms:
  - name: B-FTP
    description: FTP commands
    patterns:
      - {content: "USER ", anchor: line}
      - {content: "PASS ", anchor: line}
  - name: B-SMTP
    description: SMTP envelope
    patterns:
      - {content: "MAIL FROM:", nocase: true}
      - {content: "RCPT TO:", nocase: true}
`

// writeCapture writes a synthesised capture of SMTP and FTP sessions
// (seed, start) and returns its path.
func writeCapture(t *testing.T, name string, seed int64, start time.Time) string {
	t.Helper()
	cfg := synth.Default()
	cfg.Seed, cfg.Start, cfg.Flows = seed, start, 40
	cfg.Mix = []synth.Share{{App: "smtp", Weight: 1}, {App: "ftp", Weight: 1}}
	cfg.RandomShare, cfg.TunnelShare, cfg.LongFlows = 0, 0, 0
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := synth.WritePcap(cfg, f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// namesMessage is an IPFIX message of observation domain domain that
// only names symptoms and categories (well-formed options, no flows).
func namesMessage(domain uint32, names map[uint16]string) []byte {
	b := ipfix.AppendHeader(nil, ipfix.Header{ExportTime: uint32(time.Now().Unix()), Domain: domain})
	for _, tmpl := range []*ipfix.Template{ipfix.SymptomOptionsTemplate(0), ipfix.CategoryOptionsTemplate(0)} {
		var s int
		b, s = ipfix.AppendSetHeader(b, ipfix.OptionsSetID)
		b = ipfix.AppendTemplate(b, tmpl)
		b = ipfix.FinishSet(b, s, 0)
		b, s = ipfix.AppendSetHeader(b, tmpl.ID)
		for id, n := range names {
			b = ipfix.AppendNameRecord(b, id, n)
		}
		b = ipfix.FinishSet(b, s, 0)
	}
	if err := ipfix.FinishMessage(b); err != nil {
		panic(err)
	}
	return b
}

// TestNamesPerOrigin: two probes with different symptom databases export
// to one collector, and options from an observation domain that sends
// no flows name ids 0..16 as garbage (and are not stored at all). Each probe's flows keep the names
// of its own database, in `mira flows` and in `mira report` (where the
// default rules classify the first probe's MAIL flows as Mail).
func TestNamesPerOrigin(t *testing.T) {
	probe, coll := binaries(t)
	dir := t.TempDir()
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte(otherSymptoms), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	pcapA := writeCapture(t, "a.pcap", 1, t0)
	pcapB := writeCapture(t, "b.pcap", 2, t0.Add(time.Hour))
	c := startCollector(t, coll)

	runProbe(t, probe, pcapA, c.port, "--domain", "1")
	runProbe(t, probe, pcapB, c.port, "--domain", "2", "--symptoms", other)
	garbage := map[uint16]string{}
	for id := uint16(0); id <= 16; id++ {
		garbage[id] = "GARBAGE" + strconv.Itoa(int(id))
	}
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", c.port))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(namesMessage(77, garbage)); err != nil {
		t.Fatal(err)
	}
	// Closing our end makes the collector commit, confirm it with an
	// empty IPFIX message (collector.StoredAck) and close its end.
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(conn); err != nil || len(b) != ipfix.HeaderLen {
		t.Fatalf("collector answered %x (%v), want one empty IPFIX message", b, err)
	}
	conn.Close()
	c.stop(t)

	defaultNames := map[string]bool{}
	for _, n := range []string{"MAIL", "WEB", "FTP", "P2P", "MP3", "AUDIO", "VIDEO", "GAMES", "CHAT", "VOIP",
		"QUIC", "VPN", "REMOTE", "DATABASE", "NETMGMT",
		"TLS", "SSH", "DNS", "EXECUTABLE", "ARCHIVE"} {
		defaultNames[n] = true
	}
	otherNames := map[string]bool{"B-FTP": true, "B-SMTP": true}

	st, err := store.Open(c.db, &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Options of a domain that sends no flows are not even stored.
	x, err := st.NameIndex()
	if err != nil {
		t.Fatal(err)
	}
	for o := range x.Origins {
		if o.Domain == 77 {
			t.Errorf("names of domain 77 (no flows) stored: %+v", x.Origins[o])
		}
	}
	// `mira flows`, and `mira report` with the default rules, as JSON.
	var fl report.FlowList
	var rep report.Report
	l, err := report.FlowsFromStore(context.Background(), st, store.Query{}, report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := report.FromStoreQuery(context.Background(), st, store.Query{}, report.Options{Rules: classify.Default()})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, x := range []struct {
		w interface{ WriteJSON(io.Writer) error }
		v any
	}{{l, &fl}, {r, &rep}} {
		out.Reset()
		if err := x.w.WriteJSON(&out); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out.Bytes(), x.v); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint32]map[string]bool{1: {}, 2: {}}
	for _, f := range fl.Flows {
		want := defaultNames
		if f.Domain == 2 {
			want = otherNames
		}
		for name := range f.Symptoms {
			if !want[name] {
				t.Errorf("flow of domain %d has symptom %q, not one of its database", f.Domain, name)
			}
			seen[f.Domain][name] = true
		}
	}
	if !seen[1]["MAIL"] || !seen[1]["FTP"] || !seen[2]["B-SMTP"] || !seen[2]["B-FTP"] {
		t.Errorf("symptoms seen per domain: %v", seen)
	}

	mail := 0
	for _, b := range rep.Biflows {
		dom := strings.Join(b.Origins, ";")
		for name := range b.Symptoms {
			if strings.HasPrefix(name, "GARBAGE") || (dom == "127.0.0.1/1") != defaultNames[name] {
				t.Errorf("biflow of %s has symptom %q", dom, name)
			}
		}
		if dom == "127.0.0.1/1" && b.Symptoms["MAIL"] > 0 {
			mail++
			if b.Category != "Mail" {
				t.Errorf("biflow of %s with MAIL symptoms is %q, want Mail", dom, b.Category)
			}
		}
	}
	if mail == 0 {
		t.Error("no MAIL biflow of domain 1 in the report")
	}
}

package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/flow"
	"github.com/mira-project/mira/collector/store"
)

// corpusDir is the shared capture corpus, relative to this package.
const corpusDir = "../../../shared/corpus/generated"

func requirePeers() bool { return os.Getenv("MIRA_REQUIRE_PEERS") == "1" }

// corpusFile returns the path of a corpus file, skipping the test when the
// corpus is absent (failing under MIRA_REQUIRE_PEERS=1).
func corpusFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(corpusDir, name)
	if _, err := os.Stat(p); err != nil {
		if requirePeers() {
			t.Fatalf("corpus file missing: %v", err)
		}
		t.Skipf("corpus file missing: %v", err)
	}
	return p
}

// nfdumpRecord is the part of nfdump's -o json output the tests use.
type nfdumpRecord struct {
	First      string `json:"first"`
	Last       string `json:"last"`
	InPackets  uint64 `json:"in_packets"`
	InBytes    uint64 `json:"in_bytes"`
	OutPackets uint64 `json:"out_packets"`
	OutBytes   uint64 `json:"out_bytes"`
	Proto      uint8  `json:"proto"`
	TCPFlags   string `json:"tcp_flags"`
	SrcPort    uint16 `json:"src_port"`
	DstPort    uint16 `json:"dst_port"`
	Src4       string `json:"src4_addr"`
	Dst4       string `json:"dst4_addr"`
	Src6       string `json:"src6_addr"`
	Dst6       string `json:"dst6_addr"`
}

func readNfdumpJSON(t *testing.T, path string) []nfdumpRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []nfdumpRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs
}

// nfdump prints local time without a zone; the corpus was made in UTC.
func nfdumpTime(t *testing.T, s string) int64 {
	v, err := time.ParseInLocation("2006-01-02T15:04:05.000", s, time.UTC)
	if err != nil {
		t.Fatalf("nfdump time %q: %v", s, err)
	}
	return v.UnixNano()
}

func (n *nfdumpRecord) endpoints(t *testing.T) (netip.Addr, netip.Addr) {
	src, dst := n.Src4, n.Dst4
	if src == "" {
		src, dst = n.Src6, n.Dst6
	}
	return netip.MustParseAddr(src), netip.MustParseAddr(dst)
}

func (n *nfdumpRecord) record(t *testing.T) flow.Record {
	src, dst := n.endpoints(t)
	var flags uint8
	for i, c := range []byte(n.TCPFlags) {
		if c != '.' {
			flags |= 0x80 >> i
		}
	}
	return flow.Record{
		Key:     flow.Key{Src: src, Dst: dst, Sport: n.SrcPort, Dport: n.DstPort, Proto: n.Proto},
		Packets: n.InPackets, Octets: n.InBytes,
		First: nfdumpTime(t, n.First), Last: nfdumpTime(t, n.Last),
		TCPFlags: flags,
	}
}

// TestCorpusPairingMatchesSoftflowd pairs the uniflows softflowd exported
// for a real capture (as nfdump decoded them) through the store and `mira
// report`, and compares the biflows with the RFC 5103 biflows softflowd
// itself made from the same capture (-b).
func TestCorpusPairingMatchesSoftflowd(t *testing.T) {
	uni := readNfdumpJSON(t, corpusFile(t, "ipfix-softflowd-milli.nfdump.json"))
	bi := readNfdumpJSON(t, corpusFile(t, "ipfix-softflowd-biflow.nfdump.json"))

	path := filepath.Join(t.TempDir(), "flows.db")
	s, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []flow.Record
	for i := range uni {
		recs = append(recs, uni[i].record(t))
	}
	if err := s.Put(store.Origin{Exporter: "softflowd", Domain: 0}, recs); err != nil {
		t.Fatal(err)
	}
	s.Close()

	var out bytes.Buffer
	if err := RunReport(context.Background(), []string{"--db", path, "--format", "json"}, &out); err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Biflows) != len(bi) || rep.Summary.Flows != len(uni) {
		t.Fatalf("%d uniflows paired into %d biflows; softflowd -b made %d", len(uni), len(rep.Biflows), len(bi))
	}
	type end struct {
		a    netip.Addr
		port uint16
	}
	mine := map[[2]end]*Biflow{}
	for i := range rep.Biflows {
		b := &rep.Biflows[i]
		mine[[2]end{{b.Src, b.Sport}, {b.Dst, b.Dport}}] = b
		// Every connection in this capture has a service port: the
		// initiator is the side sending to the lower port.
		if b.Proto != 41 && b.Dport >= b.Sport {
			t.Errorf("%s:%d -> %s:%d: initiator looks like the server", b.Src, b.Sport, b.Dst, b.Dport)
		}
	}
	for i := range bi {
		w := &bi[i]
		src, dst := w.endpoints(t)
		name := fmt.Sprintf("%s:%d <-> %s:%d", src, w.SrcPort, dst, w.DstPort)
		fwd, rev := [2]end{{src, w.SrcPort}, {dst, w.DstPort}}, [2]end{{dst, w.DstPort}, {src, w.SrcPort}}
		b, ok := mine[fwd]
		pk, ok2 := [4]uint64{w.InPackets, w.InBytes, w.OutPackets, w.OutBytes}, true
		if !ok {
			b, ok2 = mine[rev]
			pk = [4]uint64{w.OutPackets, w.OutBytes, w.InPackets, w.InBytes}
		}
		if !ok2 {
			t.Errorf("%s: softflowd biflow not in the report", name)
			continue
		}
		if got := [4]uint64{b.Packets, b.Octets, b.RPackets, b.ROctets}; got != pk {
			t.Errorf("%s: counters %v, softflowd %v", name, got, pk)
		}
		if int64(b.First) != nfdumpTime(t, w.First) || int64(b.Last) != nfdumpTime(t, w.Last) {
			t.Errorf("%s: %s - %s, softflowd %s - %s", name, b.First, b.Last, w.First, w.Last)
		}
	}
}

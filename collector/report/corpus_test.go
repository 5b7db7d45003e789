package report

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/tools/peertest"
)

func nfdumpTime(t *testing.T, s string) int64 {
	t.Helper()
	v, err := peertest.NfdumpTime(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func nfdumpEndpoints(t *testing.T, n *peertest.NfdumpRecord) (netip.Addr, netip.Addr) {
	t.Helper()
	src, dst, err := n.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	return src, dst
}

// nfdumpFlow turns a uniflow as nfdump shows it into a flow record.
func nfdumpFlow(t *testing.T, n *peertest.NfdumpRecord) flow.Record {
	t.Helper()
	src, dst := nfdumpEndpoints(t, n)
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
	uni := peertest.ReadNfdumpJSON(t, peertest.CorpusFile(t, "generated", "ipfix-softflowd-milli.nfdump.json"))
	bi := peertest.ReadNfdumpJSON(t, peertest.CorpusFile(t, "generated", "ipfix-softflowd-biflow.nfdump.json"))

	path := filepath.Join(t.TempDir(), "flows.db")
	s, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []flow.Record
	for i := range uni {
		recs = append(recs, nfdumpFlow(t, &uni[i]))
	}
	if err := s.Put(store.Origin{Exporter: "softflowd", Domain: 0}, recs); err != nil {
		t.Fatal(err)
	}
	s.Close()

	rep := jsonReportOf(t, path)
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
		src, dst := nfdumpEndpoints(t, w)
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
			t.Errorf("%s: %s - %s, softflowd %s - %s", name, Timestamp(b.First), Timestamp(b.Last), w.First, w.Last)
		}
	}
}

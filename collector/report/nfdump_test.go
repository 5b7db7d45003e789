package report

import (
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/tools/peertest"
)

// TestNfdumpBidirectionalAgrees sends softflowd's IPFIX export of a real
// capture to a live nfcapd, pairs nfdump's decoding of the uniflows through
// the store and `mira report`, and compares the TCP and UDP biflows with
// `nfdump -B` (which pairs only those protocols and, like MIRA on equal
// start times, takes the side sending to the lower port as the client).
func TestNfdumpBidirectionalAgrees(t *testing.T) {
	ipfix, err := os.ReadFile(peertest.CorpusFile(t, "generated", "ipfix-softflowd-milli.ipfix"))
	if err != nil {
		t.Fatal(err)
	}
	nf := peertest.StartNfcapd(t)
	conn, err := net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", nf.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := 0
	for off := 0; off+16 <= len(ipfix); msgs++ {
		n := int(binary.BigEndian.Uint16(ipfix[off+2:]))
		if n < 16 || off+n > len(ipfix) {
			t.Fatalf("ipfix message at offset %d: bad length %d", off, n)
		}
		if _, err := conn.Write(ipfix[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	// Records waits until nfcapd has read every queued datagram
	// (loopback delivery is synchronous) and stops it.
	uni := nf.Records(t)
	if len(uni) != 40 {
		t.Fatalf("nfdump decoded %d uniflows from %d messages, want 40", len(uni), msgs)
	}
	biCSV := peertest.Nfdump(t, "-R", nf.Dir, "-B", "-q", "-o", "csv")
	rows, err := csv.NewReader(bytes.NewReader(biCSV)).ReadAll()
	if err != nil {
		t.Fatalf("nfdump -B csv: %v", err)
	}

	db := filepath.Join(t.TempDir(), "flows.db")
	s, err := store.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []flow.Record
	for i := range uni {
		recs = append(recs, nfdumpFlow(t, &uni[i]))
	}
	if err := s.Put(store.Origin{Exporter: "127.0.0.1"}, recs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	rep := jsonReportOf(t, db)
	mine := map[string]*Biflow{}
	for i := range rep.Biflows {
		b := &rep.Biflows[i]
		if b.Proto == 6 || b.Proto == 17 {
			mine[fmt.Sprintf("%s %d %s %d", b.Src, b.Sport, b.Dst, b.Dport)] = b
		}
	}
	compared := 0
	for _, r := range rows {
		if len(r) < 15 || (r[7] != "TCP" && r[7] != "UDP") {
			continue
		}
		compared++
		src, dst := netip.MustParseAddr(r[3]), netip.MustParseAddr(r[4])
		key := fmt.Sprintf("%s %s %s %s", src, r[5], dst, r[6])
		b, ok := mine[key]
		if !ok {
			t.Errorf("nfdump -B biflow %s (%s): no MIRA biflow in that direction", key, r[7])
			continue
		}
		want := r[11] + "/" + r[13] + " " + r[12] + "/" + r[14]
		got := fmt.Sprintf("%d/%d %d/%d", b.Packets, b.RPackets, b.Octets, b.ROctets)
		if got != want {
			t.Errorf("%s: packets/rpackets octets/roctets %s, nfdump -B %s", key, got, want)
		}
	}
	if compared == 0 || compared != len(mine) {
		t.Errorf("nfdump -B has %d TCP/UDP biflows, MIRA %d", compared, len(mine))
	}
}

package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mira-project/mira/tools/peertest"
)

// TestForwardToNfdump: mira-collector configured with forward re-exports
// the biflows it consolidates from two probes (split by direction) as
// RFC 5103 IPFIX to a real nfcapd; nfdump shows one record per biflow of
// one unsampled probe, its in plus out bytes add up to the capture's
// bytes, and paired connections carry both directions in one record.
func TestForwardToNfdump(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	pcap := capture(t)
	probeBin, collBin := binaries(t)
	base := consolidate(t, probeBin, collBin, pcap, []string{rules}, 0)

	nf := peertest.StartNfcapd(t)
	cfg := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("forward: [%s]\n", nf.URL())), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startCollector(t, collBin, "--config", cfg)
	n := runProbes(t, probeBin, pcap, c.port, []string{
		rules + "  scope: {directions: [outgoing, internal]}\n",
		rules + "  scope: {directions: [incoming, transit]}\n",
	})
	c.waitRecords(t, n)
	c.stop(t)
	recs := nf.Records(t)
	var bytesIn, bytesOut uint64
	paired := 0
	for _, r := range recs {
		bytesIn += r.InBytes
		bytesOut += r.OutBytes
		if r.OutBytes > 0 {
			paired++
		}
	}
	t.Logf("nfdump: %d biflow records (%d with both directions), in %d + out %d bytes; one probe: %d biflows, %d bytes",
		len(recs), paired, bytesIn, bytesOut, base.biflows, base.octets)
	if bytesIn+bytesOut != base.octets || paired == 0 || len(recs) != base.biflows {
		t.Fatalf("forwarded %d records, in+out bytes %d; one probe: %d biflows, %d bytes; %d paired records",
			len(recs), bytesIn+bytesOut, base.biflows, base.octets, paired)
	}
}

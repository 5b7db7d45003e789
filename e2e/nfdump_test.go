package e2e

import (
	"testing"
	"time"

	"github.com/mira-project/mira/tools/peertest"
)

// corpusCaptures are real captures covering plain TCP, tunnels (6in4,
// VXLAN), IPv6, QinQ and IP fragments.
var corpusCaptures = []string{
	"arkime/ftp.pcap",
	"ndpi/6in4tunnel.pcap",
	"zeek/tunnels__6in4.pcap",
	"zeek/tunnels__vxlan.pcap",
	"arkime/v6-http.pcap",
	"zeek/http-qinq-0.pcap",
	"zeek/ipv4__fragmented-1.pcap",
	"zeek/ipv6-fragmented-dns.pcap",
}

// TestProbeToNfcapdAndCollector sends one mira-probe export to nfcapd and
// to mira-collector at once: nfdump and `mira flows` must show the same
// flows, packets, octets and first/last milliseconds.
func TestProbeToNfcapdAndCollector(t *testing.T) {
	type input struct{ name, path string }
	var inputs []input
	for _, c := range corpusCaptures {
		inputs = append(inputs, input{c, peertest.CorpusFile(t, "pcaps", c)})
	}
	inputs = append(inputs, input{"mira-synth", synthPcap(t, t.TempDir())})
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			peertest.Program(t, "nfdump") // reads nfcapd's files below
			nf := peertest.StartNfcapd(t)
			coll := startCollector(t, true, false)
			res := runProbe(t, "-r", in.path, "--export", nf.URL(), "--export", "udp://"+coll.udp)
			if res.records == 0 {
				t.Fatalf("mira-probe exported no records from %s", in.path)
			}
			// Everything the probe sent has been stored before SIGTERM, so
			// this checks the export, not the shutdown.
			coll.waitMetric(t, "mira_collector_stored_records_total", res.records)
			waitUDPDrained(t, coll.udpPort())
			coll.p.terminate(t, 20*time.Second)
			nfFlows := nfdumpUniflows(t, nf.Records(t))
			miraFlows, l := storeFlows(t, coll.db)
			if uint64(len(miraFlows)) != res.records {
				t.Fatalf("mira flows lists %d flows, the probe exported %d records", len(miraFlows), res.records)
			}
			sameFlows(t, "nfdump", nfFlows, "mira flows", miraFlows)
			var pk uint64
			for _, f := range nfFlows {
				pk += f.Packets
			}
			if l.Summary.Packets != pk {
				t.Fatalf("mira flows summary: %d packets, the flows sum to %d", l.Summary.Packets, pk)
			}
			t.Logf("%s: %d flows, %d packets agree", in.name, len(nfFlows), pk)
		})
	}
}

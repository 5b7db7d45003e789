package exporter

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/tools/peertest"
)

// selectorPhase is one stretch of a probe's export: the sampling it
// announces first (SetSampling; nil: no change) and the intervals
// (packet, flow) its records carry, in turn. Under self-regulation a
// batch holds records metered at the old rate and at the new one.
type selectorPhase struct {
	announce *ipfix.Sampling
	rates    [][2]uint32
}

// TestNfdumpSelectors exports records of one observation domain at
// several sampling rates, with the rate announcements a probe's
// self-regulation makes between them, over UDP, and has the real peers
// read the same datagrams. nfcapd/nfdump must scale each record by its
// own rate (the selector it names), so its packet and byte totals equal
// those MIRA's collecting process gets (each record times its intervals,
// as the collector's estimators take them) and the true ones; tshark and
// ipfixDump must decode every message, selector reports included, with
// no warning. Before records named their selectors, nfdump scaled every
// record by the rate announced last.
func TestNfdumpSelectors(t *testing.T) {
	flowN := func(n uint32) *ipfix.Sampling {
		return &ipfix.Sampling{Interval: n, Flow: true, SelectorAlgorithm: 6}
	}
	for _, tc := range []struct {
		name    string
		initial *ipfix.Sampling
		phases  []selectorPhase
	}{
		// An unsampled probe that regulates as mira-probe does: it
		// sheds first (announced at rate 1; from then on its records
		// state their flow interval, 1 included), then keeps 1 flow in
		// 4, 1 in 16, and goes back to every flow. A record of the old
		// rate may follow an announcement (the flush before a change is
		// still in the export queue when the change is announced), and
		// one that states nothing (0) the first announcement.
		{"regulated", nil, []selectorPhase{
			{nil, [][2]uint32{{0, 0}}},
			{flowN(1), [][2]uint32{{0, 0}, {0, 1}}},
			{flowN(4), [][2]uint32{{0, 1}, {0, 4}}},
			{flowN(16), [][2]uint32{{0, 4}, {0, 4}, {0, 16}}},
			{flowN(1), [][2]uint32{{0, 16}, {0, 1}}},
		}},
		// 1 packet in 10, shedding (the probe announces its packet
		// sampling), then regulation's 1 flow in 4 on top (the probe
		// announces the flow selection).
		{"packet sampled and regulated", &ipfix.Sampling{Interval: 10, SelectorAlgorithm: 1, LegacyAlgorithm: 1}, []selectorPhase{
			{nil, [][2]uint32{{10, 0}}},
			{&ipfix.Sampling{Interval: 10, SelectorAlgorithm: 1, LegacyAlgorithm: 1}, [][2]uint32{{10, 0}, {10, 1}}},
			{flowN(4), [][2]uint32{{10, 1}, {10, 4}}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tshark := peertest.Program(t, "tshark")
			peertest.Program(t, "ipfixDump")
			nf := peertest.StartNfcapd(t)
			pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			e, err := New("udp://"+pc.LocalAddr().String(), &Config{Sampling: tc.initial, MTU: 1000, TemplateRefreshMessages: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			const perPhase = 120
			all := sampledRecords(perPhase*len(tc.phases), 0)
			var wantPkts, wantOcts uint64
			rates := map[[2]uint32]bool{}
			var payloads [][]byte
			buf := make([]byte, 65536)
			// receive takes the datagrams sent so far.
			receive := func() {
				for uint64(len(payloads)) < e.Stats().Messages {
					pc.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, err := pc.Read(buf)
					if err != nil {
						t.Fatalf("after %d of %d datagrams: %v", len(payloads), e.Stats().Messages, err)
					}
					payloads = append(payloads, append([]byte(nil), buf[:n]...))
				}
			}
			for i, ph := range tc.phases {
				if ph.announce != nil {
					e.SetSampling(ph.announce)
				}
				recs := all[i*perPhase : (i+1)*perPhase]
				for j := range recs {
					r := &recs[j]
					rt := ph.rates[j%len(ph.rates)]
					r.SamplingPacketInterval, r.SamplingFlowInterval = rt[0], rt[1]
					rates[[2]uint32{max(rt[0], 1), max(rt[1], 1)}] = true
					n := uint64(max(rt[0], 1)) * uint64(max(rt[1], 1))
					wantPkts += r.Packets * n
					wantOcts += r.Octets * n
				}
				if err := e.Export(recs); err != nil {
					t.Fatal(err)
				}
				receive()
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			receive()
			if len(rates) < 2 {
				t.Fatalf("only %d rates", len(rates))
			}

			// MIRA's collecting process.
			got, st := decodeAll(t, payloads)
			if len(got) != len(all) || st.LostRecords != 0 {
				t.Fatalf("MIRA decodes %d records (lost %d), want %d", len(got), st.LostRecords, len(all))
			}
			var miraPkts, miraOcts uint64
			for _, r := range got {
				n := uint64(max(r.SamplingPacketInterval, 1)) * uint64(max(r.SamplingFlowInterval, 1))
				miraPkts += r.Packets * n
				miraOcts += r.Octets * n
			}
			if miraPkts != wantPkts || miraOcts != wantOcts {
				t.Fatalf("MIRA scales to %d packets %d bytes, want %d and %d", miraPkts, miraOcts, wantPkts, wantOcts)
			}

			// nfcapd, fed the same datagrams.
			conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", nf.Port))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range payloads {
				if _, err := conn.Write(p); err != nil {
					t.Fatal(err)
				}
			}
			conn.Close()
			nfRecs := nf.Records(t)
			if len(nfRecs) != len(all) {
				t.Fatalf("nfdump shows %d flows, want %d", len(nfRecs), len(all))
			}
			byKey := map[flow.Key]flow.Record{}
			for _, r := range all {
				byKey[r.Key] = r
			}
			var nfPkts, nfOcts uint64
			wrong := 0
			for _, f := range nfRecs {
				nfPkts += f.InPackets
				nfOcts += f.InBytes
				r := byKey[nfKey(t, &f)]
				n := uint64(max(r.SamplingPacketInterval, 1)) * uint64(max(r.SamplingFlowInterval, 1))
				if f.InPackets != r.Packets*n || f.InBytes != r.Octets*n {
					wrong++
				}
			}
			t.Logf("%d records at %d rates in %d datagrams: nfdump %d packets %d bytes, MIRA %d packets %d bytes (%+.1f %% packets)",
				len(all), len(rates), len(payloads), nfPkts, nfOcts, miraPkts, miraOcts, 100*(float64(nfPkts)/float64(miraPkts)-1))
			if nfPkts != miraPkts || nfOcts != miraOcts || wrong != 0 {
				t.Fatalf("nfdump totals %d packets %d bytes (%+.1f %% packets), MIRA's %d and %d: %d of %d records scaled by another rate than their own\nnfcapd:\n%s",
					nfPkts, nfOcts, 100*(float64(nfPkts)/float64(miraPkts)-1), miraPkts, miraOcts, wrong, len(all), nf.Log())
			}

			// tshark and ipfixDump decode every message, the selector
			// reports with their ids.
			dir := t.TempDir()
			pcap := filepath.Join(dir, "selectors.pcap")
			writePcap(t, pcap, 4739, payloads)
			v := tsharkClean(t, tshark, pcap)
			var stream []byte
			for _, p := range payloads {
				stream = append(stream, p...)
			}
			file := filepath.Join(dir, "selectors.ipfix")
			if err := os.WriteFile(file, stream, 0o644); err != nil {
				t.Fatal(err)
			}
			dump := runIpfixDump(t, file)
			for rt := range rates {
				id := ipfix.SelectorID(rt[0], rt[1])
				if w := fmt.Sprintf("Selector Id: %d", id); !strings.Contains(v, w) {
					t.Errorf("tshark does not show %q", w)
				}
				if w := fmt.Sprintf("selectorId : %d", id); !strings.Contains(dump, w) {
					t.Errorf("ipfixDump does not show %q", w)
				}
			}
			if n := topRecords(dump); n != len(all)+int(e.Stats().OptionsRecords) {
				t.Fatalf("ipfixDump shows %d data records, want %d flows and %d options records", n, len(all), e.Stats().OptionsRecords)
			}
		})
	}
}

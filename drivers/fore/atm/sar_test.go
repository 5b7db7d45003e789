package atm

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mira-project/mira/drivers"
)

// vcPlan is one VC of the synthetic stream.
type vcPlan struct {
	vpi, vci uint16
	encap    Encap
	link     drivers.LinkType
}

type pdu struct {
	cells [][]byte // 53-byte cells
	pkt   []byte
}

// impairment applied to one PDU.
type impairment int

const (
	impNone       impairment = iota
	impHeaderBit             // single header bit flipped in one cell: corrected
	impPayloadBit            // payload bit flipped: CRC error
	impLoseMiddle            // a non-last cell lost: length error
	impLoseLast              // last cell lost: merges with the VC's next PDU
	impHECBad                // a cell with an uncorrectable header: dropped, length error
)

// TestSyntheticRoundTrip segments real IP packets from the corpus into
// cells on several VCs with different encapsulations, interleaves the
// VCs, injects OAM, idle and filtered cells and impairments, and checks
// that every unimpaired packet comes back byte-identical on its VC and
// every impairment is counted under its reason, exactly.
func TestSyntheticRoundTrip(t *testing.T) {
	frames := ethernetFrames(t, corpus(t, "pcaps/ndpi/1kxun.pcap"))
	frames = append(frames, ethernetFrames(t, corpus(t, "pcaps/zeek/ftp__ipv6.pcap"))...)
	ips := ipPackets(frames)
	if len(ips) < 1000 {
		t.Fatalf("only %d IP packets in the corpus files", len(ips))
	}
	plans := []vcPlan{
		{10, 103, EncapLLC, drivers.LinkRaw},
		{10, 104, EncapLLC, drivers.LinkEthernet},
		{0, 32, EncapVCMuxIP, drivers.LinkRaw},
		{3, 200, EncapVCMuxEthernet, drivers.LinkEthernet},
	}
	filtered := vcPlan{7, 700, EncapLLC, drivers.LinkRaw} // not selected by the filters
	rng := rand.New(rand.NewPCG(1, 2))

	// Build the PDUs per VC with their impairments and the expectations.
	type vcq struct {
		pdus []pdu
		want [][]byte // packets expected back, in order
	}
	queues := make([]vcq, len(plans))
	var want Stats
	wantVC := make([]Drops, len(plans))
	mergePending := make([]bool, len(plans))
	for i := range frames {
		q := i % len(plans)
		pl := plans[q]
		pkt := frames[i]
		if pl.link == drivers.LinkRaw {
			if i >= len(ips) {
				continue
			}
			pkt = ips[i]
		}
		sdu := AppendEncap(nil, pl.encap, pl.link, pkt)
		if len(sdu) > 65535 {
			continue
		}
		h := Header{VPI: pl.vpi, VCI: pl.vci}.UNI()
		raw := AppendCells(nil, h, sdu, 0, 0)
		var p pdu
		p.pkt = pkt
		for off := 0; off < len(raw); off += CellSize {
			p.cells = append(p.cells, raw[off:off+CellSize])
		}
		imp := impNone
		if mergePending[q] {
			// The previous PDU lost its last cell: this one merges with it
			// and both are lost under one length error.
			mergePending[q] = false
			wantVC[q][ReasonLength]++
			p.pkt = nil
		} else if r := rng.IntN(20); r < 5 {
			imp = impairment(r + 1)
		}
		switch imp {
		case impHeaderBit:
			c := p.cells[rng.IntN(len(p.cells))]
			bit := rng.IntN(40)
			c[bit/8] ^= 0x80 >> (bit % 8)
			want.HECCorrected++
		case impPayloadBit:
			c := p.cells[rng.IntN(len(p.cells))]
			c[5+rng.IntN(PayloadSize)] ^= 1 << rng.IntN(8)
			wantVC[q][ReasonCRC]++
			p.pkt = nil
		case impLoseMiddle, impHECBad:
			if len(p.cells) < 2 {
				imp = impNone
				break
			}
			k := rng.IntN(len(p.cells) - 1)
			if imp == impLoseMiddle {
				p.cells = append(p.cells[:k:k], p.cells[k+1:]...)
			} else {
				c := p.cells[k]
				c[0] ^= 0x11 // two header bits: detected, not correctable
				if _, st := CheckHEC(c); st != HECBad {
					t.Fatalf("test setup: double bit error not detected")
				}
				want.Drops[ReasonHEC]++
			}
			wantVC[q][ReasonLength]++
			p.pkt = nil
		case impLoseLast:
			if len(p.cells) < 2 {
				imp = impNone
				break
			}
			p.cells = p.cells[:len(p.cells)-1]
			mergePending[q] = true
			p.pkt = nil
		}
		if p.pkt != nil {
			queues[q].want = append(queues[q].want, p.pkt)
		}
		queues[q].pdus = append(queues[q].pdus, p)
	}
	// A merge left pending at the end is discarded by Flush.
	for q := range plans {
		if mergePending[q] {
			wantVC[q][ReasonFlushed]++
		}
	}

	// Interleave: pick a random VC with cells left; now and then insert
	// idle cells, F5 OAM cells on a VC and cells of the filtered VC.
	var stream [][]byte
	cur := make([]int, len(plans)) // next PDU index
	cell := make([]int, len(plans))
	left := 0
	for q := range queues {
		left += len(queues[q].pdus)
	}
	idle := make([]byte, CellSize)
	PutCell(idle, 1, nil)
	for left > 0 {
		q := rng.IntN(len(plans))
		if cur[q] >= len(queues[q].pdus) {
			continue
		}
		p := queues[q].pdus[cur[q]]
		if len(p.cells) > 0 {
			stream = append(stream, p.cells[cell[q]])
		}
		cell[q]++
		if cell[q] >= len(p.cells) {
			cur[q]++
			cell[q] = 0
			left--
		}
		switch rng.IntN(50) {
		case 0:
			stream = append(stream, idle)
			want.ByKind[KindIdle]++
		case 1:
			oam := make([]byte, CellSize)
			PutCell(oam, Header{VPI: plans[q].vpi, VCI: plans[q].vci, PTI: PTIOAMEnd}.UNI(), []byte{0x18})
			stream = append(stream, oam)
			want.ByKind[KindOAMF5]++
		case 2:
			fc := AppendCells(nil, Header{VPI: filtered.vpi, VCI: filtered.vci}.UNI(), ips[0], 0, 0)
			for off := 0; off < len(fc); off += CellSize {
				stream = append(stream, fc[off:off+CellSize])
				want.Drops[ReasonFiltered]++
			}
		}
	}

	var filters []Filter
	encaps := map[VC]Encap{}
	for _, pl := range plans {
		filters = append(filters, Exact(pl.vpi, pl.vci))
		encaps[MakeVC(pl.vpi, pl.vci)] = pl.encap
	}
	p := NewProcessor(&Config{Filters: filters, Encap: encaps, Reassembly: ReassemblyConfig{Timeout: -1}})
	got := make(map[VC][][]byte)
	ts := int64(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC).UnixNano())
	for _, c := range stream {
		ts += 2831 // one STM-1 cell time in ns
		f, ok := p.Cell(c, ts)
		if !ok {
			continue
		}
		if f.Length != len(f.Data) || f.FirstCell {
			t.Fatalf("frame on %v: length %d for %d bytes, first %v", f.VC, f.Length, len(f.Data), f.FirstCell)
		}
		got[f.VC] = append(got[f.VC], bytes.Clone(f.Data))
	}
	p.Flush()

	for q, pl := range plans {
		vc := MakeVC(pl.vpi, pl.vci)
		w := queues[q].want
		g := got[vc]
		if len(g) != len(w) {
			t.Errorf("VC %d/%d: %d frames, want %d", pl.vpi, pl.vci, len(g), len(w))
		}
		for i := 0; i < len(g) && i < len(w); i++ {
			if !bytes.Equal(g[i], w[i]) {
				t.Errorf("VC %d/%d frame %d differs:\n got %x\nwant %x", pl.vpi, pl.vci, i, g[i][:min(32, len(g[i]))], w[i][:min(32, len(w[i]))])
				break
			}
		}
		vs := p.VCStats(vc)
		wantVC[q][ReasonFiltered] = 0
		if vs.Drops != wantVC[q] {
			t.Errorf("VC %d/%d drops:\n got %v\nwant %v", pl.vpi, pl.vci, vs.Drops, wantVC[q])
		}
		if vs.Frames != uint64(len(w)) {
			t.Errorf("VC %d/%d: Frames %d, want %d", pl.vpi, pl.vci, vs.Frames, len(w))
		}
		for r, n := range wantVC[q] {
			want.Drops[r] += n
		}
		want.Frames += uint64(len(w))
	}
	st := p.Stats()
	if st.Drops != want.Drops {
		t.Errorf("total drops:\n got %v\nwant %v", st.Drops, want.Drops)
	}
	if st.HECCorrected != want.HECCorrected || st.ByKind[KindIdle] != want.ByKind[KindIdle] ||
		st.ByKind[KindOAMF5] != want.ByKind[KindOAMF5] || st.Frames != want.Frames {
		t.Errorf("stats: got corrected %d idle %d oam %d frames %d, want %d %d %d %d",
			st.HECCorrected, st.ByKind[KindIdle], st.ByKind[KindOAMF5], st.Frames,
			want.HECCorrected, want.ByKind[KindIdle], want.ByKind[KindOAMF5], want.Frames)
	}
	if st.Cells != uint64(len(stream)) {
		t.Errorf("Cells = %d, want %d", st.Cells, len(stream))
	}
	t.Logf("%d cells, %d frames, drops %v", len(stream), st.Frames, st.Drops)
}

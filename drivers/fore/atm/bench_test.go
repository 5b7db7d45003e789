package atm

import (
	"runtime"
	"testing"

	"github.com/mira-project/mira/drivers"
)

// stm1CellRate is the cell rate of an STM-1 (155.52 Mbit/s) link:
// 149.76 Mbit/s of SDH payload / 424 bits per cell.
const stm1CellRate = 353207

// cellStream segments the corpus' IP packets (LLC/SNAP routed) into
// 53-byte cells on a few VCs, round-robin by PDU.
func cellStream(tb testing.TB) []byte {
	ips := ipPackets(ethernetFrames(tb, corpus(tb, "pcaps/ndpi/1kxun.pcap")))
	var stream []byte
	for i, ip := range ips {
		h := Header{VPI: 10, VCI: uint16(100 + i%8)}.UNI()
		stream = AppendCells(stream, h, AppendEncap(nil, EncapLLC, drivers.LinkRaw, ip), 0, 0)
	}
	return stream
}

func TestProcessorNoAllocs(t *testing.T) {
	stream := cellStream(t)
	p := NewProcessor(nil)
	run := func() {
		for off := 0; off+CellSize <= len(stream); off += CellSize {
			p.Cell(stream[off:off+CellSize], int64(off))
		}
	}
	run() // creates the VC state and grows the buffers
	frames := p.Stats().Frames
	if allocs := testing.AllocsPerRun(5, run); allocs != 0 {
		t.Fatalf("%v allocations per pass over %d cells", allocs, len(stream)/CellSize)
	}
	if p.Stats().Frames != frames*7 { // warm-up, the uncounted AllocsPerRun warm-up, 5 runs
		t.Fatalf("frames %d after 7 passes of %d", p.Stats().Frames, frames)
	}
}

// BenchmarkCells measures HEC check + AAL5 reassembly + RFC 2684
// decapsulation per cell on one core, and reports the multiple of an
// STM-1 link's cell rate that this sustains.
func BenchmarkCells(b *testing.B) {
	stream := cellStream(b)
	n := len(stream) / CellSize
	p := NewProcessor(nil)
	b.ReportAllocs()
	b.SetBytes(CellSize)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU()
	i := 0
	for b.Loop() {
		off := (i % n) * CellSize
		p.Cell(stream[off:off+CellSize], int64(i))
		i++
	}
	cpu := threadCPU() - cpu0
	cps := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(cps, "cells/s")
	b.ReportMetric(cps/stm1CellRate, "xSTM-1")
	if cpu > 0 {
		// The same per CPU-second of this thread: what one dedicated core
		// sustains, independent of other load on the machine.
		b.ReportMetric(float64(b.N)/cpu.Seconds()/stm1CellRate, "xSTM-1/cpu-s")
	}
}

package synth

import (
	"github.com/mira-project/mira/drivers"
	"testing"
)

func TestZZLargeMix(t *testing.T) {
	var hist [4]int
	tr, err := Generate(Large(), histWriter{&hist})
	if err != nil {
		t.Fatal(err)
	}
	var v6, tun uint64
	for _, f := range tr.Flows {
		if f.Src.Is6() {
			v6 += f.Packets
		}
		if f.Tunnel != "" {
			tun += f.Packets
		}
	}
	t.Logf("%d packets %d octets %d flows; payload empty %d, 40-100 %d, >=1400 %d, other %d; v6 %.3f tunnelled %.4f",
		tr.Packets, tr.Octets, len(tr.Flows), hist[0], hist[1], hist[2], hist[3], float64(v6)/float64(tr.Packets), float64(tun)/float64(tr.Packets))
}

type histWriter struct{ h *[4]int }

func (w histWriter) WritePacket(_ drivers.CaptureInfo, data []byte) error {
	o := 12
	if data[o] == 0x81 {
		o += 4
	}
	et := int(data[o])<<8 | int(data[o+1])
	o += 2
	var n int
	switch et {
	case 0x0800:
		ihl := int(data[o]&0xf) * 4
		tot := int(data[o+2])<<8 | int(data[o+3])
		l4 := tot - ihl
		switch data[o+9] {
		case 6:
			l4 = int(data[o+ihl+12]>>4) * 4
		case 17:
			l4 = 8
		}
		n = tot - ihl - l4
	case 0x86dd:
		pl := int(data[o+4])<<8 | int(data[o+5])
		l4 := pl
		switch data[o+6] {
		case 6:
			l4 = int(data[o+40+12]>>4) * 4
		case 17:
			l4 = 8
		}
		n = pl - l4
	}
	switch {
	case n <= 0:
		w.h[0]++
	case n >= 40 && n <= 100:
		w.h[1]++
	case n >= 1400:
		w.h[2]++
	default:
		w.h[3]++
	}
	return nil
}

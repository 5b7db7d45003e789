package synth

import (
	"github.com/mira-project/mira/drivers"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestScratchWrite(t *testing.T) {
	out := os.Getenv("SYNTH_OUT")
	if out == "" {
		t.Skip("SYNTH_OUT not set")
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := Default()
	if os.Getenv("SYNTH_LARGE") != "" {
		cfg = Large()
		if n, _ := strconv.Atoi(os.Getenv("SYNTH_FLOWS")); n > 0 {
			cfg.Flows = n
		}
	}
	start := time.Now()
	var hist [4]int
	tr, err := Generate(cfg, histWriter{&hist})
	t.Logf("payload sizes: empty %d, 40-100 %d, >=1400 %d, other %d", hist[0], hist[1], hist[2], hist[3])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d packets %d octets %d flows in %v", tr.Packets, tr.Octets, len(tr.Flows), time.Since(start))
	j, _ := os.Create(os.Getenv("SYNTH_JSON"))
	tr.WriteJSON(j)
	j.Close()
}

type histWriter struct{ h *[4]int }

func (w histWriter) WritePacket(ci drivers.CaptureInfo, data []byte) error {
	// Untunnelled IPv4/IPv6 TCP/UDP only, good enough for the mix.
	o := 12
	if data[o] == 0x81 {
		o += 4
	}
	et := int(data[o])<<8 | int(data[o+1])
	o += 2
	var l4, n int
	switch et {
	case 0x0800:
		ihl := int(data[o]&0xf) * 4
		tot := int(data[o+2])<<8 | int(data[o+3])
		switch data[o+9] {
		case 6:
			l4 = int(data[o+ihl+12]>>4) * 4
		case 17:
			l4 = 8
		default:
			l4 = tot - ihl
		}
		n = tot - ihl - l4
	case 0x86dd:
		pl := int(data[o+4])<<8 | int(data[o+5])
		switch data[o+6] {
		case 6:
			l4 = int(data[o+40+12]>>4) * 4
		case 17:
			l4 = 8
		default:
			l4 = pl
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

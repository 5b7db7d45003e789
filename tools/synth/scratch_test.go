package synth

import (
	"os"
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
	}
	start := time.Now()
	tr, err := WritePcap(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d packets %d octets %d flows in %v", tr.Packets, tr.Octets, len(tr.Flows), time.Since(start))
	j, _ := os.Create(out + ".json")
	tr.WriteJSON(j)
	j.Close()
}

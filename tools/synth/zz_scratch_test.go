package synth

import (
	"os"
	"testing"
)

func TestZZWrite(t *testing.T) {
	if os.Getenv("SYNTH_OUT") == "" {
		t.Skip()
	}
	f, _ := os.Create(os.Getenv("SYNTH_OUT"))
	defer f.Close()
	if _, err := WritePcap(testConfigs()[os.Getenv("SYNTH_CFG")], f); err != nil {
		t.Fatal(err)
	}
}

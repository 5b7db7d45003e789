package fore

import (
	"testing"
	"time"

	"github.com/mira-project/mira/drivers/fore/atm"
)

func TestParseSpec(t *testing.T) {
	path, cfg, err := ParseSpec("/dev/fatm0,vc=1/100,vc=2/0/0xff/0,mode=cells,snaplen=96,encap=1/100:vcmux-ip,nni,poll=250ms")
	if err != nil {
		t.Fatal(err)
	}
	if path != "/dev/fatm0" || cfg.Mode != ModeCells || cfg.Snaplen != 96 || !cfg.ATM.NNI || cfg.PollTimeout != 250*time.Millisecond {
		t.Fatalf("path %q cfg %+v", path, cfg)
	}
	if len(cfg.Filters) != 2 || cfg.Filters[0] != atm.Exact(1, 100) || cfg.Filters[1] != (atm.Filter{VPI: 2, VPIMask: 0xff}) {
		t.Fatalf("filters %+v", cfg.Filters)
	}
	if cfg.ATM.Encap[atm.MakeVC(1, 100)] != atm.EncapVCMuxIP {
		t.Fatalf("encap %v", cfg.ATM.Encap)
	}
	for _, bad := range []string{"", ",vc=1/2", "/d,vc=1", "/d,vc=1/70000", "/d,mode=x", "/d,snaplen=-1", "/d,encap=1/2", "/d,encap=1/2:x", "/d,foo=1", "/d,poll=x"} {
		if _, _, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) succeeded", bad)
		}
	}
}

package fore

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mira-project/mira/drivers/fore/atm"
)

// ParseSpec parses a device specification as an operator writes it after
// "fore:" on the probe's command line:
//
//	PATH[,vc=VPI/VCI[/VPIMASK/VCIMASK]]...[,mode=aal5|cells|first-cell]
//	    [,snaplen=N][,encap=VPI/VCI:ENCAP]...[,nni][,poll=DURATION]
//
// for example "/dev/fatm0,vc=1/100,vc=1/101,encap=1/101:vcmux-ip".
// ENCAP is one of atm.ParseEncap's names.
func ParseSpec(spec string) (path string, cfg DeviceConfig, err error) {
	parts := strings.Split(spec, ",")
	path = parts[0]
	if path == "" {
		return "", cfg, fmt.Errorf("fore: device spec %q: empty device path", spec)
	}
	bad := func(p string, why string) error {
		return fmt.Errorf("fore: device spec %q: %q: %s", spec, p, why)
	}
	for _, p := range parts[1:] {
		key, val, _ := strings.Cut(p, "=")
		switch key {
		case "vc":
			f, err := parseVC(val)
			if err != nil {
				return "", cfg, bad(p, err.Error())
			}
			cfg.Filters = append(cfg.Filters, f)
		case "mode":
			switch val {
			case "aal5":
				cfg.Mode = ModeAAL5
			case "cells":
				cfg.Mode = ModeCells
			case "first-cell":
				cfg.Mode = ModeFirstCell
			default:
				return "", cfg, bad(p, "mode is aal5, cells or first-cell")
			}
		case "snaplen":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > 65535 {
				return "", cfg, bad(p, "snaplen is 0..65535")
			}
			cfg.Snaplen = n
		case "encap":
			v, e, ok := strings.Cut(val, ":")
			if !ok {
				return "", cfg, bad(p, "want encap=VPI/VCI:ENCAP")
			}
			f, err := parseVC(v)
			if err != nil {
				return "", cfg, bad(p, err.Error())
			}
			enc, err := atm.ParseEncap(e)
			if err != nil {
				return "", cfg, bad(p, err.Error())
			}
			if cfg.ATM.Encap == nil {
				cfg.ATM.Encap = map[atm.VC]atm.Encap{}
			}
			cfg.ATM.Encap[atm.MakeVC(f.VPI, f.VCI)] = enc
		case "nni":
			cfg.ATM.NNI = true
		case "poll":
			d, err := time.ParseDuration(val)
			if err != nil || d < 0 {
				return "", cfg, bad(p, "poll is a duration such as 100ms")
			}
			cfg.PollTimeout = d
		default:
			return "", cfg, bad(p, "unknown option (vc, mode, snaplen, encap, nni, poll)")
		}
	}
	return path, cfg, nil
}

func parseVC(s string) (atm.Filter, error) {
	f := strings.Split(s, "/")
	if len(f) != 2 && len(f) != 4 {
		return atm.Filter{}, fmt.Errorf("want VPI/VCI or VPI/VCI/VPIMASK/VCIMASK")
	}
	var v [4]uint16
	v[2], v[3] = 0xffff, 0xffff
	for i, x := range f {
		n, err := strconv.ParseUint(x, 0, 16)
		if err != nil {
			return atm.Filter{}, fmt.Errorf("%q is not a 16-bit number", x)
		}
		v[i] = uint16(n)
	}
	return atm.Filter{VPI: v[0], VCI: v[1], VPIMask: v[2], VCIMask: v[3]}, nil
}

// OpenSpec opens a live device from a specification (see ParseSpec).
func OpenSpec(spec string) (*DeviceSource, error) {
	path, cfg, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return OpenLive(path, &cfg)
}

package cli

import (
	"flag"
	"io"
	"runtime/debug"
	"strings"
	"testing"
)

// TestFlagValues: bad values are refused by flag parsing with a message
// naming the value, good ones are kept.
func TestFlagValues(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-log-level", "loud"}, `unknown level "loud"`},
		{[]string{"-domain", "99999999999"}, "out of range"},
		{[]string{"-domain", "-1"}, "not a number"},
		{[]string{"-domain", "0x10"}, "not a number"},
		{[]string{"-workers", "-3"}, "-3 is negative"},
		{[]string{"-workers", "many"}, "not a whole number"},
		{[]string{"-log-level", "debug", "-domain", "4294967295", "-workers", "4"}, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var l Level
		var d Uint32
		var w Count
		fs.Var(&l, "log-level", "")
		fs.Var(&d, "domain", "")
		fs.Var(&w, "workers", "")
		err := fs.Parse(tc.args)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.args, err)
			} else if l.Name != "debug" || !l.Given || d.N != 4294967295 || !d.Given || w != 4 {
				t.Errorf("%v: got %+v %+v %d", tc.args, l, d, w)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.wantErr)
		}
	}
}

func TestLogger(t *testing.T) {
	if _, err := Logger("loud", ""); err == nil || !strings.Contains(err.Error(), `"loud"`) {
		t.Errorf("level loud: %v", err)
	}
	if _, err := Logger("info", "xml"); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("format xml: %v", err)
	}
	for _, lf := range [][2]string{{"", ""}, {"debug", "json"}, {"error", "text"}} {
		if _, err := Logger(lf[0], lf[1]); err != nil {
			t.Errorf("%v: %v", lf, err)
		}
	}
}

func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/mira-project/mira", Version: "v0.3.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-07T05:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	got := versionText("mira-probe", bi)
	for _, w := range []string{"mira-probe v0.3.0 (github.com/mira-project/mira)", "revision 0123abcd (2026-12-07T05:00:00Z) with local modifications", "go1.26.8"} {
		if !strings.Contains(got, w) {
			t.Errorf("version text %q lacks %q", got, w)
		}
	}
	got = versionText("mira", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/mira-project/mira"}})
	if !strings.Contains(got, "mira (devel)") || !strings.Contains(got, "revision unknown") {
		t.Errorf("no version, no vcs: %q", got)
	}
}

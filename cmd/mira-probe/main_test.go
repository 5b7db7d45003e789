package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestFlags: --help and --version exit 0, bad flag values exit 2 with a
// message naming the flag and the value, before anything starts.
func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		out, error string
	}{
		{[]string{"--help"}, 0, "", "tls://"},
		{[]string{"-h"}, 0, "", "usage: mira-probe"},
		{[]string{"--version"}, 0, "mira-probe ", ""},
		{[]string{"--log-level", "loud"}, 2, "", `invalid value "loud" for flag -log-level`},
		{[]string{"--domain", "99999999999"}, 2, "", `invalid value "99999999999" for flag -domain: 99999999999 is out of range`},
		{[]string{"--workers", "-3"}, 2, "", `invalid value "-3" for flag -workers: -3 is negative`},
		{[]string{"--workers", "100000"}, 2, "", `--workers 100000: more than 1024`},
		{[]string{"--drain-timeout", "-5s"}, 2, "", `invalid value "-5s" for flag -drain-timeout: -5s is negative`},
		{[]string{"extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"--export", "htp://127.0.0.1:4739"}, 2, "", `--export: export target "htp://127.0.0.1:4739": unsupported scheme "htp"`},
		{[]string{"--config", "/nonexistent/probe.yaml"}, 2, "", "/nonexistent/probe.yaml"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.error) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tc.args, code, out.String(), errb.String(), tc.code, tc.out, tc.error)
		}
	}
}

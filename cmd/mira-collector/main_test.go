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
		{[]string{"-h"}, 0, "", "usage: mira-collector"},
		{[]string{"--version"}, 0, "mira-collector ", ""},
		{[]string{"--log-level", "loud"}, 2, "", `invalid value "loud" for flag -log-level`},
		{[]string{"extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"--listen", "htp://127.0.0.1:4739"}, 2, "", `--listen: listener "htp://127.0.0.1:4739": unsupported scheme "htp"`},
		{[]string{"--config", "/nonexistent/collector.yaml"}, 2, "", "/nonexistent/collector.yaml"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.error) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tc.args, code, out.String(), errb.String(), tc.code, tc.out, tc.error)
		}
	}
}

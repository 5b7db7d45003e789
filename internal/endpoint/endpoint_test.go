package endpoint

import (
	"strings"
	"testing"
)

func TestTarget(t *testing.T) {
	for _, ok := range []string{"udp://127.0.0.1:4739", "tcp://[::1]:4739", "tls://collector:4740", "file:///var/spool/mira"} {
		if _, err := Target(ok); err != nil {
			t.Errorf("Target(%q): %v", ok, err)
		}
	}
	for raw, want := range map[string]string{
		"htp://c:4739":   `export target "htp://c:4739": unsupported scheme "htp"`,
		"tcp://c":        `export target "tcp://c": want tcp://host:port`,
		"file://":        `export target "file://": want file:///directory`,
		"udp//x:9995":    `export target "udp//x:9995": unsupported scheme ""`,
		"udp://%zz:4739": `export target "udp://%zz:4739"`,
		// Found only when exporting before.
		"udp://127.0.0.1:99999": `export target "udp://127.0.0.1:99999": port 99999 is out of range (0 to 65535)`,
	} {
		if _, err := Target(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Target(%q) = %v, want %q", raw, err, want)
		}
	}
}

func TestListener(t *testing.T) {
	for _, ok := range []string{"udp://0.0.0.0:4739", "tcp://:4739", "tls://[::]:4740"} {
		if _, err := Listener(ok); err != nil {
			t.Errorf("Listener(%q): %v", ok, err)
		}
	}
	for raw, want := range map[string]string{
		"file:///x":        `listener "file:///x": unsupported scheme "file"`,
		"tcp://0.0.0.0":    `listener "tcp://0.0.0.0": want tcp://host:port`,
		"htp://0.0.0.0:47": `unsupported scheme "htp"`,
		// Found only when listening, after the store was opened, before.
		"udp://:99999": `listener "udp://:99999": port 99999 is out of range (0 to 65535)`,
		"tcp://:":      `listener "tcp://:": missing port`,
	} {
		if _, err := Listener(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Listener(%q) = %v, want %q", raw, err, want)
		}
	}
}

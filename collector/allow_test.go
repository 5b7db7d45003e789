package collector

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/tools/peertest"
)

// logBuffer collects a logger's text output; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// lines returns the log lines containing every one of subs.
func (l *logBuffer) lines(subs ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// TestAllow: with an allow-list, UDP messages and TCP connections from
// other addresses are dropped, counted and logged with the exporter's
// address (once a minute per address); listed exporters get through.
func TestAllow(t *testing.T) {
	recs := testRecords()
	for _, tc := range []struct {
		name  string
		allow []netip.Prefix
		ok    bool
	}{
		{"not listed", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}, false},
		{"listed", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := newSink(2 * len(recs))
			var logs logBuffer
			c := New(s, &Config{Allow: tc.allow, Logger: logs.logger()})
			ua, err := c.ListenUDP(ctx, "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ta, err := c.ListenTCP(ctx, "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var udpMsgs uint64
			for _, u := range []string{"udp://" + ua.String(), "tcp://" + ta.String()} {
				e, err := exporter.New(u, &exporter.Config{MTU: 1400, RetryMin: time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				e.Export(recs)
				e.Close()
				if udpMsgs == 0 {
					udpMsgs = e.Stats().Messages
				}
			}
			if tc.ok {
				s.wait(t)
				if st := c.Stats(); st.Malformed["exporter-not-allowed"] != 0 {
					t.Fatalf("stats %+v", st)
				}
				if l := logs.String(); l != "" {
					t.Errorf("logged for an allowed exporter: %s", l)
				}
				return
			}
			// Every UDP message and the TCP connection are refused.
			peertest.WaitUntil(t, 10*time.Second, "refusals counted", func() bool {
				return c.Stats().Malformed["exporter-not-allowed"] >= udpMsgs+1 // the exporter may retry the TCP connection
			})
			if st := c.Stats(); st.Records != 0 || st.Messages != 0 {
				t.Fatalf("refused exporter delivered: %+v", st)
			}
			// One warning per transport (the address is the same, the
			// reason too: the UDP flood and the TCP connection log once).
			peertest.WaitUntil(t, 10*time.Second, "refusal logged", func() bool {
				return len(logs.lines("exporter refused: not in the allow list", "exporter=127.0.0.1:")) > 0
			})
			if n := len(logs.lines("not in the allow list")); n != 1 {
				t.Errorf("%d refusal warnings for %d refusals from one address, want 1:\n%s", n, udpMsgs+1, logs.String())
			}
		})
	}
}

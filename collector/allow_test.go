package collector

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/tools/peertest"
)

// TestAllow: with an allow-list, UDP messages and TCP connections from
// other addresses are dropped and counted; listed exporters get through.
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
			c := New(s, &Config{Allow: tc.allow})
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
				return
			}
			// Every UDP message and the TCP connection are refused.
			peertest.WaitUntil(t, 10*time.Second, "refusals counted", func() bool {
				return c.Stats().Malformed["exporter-not-allowed"] >= udpMsgs+1 // the exporter may retry the TCP connection
			})
			if st := c.Stats(); st.Records != 0 || st.Messages != 0 {
				t.Fatalf("refused exporter delivered: %+v", st)
			}
		})
	}
}

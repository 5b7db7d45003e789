package exporter

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// TestTCPUnacknowledged: without a spool, the flow records sent on a TCP
// connection that breaks (the collector killed: reset) or that the
// collector closes without confirming it stored them count as
// unacknowledged; those of a connection the collector confirmed
// (collector.StoredAck) as acknowledged. Together they are every record
// sent.
func TestTCPUnacknowledged(t *testing.T) {
	for _, c := range []struct {
		name  string
		reset bool // the first connection is reset after a message
		ack   bool // the last connection's close is confirmed
	}{
		{"reset, then confirmed", true, true},
		{"closed unconfirmed", false, false},
		{"confirmed", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			reset := make(chan struct{})
			last := make(chan []byte, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				if c.reset {
					// Read one message header's worth, then die.
					io.ReadFull(conn, make([]byte, ipfix.HeaderLen))
					conn.(*net.TCPConn).SetLinger(0)
					conn.Close()
					close(reset)
					if conn, err = ln.Accept(); err != nil {
						return
					}
				}
				b, _ := io.ReadAll(conn)
				if c.ack {
					m := ipfix.AppendHeader(nil, ipfix.Header{})
					ipfix.FinishMessage(m)
					conn.Write(m)
				}
				conn.Close()
				last <- b
			}()
			e, err := New("tcp://"+ln.Addr().String(), &Config{RetryMin: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			recs := ipfixtest.Random(3, 300)
			if err := e.Export(recs[:100]); err != nil {
				t.Fatal(err)
			}
			if c.reset {
				<-reset
			}
			if err := e.Export(recs[100:]); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil && c.ack {
				t.Fatal(err)
			}
			var got []byte
			select {
			case got = <-last:
			case <-time.After(10 * time.Second):
				t.Fatal("the collector got no last connection")
			}
			// The flow records of the last connection.
			s := ipfix.NewSession("last")
			for len(got) >= ipfix.HeaderLen {
				h, _ := ipfix.ParseHeader(got)
				if _, _, err := s.Decode(got[:h.Length], nil); err != nil {
					t.Fatal(err)
				}
				got = got[h.Length:]
			}
			onLast := s.Stats().FlowRecords
			st := e.Stats()
			if st.Records != 300 || st.Acknowledged+st.Unacknowledged != st.Records {
				t.Fatalf("records %d: acknowledged %d + unacknowledged %d", st.Records, st.Acknowledged, st.Unacknowledged)
			}
			wantAcked := uint64(0)
			if c.ack {
				wantAcked = onLast
			}
			if st.Acknowledged != wantAcked {
				t.Errorf("acknowledged %d, want %d (records on the last connection %d)", st.Acknowledged, wantAcked, onLast)
			}
			if c.reset && st.Unacknowledged == 0 {
				t.Errorf("nothing unacknowledged, though a connection broke after taking a message")
			}
			if c.reset && st.Reconnects == 0 {
				t.Errorf("no reconnect after the reset")
			}
		})
	}
}

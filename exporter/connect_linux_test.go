package exporter

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// TestReconnectDoesNotWaitForUnreachable: a collector whose SYNs go
// unanswered (here a listener whose accept queue is full) must not hold
// Reconnect for the dial timeout (5 s): the exporter, and a probe's flow
// export and capture with it, would stall. Reconnect gives up after
// connectWait with errConnecting while the attempt goes on in the
// background. Before, a live probe exporting to an unreachable collector
// stalled its capture and shed load within 2.5 s.
func TestReconnectDoesNotWaitForUnreachable(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*unix.SockaddrInet4).Port))
	// Fill the accept queue (never accepted): then SYNs are dropped.
	full := false
	for i := 0; i < 16 && !full; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			full = true
			break
		}
		defer c.Close()
	}
	if !full {
		t.Fatal("the kernel answered every connection to a listener that never accepts")
	}
	tr, err := NewTCP(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	start := time.Now()
	_, err = tr.(*tcpTransport).Reconnect()
	took := time.Since(start)
	if !errors.Is(err, errConnecting) {
		t.Fatalf("Reconnect to an unreachable collector = %v, want errConnecting", err)
	}
	if took > 2*time.Second {
		t.Fatalf("Reconnect waited %v (the dial timeout is %v)", took, dialTimeout)
	}

	// An exporter to it: fifty exports (each would start a message and
	// try to connect) are dropped and counted without waiting.
	x, err := New("tcp://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	recs := ipfixtest.Random(11, 50)
	start = time.Now()
	for i := range recs {
		if err := x.Export(recs[i : i+1]); err == nil {
			t.Fatalf("export %d to an unreachable collector succeeded", i)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("50 exports to an unreachable collector took %v", took)
	}
	if st := x.Stats(); st.Dropped != 50 {
		t.Errorf("dropped %d records, want 50", st.Dropped)
	}
}

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
// Reconnect for the dial timeout (5 s) when the exporter is a live
// probe's (Config.ConnectWait): its flow export and capture would stall.
// Reconnect gives up after LiveConnectWait with errConnecting while the
// attempt goes on in the background. Before, a live probe exporting to
// an unreachable collector stalled its capture and shed load within 2.5 s.
func TestReconnectDoesNotWaitForUnreachable(t *testing.T) {
	fd, addr := unreachable(t)
	defer unix.Close(fd)
	tr, err := NewTCP(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.(*tcpTransport).wait = LiveConnectWait
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
	x, err := New("tcp://"+addr, &Config{ConnectWait: LiveConnectWait})
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

// unreachable returns a listening socket whose accept queue is full (so
// the kernel drops further SYNs) and its address.
func unreachable(t *testing.T) (int, string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
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
	for i := 0; i < 16; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return fd, addr
		}
		t.Cleanup(func() { c.Close() })
	}
	unix.Close(fd)
	t.Fatal("the kernel answered every connection to a listener that never accepts")
	return 0, ""
}

// TestSlowConnectWaitedForByDefault: an exporter without ConnectWait (a
// file replay's) waits for a collector that is slow to take the
// connection instead of dropping records. Here the collector's accept
// queue is full when the first record is exported and is emptied 300 ms
// later: the kernel takes the SYN it retransmits after a second. With
// the live probe's 200 ms wait every record of a short replay was
// dropped ("flow records lost in export") whenever the connection took
// longer, as a TLS handshake on a busy machine does.
func TestSlowConnectWaitedForByDefault(t *testing.T) {
	fd, addr := unreachable(t)
	defer unix.Close(fd)
	freed := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // the slow collector, not a wait for a result
		// Take the connections that filled the queue: room for the
		// exporter's retransmitted SYN.
		for {
			nfd, _, err := unix.Accept4(fd, unix.SOCK_NONBLOCK)
			if err != nil {
				if err == unix.EAGAIN {
					freed <- nil
				} else {
					freed <- err
				}
				return
			}
			t.Cleanup(func() { unix.Close(nfd) })
		}
	}()
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	x, err := New("tcp://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	recs := ipfixtest.Random(12, 20)
	if err := x.Export(recs); err != nil {
		t.Fatalf("export to a collector slow to accept: %v", err)
	}
	if err := x.Flush(); err != nil {
		t.Fatalf("flush to a collector slow to accept: %v", err)
	}
	if err := <-freed; err != nil {
		t.Fatal(err)
	}
	if st := x.Stats(); st.Dropped != 0 || st.Records != 20 {
		t.Errorf("sent %d records, dropped %d; want 20 sent, none dropped", st.Records, st.Dropped)
	}
	// Take and close the exporter's connection: Close then need not wait
	// for the collector to end the stream.
	deadline := time.Now().Add(5 * time.Second)
	for {
		nfd, _, err := unix.Accept4(fd, 0)
		if err == nil {
			unix.Close(nfd)
			break
		}
		if err != unix.EAGAIN || time.Now().After(deadline) {
			t.Fatalf("the exporter's connection was not in the accept queue: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling the accept queue, with a deadline
	}
}

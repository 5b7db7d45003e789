package peertest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// UDPQueue returns the receive-queue length of the IPv4 UDP socket bound
// to port (from /proc/thread-self/net/udp on Linux), and whether such a socket exists.
// Tests wait for a peer to drain its socket with it instead of sleeping.
func UDPQueue(port int) (int, bool) {
	fs, ok := udpSocket(port)
	if !ok {
		return 0, false
	}
	q := strings.Split(fs[4], ":")
	n, _ := strconv.ParseInt(q[1], 16, 64)
	return int(n), true
}

// UDPDrops returns how many datagrams the kernel dropped on the IPv4 UDP
// socket bound to port because its receive buffer was full (the last
// column of /proc/net/udp), and whether such a socket exists.
func UDPDrops(port int) (int, bool) {
	fs, ok := udpSocket(port)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(fs[len(fs)-1])
	return n, err == nil
}

// udpSocket returns the fields of the /proc/net/udp line of the socket
// bound to port. The file is read in one large read: the kernel builds
// it bucket by bucket, and a read that stops mid-table resumes by
// position, which skips a line when sockets open or close meanwhile
// (other tests do).
//
// It reads /proc/thread-self/net/udp, not /proc/net/udp: /proc/net is
// /proc/self/net, the network namespace of the process's main thread,
// and a test that enters a namespace on a locked thread (vethtest.Do,
// NetNamespaces) may be running on the main thread, which then lists
// that namespace's sockets, not ours (the collector's socket "missing"
// for 20 s in loaded full runs). The calling goroutine's thread is in
// this process's own namespace: threads that entered another are never
// handed back to other goroutines.
func udpSocket(port int) ([]string, bool) {
	f, err := os.Open("/proc/thread-self/net/udp")
	if err != nil {
		return nil, false
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, false
	}
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(bytes.NewReader(buf[:n]))
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 13 || !strings.HasSuffix(fs[1], want) || !strings.Contains(fs[4], ":") {
			continue
		}
		return fs, true
	}
	return nil, false
}

// WaitUntil polls cond (an observable state: a file, a socket queue, a
// counter) every 10 ms until it holds, failing the test after d.
func WaitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package exporter

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// TestPathMTU exports over UDP to a loopback receiver with an MTU
// larger than the path's configured: messages fill the loopback path's
// MTU (read from sysfs, less IP and UDP headers), never exceed it, and
// carry every record. With none configured they stay within
// DefaultUDPMessageSize however large the path MTU.
func TestPathMTU(t *testing.T) {
	raw, err := os.ReadFile("/sys/class/net/lo/mtu")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		peertest.Missing(t, "loopback MTU unknown (no sysfs): %v", err)
	case err != nil:
		t.Fatal(err)
	}
	loMTU, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	want := min(loMTU, 65535) - 28
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// Read while exporting: the datagrams need not all fit in the
	// socket's buffer at once (net.core.rmem_max may be small).
	got := make(chan []byte, 1024)
	go func() {
		buf := make([]byte, 65536)
		for {
			pc.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := pc.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- append([]byte(nil), buf[:n]...)
		}
	}()
	d, err := New("udp://"+pc.LocalAddr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if lim := d.MessageLimit(); lim != min(want, DefaultUDPMessageSize) {
		t.Fatalf("message limit %d with no MTU configured, want %d (loopback MTU %d)", lim, min(want, DefaultUDPMessageSize), loMTU)
	}
	d.Close()
	e, err := New("udp://"+pc.LocalAddr().String(), &Config{MTU: ipfix.MaxMessageLen})
	if err != nil {
		t.Fatal(err)
	}
	if lim := e.MessageLimit(); lim != want {
		t.Fatalf("message limit %d, want %d (loopback MTU %d)", lim, want, loMTU)
	}
	recs := append(ipfixtest.Samples(), ipfixtest.Random(5, 3000)...)
	var msgs [][]byte
	largest := 0
	// receive takes the datagrams sent so far.
	receive := func() {
		for uint64(len(msgs)) < e.Stats().Messages {
			m, ok := <-got
			if !ok {
				t.Fatalf("received %d of %d datagrams", len(msgs), e.Stats().Messages)
			}
			if len(m) > want {
				t.Fatalf("datagram of %d bytes exceeds the path MTU payload %d", len(m), want)
			}
			largest = max(largest, len(m))
			msgs = append(msgs, m)
		}
	}
	// A few messages at a time, each batch received before the next is
	// sent, so the receiver's buffer never overflows.
	for i := 0; i < len(recs); i += 600 {
		if err := e.Export(recs[i:min(i+600, len(recs))]); err != nil {
			t.Fatal(err)
		}
		receive()
	}
	e.Close()
	receive()
	if want > DefaultUDPMessageSize && largest <= DefaultUDPMessageSize {
		t.Fatalf("largest datagram %d bytes: the path MTU (%d) was not used", largest, want)
	}
	dec, _ := decodeAll(t, msgs)
	if !reflect.DeepEqual(byDomain(dec), byDomain(recs)) {
		t.Fatal("decoded records differ from the exported ones")
	}
}

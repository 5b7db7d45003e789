package exporter

import (
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/exporter/ipfix/ipfixtest"
)

// TestPathMTU exports over UDP to a loopback receiver with no MTU
// configured: messages fill the loopback path's MTU (read from sysfs,
// less IP and UDP headers) instead of the 1400-byte fallback, never
// exceed it, and carry every record.
func TestPathMTU(t *testing.T) {
	raw, err := os.ReadFile("/sys/class/net/lo/mtu")
	if err != nil {
		t.Skipf("loopback MTU unknown: %v", err)
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
	if err := pc.SetReadBuffer(8 << 20); err != nil {
		t.Fatal(err)
	}
	e, err := New("udp://"+pc.LocalAddr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.MessageLimit(); got != want {
		t.Fatalf("message limit %d, want %d (loopback MTU %d)", got, want, loMTU)
	}
	recs := append(ipfixtest.Samples(), ipfixtest.Random(5, 3000)...)
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	e.Close()
	st := e.Stats()
	var msgs [][]byte
	buf := make([]byte, 65536)
	largest := 0
	for uint64(len(msgs)) < st.Messages {
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(msgs), st.Messages, err)
		}
		if n > want {
			t.Fatalf("datagram of %d bytes exceeds the path MTU payload %d", n, want)
		}
		largest = max(largest, n)
		msgs = append(msgs, append([]byte(nil), buf[:n]...))
	}
	if want > defaultMTU && largest <= defaultMTU {
		t.Fatalf("largest datagram %d bytes: the path MTU (%d) was not used", largest, want)
	}
	got, _ := decodeAll(t, msgs)
	if !reflect.DeepEqual(byDomain(got), byDomain(recs)) {
		t.Fatal("decoded records differ from the exported ones")
	}
}

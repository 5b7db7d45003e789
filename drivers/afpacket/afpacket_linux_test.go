package afpacket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/tools/peertest"
	"github.com/mira-project/mira/tools/vethtest"
)

// openIn opens a capture source on side 0 of the pair, inside its
// namespace, skipping when the capability is missing.
func openIn(t *testing.T, p *vethtest.Pair, cfg *Config) *Source {
	t.Helper()
	var s *Source
	err := p.Do(0, func() (err error) {
		s, err = Open(p.Iface[0], cfg)
		return err
	})
	switch {
	case errors.Is(err, os.ErrPermission):
		peertest.Missing(t, "needs CAP_NET_RAW: %v", err)
	case err != nil:
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// udpIn opens a UDP socket inside namespace side, bound to port on that
// side's address.
func udpIn(t *testing.T, p *vethtest.Pair, side, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := p.Do(side, func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Addr[side], uint16(port))))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

type captured struct {
	data []byte
	ci   drivers.CaptureInfo
}

// readUntil reads packets until one is a UDP datagram to port marker, or
// the deadline closes the source. It returns the packets before the
// marker and the marker.
func readUntil(t *testing.T, s *Source, marker uint16) ([]captured, captured) {
	t.Helper()
	timer := time.AfterFunc(20*time.Second, func() { s.Close() })
	defer timer.Stop()
	var out []captured
	for {
		data, ci, err := s.Next()
		if err != nil {
			t.Fatalf("after %d packets: %v", len(out), err)
		}
		c := captured{data: bytes.Clone(data), ci: ci}
		if _, _, _, dport, _, ok := parseUDP(c.data); ok && dport == marker {
			return out, c
		}
		out = append(out, c)
	}
}

// parseUDP parses an Ethernet/IPv4/UDP frame (a test oracle, independent
// of MIRA's decoder).
func parseUDP(f []byte) (src, dst netip.Addr, sport, dport uint16, payload []byte, ok bool) {
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[9] != 17 || len(ip) < ihl+8 {
		return
	}
	src = netip.AddrFrom4([4]byte(ip[12:16]))
	dst = netip.AddrFrom4([4]byte(ip[16:20]))
	udp := ip[ihl:]
	sport = binary.BigEndian.Uint16(udp[0:])
	dport = binary.BigEndian.Uint16(udp[2:])
	end := min(len(udp), int(binary.BigEndian.Uint16(udp[4:])))
	return src, dst, sport, dport, udp[8:end], true
}

// TestCaptureVeth sends a known UDP exchange across a veth pair and
// checks every captured frame: count, bytes, direction, lengths under two
// snaplens, ordered timestamps, promiscuous membership and counters.
func TestCaptureVeth(t *testing.T) {
	p := vethtest.New(t)
	// Jumbo frames: the larger datagrams below exceed 1500 bytes.
	if err := p.SetMTU(9000); err != nil {
		t.Fatal(err)
	}
	full := openIn(t, p, nil)
	short := openIn(t, p, &Config{Snaplen: 64, NoPromiscuous: true, BlockSize: 1 << 16, BlockCount: 4})
	if n, err := p.Promiscuity(0); err != nil || n != 1 {
		t.Fatalf("promiscuity %d (%v), want 1 while the default source is open", n, err)
	}
	if ifs := full.Interfaces(); len(ifs) != 1 || ifs[0].Name != p.Iface[0] || ifs[0].LinkType != drivers.LinkEthernet || ifs[0].Index == 0 || ifs[0].Snaplen != 65535 {
		t.Fatalf("interfaces %+v", ifs)
	}

	server := udpIn(t, p, 0, 9000)
	sink := udpIn(t, p, 0, 9001)
	client := udpIn(t, p, 1, 40000)
	const n = 20
	start := time.Now()
	go func() {
		buf := make([]byte, 9000)
		for {
			m, from, err := server.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			server.WriteToUDPAddrPort(buf[:m], from)
		}
	}()
	payloads := make([][]byte, n)
	reply := make([]byte, 9000)
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Addr[0], 9000))
	for i := range payloads {
		payloads[i] = bytes.Repeat([]byte(fmt.Sprintf("mira-%02d ", i)), 1+i*25) // up to 3808 bytes
		if _, err := client.WriteToUDP(payloads[i], to); err != nil {
			t.Fatal(err)
		}
		m, _, err := client.ReadFromUDP(reply)
		if err != nil || !bytes.Equal(reply[:m], payloads[i]) {
			t.Fatalf("echo %d: %v", i, err)
		}
	}
	if _, err := client.WriteToUDP([]byte("end"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Addr[0], 9001))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sink.ReadFromUDP(reply); err != nil {
		t.Fatal(err)
	}
	end := time.Now()

	got, marker := readUntil(t, full, 9001)
	if len(got) != 2*n {
		t.Fatalf("captured %d frames before the marker, want %d", len(got), 2*n)
	}
	last := start.UnixNano() - int64(time.Millisecond)
	for i, c := range got {
		k := i / 2
		in := i%2 == 0
		wantSrc, wantDst, wantDir, wantSport, wantDport := p.Addr[1], p.Addr[0], drivers.DirIn, uint16(40000), uint16(9000)
		macDst, macSrc := p.MAC[0], p.MAC[1]
		if !in {
			wantSrc, wantDst, wantDir, wantSport, wantDport = p.Addr[0], p.Addr[1], drivers.DirOut, 9000, 40000
			macDst, macSrc = p.MAC[1], p.MAC[0]
		}
		src, dst, sport, dport, payload, ok := parseUDP(c.data)
		if !ok || src != wantSrc || dst != wantDst || sport != wantSport || dport != wantDport || !bytes.Equal(payload, payloads[k]) {
			t.Fatalf("frame %d: %v:%d > %v:%d %q", i, src, sport, dst, dport, payload)
		}
		if !bytes.Equal(c.data[0:6], macDst) || !bytes.Equal(c.data[6:12], macSrc) {
			t.Fatalf("frame %d: MACs %x > %x", i, c.data[6:12], c.data[0:6])
		}
		wantLen := 14 + 20 + 8 + len(payloads[k])
		if c.ci.Length != wantLen || c.ci.CaptureLength != wantLen || len(c.data) != wantLen {
			t.Fatalf("frame %d: length %d caplen %d, want %d", i, c.ci.Length, c.ci.CaptureLength, wantLen)
		}
		if c.ci.Direction != wantDir || c.ci.LinkType != drivers.LinkEthernet {
			t.Fatalf("frame %d: direction %d link %d", i, c.ci.Direction, c.ci.LinkType)
		}
		if c.ci.Timestamp < last || c.ci.Timestamp > end.UnixNano()+int64(time.Millisecond) {
			t.Fatalf("frame %d: timestamp %d out of order or outside [%d, %d]", i, c.ci.Timestamp, start.UnixNano(), end.UnixNano())
		}
		last = c.ci.Timestamp
	}
	if marker.ci.Timestamp < last {
		t.Fatalf("marker timestamp %d before %d", marker.ci.Timestamp, last)
	}

	gotShort, _ := readUntil(t, short, 9001)
	if len(gotShort) != 2*n {
		t.Fatalf("snaplen 64: captured %d frames, want %d", len(gotShort), 2*n)
	}
	for i, c := range gotShort {
		if c.ci.Length != got[i].ci.Length || c.ci.CaptureLength != min(64, c.ci.Length) || !bytes.Equal(c.data, got[i].data[:c.ci.CaptureLength]) {
			t.Fatalf("snaplen 64 frame %d: length %d caplen %d", i, c.ci.Length, c.ci.CaptureLength)
		}
	}

	st := full.Stats()
	var octets uint64
	for _, c := range got {
		octets += uint64(c.ci.Length)
	}
	octets += uint64(marker.ci.Length)
	if st.Packets != 2*n+1 || st.Octets != octets || st.Drops != 0 || st.Errors != 0 {
		t.Fatalf("stats %+v, want %d packets %d octets", st, 2*n+1, octets)
	}
	if err := full.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := full.Next(); err != ErrClosed {
		t.Fatalf("Next after Close: %v", err)
	}
	if err := full.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n, err := p.Promiscuity(0); err != nil || n != 0 {
		t.Fatalf("promiscuity %d (%v) after Close, want 0", n, err)
	}
}

// sendAndSink sends count datagrams of size bytes from side 1 to a sink
// on side 0 and waits until the sink has them all: by then the capture
// socket has seen every frame.
func sendAndSink(t *testing.T, p *vethtest.Pair, count, size int, sports ...int) {
	t.Helper()
	sink := udpIn(t, p, 0, 9100)
	if len(sports) == 0 {
		sports = []int{41000}
	}
	clients := make([]*net.UDPConn, len(sports))
	for i, sp := range sports {
		clients[i] = udpIn(t, p, 1, sp)
	}
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Addr[0], 9100))
	// Batches keep the sink's socket buffer from overflowing.
	const batch = 50
	msg := make([]byte, size)
	buf := make([]byte, 2000)
	for i := 0; i < count; i += batch {
		for j := i; j < min(i+batch, count); j++ {
			binary.BigEndian.PutUint32(msg, uint32(j))
			if _, err := clients[j%len(clients)].WriteToUDP(msg, to); err != nil {
				t.Fatal(err)
			}
		}
		for j := i; j < min(i+batch, count); j++ {
			if _, _, err := sink.ReadFromUDP(buf); err != nil {
				t.Fatalf("sink got %d of %d: %v", j, count, err)
			}
		}
	}
}

// drain reads until the poll timeout says the ring is empty.
func drain(t *testing.T, s *Source) int {
	t.Helper()
	n := 0
	for {
		_, _, err := s.Next()
		if err == ErrTimeout {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
}

// TestDrops overflows a one-block ring and checks that every frame is
// either delivered or counted as a kernel drop.
func TestDrops(t *testing.T) {
	p := vethtest.New(t)
	s := openIn(t, p, &Config{BlockSize: os.Getpagesize(), BlockCount: 1, PollTimeout: 300 * time.Millisecond, NoPromiscuous: true})
	const sent = 300
	sendAndSink(t, p, sent, 200)
	mid := s.Stats()
	if mid.Drops == 0 {
		t.Fatalf("no drops counted with a %d-byte ring: %+v", os.Getpagesize(), mid)
	}
	got := drain(t, s)
	st := s.Stats()
	if uint64(got)+st.Drops != sent || st.Packets != uint64(got) || st.Drops < mid.Drops {
		t.Fatalf("delivered %d + dropped %d != sent %d (stats %+v, earlier %+v)", got, st.Drops, sent, st, mid)
	}
	t.Logf("one-page ring: %d delivered, %d dropped, %d queue freezes", got, st.Drops, s.QueueFreezes())
}

// TestFanout checks that two sockets in one hash fanout group share the
// traffic of several flows without loss or duplication.
func TestFanout(t *testing.T) {
	p := vethtest.New(t)
	cfg := &Config{FanoutGroup: 4242, FanoutMode: FanoutHash, PollTimeout: 300 * time.Millisecond, BlockSize: 1 << 16, BlockCount: 8}
	a := openIn(t, p, cfg)
	b := openIn(t, p, cfg)
	const sent = 64
	sendAndSink(t, p, sent, 100, 42001, 42002, 42003, 42004, 42005, 42006, 42007, 42008)
	na, nb := drain(t, a), drain(t, b)
	if na+nb != sent {
		t.Fatalf("fanout delivered %d + %d, want %d", na, nb, sent)
	}
	t.Logf("fanout split %d/%d", na, nb)
}

// TestCloseWakesNext closes a source while Next waits with no traffic.
func TestCloseWakesNext(t *testing.T) {
	p := vethtest.New(t)
	s := openIn(t, p, &Config{BlockSize: 1 << 16, BlockCount: 2})
	errc := make(chan error, 1)
	go func() {
		_, _, err := s.Next()
		errc <- err
	}()
	s.Close()
	select {
	case err := <-errc:
		if err != ErrClosed {
			t.Fatalf("Next returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next still blocked 10 s after Close")
	}
}

// TestNextNoAllocs guards the hot path on a ring full of frames.
func TestNextNoAllocs(t *testing.T) {
	p := vethtest.New(t)
	// 401 of the 1200 frames are read: a timeout means lost frames, not a
	// slow machine (the generous poll timeout only bounds a failure).
	s := openIn(t, p, &Config{BlockSize: 1 << 20, BlockCount: 4, PollTimeout: 10 * time.Second, NoPromiscuous: true})
	sendAndSink(t, p, 1200, 100)
	for range 100 {
		if _, _, err := s.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(300, func() {
		if _, _, err := s.Next(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Next allocates %v times per packet", n)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open("mira-no-such-if0", nil); err == nil {
		t.Fatal("opened a missing interface")
	} else if errors.Is(err, os.ErrPermission) {
		peertest.Missing(t, "needs CAP_NET_RAW: %v", err)
	}
	if _, err := Open("lo", &Config{BlockSize: 1000}); err == nil {
		t.Fatal("accepted a block size that is not a multiple of the page size")
	}
}

// TestReplayEqualsFile replays corpus captures with tcpreplay on one end
// of the pair and checks that the capture on the other end equals the
// file frame by frame, including 802.1Q tags the kernel strips on receive
// and the source puts back.
func TestReplayEqualsFile(t *testing.T) {
	peertest.Program(t, "tcpreplay")
	dir := peertest.CorpusFile(t, "pcaps")
	for _, rel := range []string{"gopacket/test_ethernet.pcap", "libtrace/vlan.pcap", "arkime/twovlan.pcap", "zeek/q-in-q.pcap"} {
		t.Run(rel, func(t *testing.T) {
			path := filepath.Join(dir, rel)
			want := readFile(t, path)
			p := vethtest.New(t)
			if err := p.SetMTU(9000); err != nil {
				t.Fatal(err)
			}
			s := openIn(t, p, &Config{BlockSize: 1 << 20, BlockCount: 4})
			short := openIn(t, p, &Config{Snaplen: 64, BlockSize: 1 << 20, BlockCount: 4})
			batched := openIn(t, p, &Config{BlockSize: 1 << 20, BlockCount: 4})
			out, err := p.Command(1, "tcpreplay", "-q", "-t", "-i", p.Iface[1], path).CombinedOutput()
			if err != nil {
				t.Fatalf("tcpreplay: %v: %s", err, out)
			}
			timer := time.AfterFunc(20*time.Second, func() { s.Close(); short.Close(); batched.Close() })
			defer timer.Stop()
			for i, w := range want {
				data, ci, err := s.Next()
				if err != nil {
					t.Fatalf("after %d of %d frames: %v", i, len(want), err)
				}
				if !bytes.Equal(data, w.data) || ci.Length != w.ci.Length {
					t.Fatalf("frame %d: captured %d bytes (wire %d)\n% x\nfile %d bytes\n% x", i, len(data), ci.Length, data[:min(len(data), 48)], len(w.data), w.data[:min(len(w.data), 48)])
				}
			}
			// NextBatch: frames read in place, VLAN tags put back in
			// its arena, all valid together until the next call.
			frames := make([][]byte, 16)
			cis := make([]drivers.CaptureInfo, 16)
			for i := 0; i < len(want); {
				n, err := batched.NextBatch(frames, cis)
				if err != nil {
					t.Fatalf("NextBatch after %d of %d frames: %v", i, len(want), err)
				}
				for j := range n {
					if w := want[i+j]; !bytes.Equal(frames[j], w.data) || cis[j].Length != w.ci.Length {
						t.Fatalf("batched frame %d: captured %d bytes (wire %d)\n% x\nfile %d bytes\n% x", i+j, len(frames[j]), cis[j].Length, frames[j][:min(len(frames[j]), 48)], len(w.data), w.data[:min(len(w.data), 48)])
					}
				}
				i += n
			}
			timer.Reset(20 * time.Second)
			for i, w := range want {
				data, ci, err := short.Next()
				if err != nil {
					t.Fatalf("snaplen 64: after %d of %d frames: %v", i, len(want), err)
				}
				n := min(64, len(w.data))
				if !bytes.Equal(data, w.data[:n]) || ci.CaptureLength != n || ci.Length != w.ci.Length {
					t.Fatalf("snaplen 64 frame %d: caplen %d len %d\n% x\nfile\n% x", i, ci.CaptureLength, ci.Length, data, w.data[:n])
				}
			}
		})
	}
}

func readFile(t *testing.T, path string) []captured {
	t.Helper()
	r, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []captured
	for {
		data, ci, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if ci.CaptureLength != ci.Length {
			t.Fatalf("%s: frame %d cut by the snaplen, cannot be replayed whole", path, len(out))
		}
		out = append(out, captured{data: bytes.Clone(data), ci: ci})
	}
}

// TestLoopbackOnce captures on a namespace's loopback interface, where
// the kernel hands a packet socket every packet twice (outgoing, then
// incoming), and checks each datagram is delivered exactly once.
func TestLoopbackOnce(t *testing.T) {
	p := vethtest.New(t)
	var s *Source
	err := p.Do(0, func() (err error) {
		s, err = Open("lo", &Config{PollTimeout: 300 * time.Millisecond, BlockSize: 1 << 16, BlockCount: 8})
		return err
	})
	switch {
	case errors.Is(err, os.ErrPermission):
		peertest.Missing(t, "needs CAP_NET_RAW: %v", err)
	case err != nil:
		t.Fatal(err)
	}
	defer s.Close()
	var rx, tx *net.UDPConn
	lo := netip.MustParseAddr("127.0.0.1")
	if err := p.Do(0, func() (err error) {
		if rx, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 9200))); err != nil {
			return err
		}
		tx, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 9201)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	defer tx.Close()
	rx.SetDeadline(time.Now().Add(20 * time.Second))
	const sent = 25
	buf := make([]byte, 100)
	for i := range sent {
		if _, err := tx.WriteToUDPAddrPort([]byte{byte(i)}, netip.AddrPortFrom(lo, 9200)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := rx.ReadFromUDP(buf); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[byte]int{}
	for {
		data, ci, err := s.Next()
		if err == ErrTimeout {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, _, sport, dport, pl, ok := parseUDP(data); ok && sport == 9201 && dport == 9200 && len(pl) == 1 {
			seen[pl[0]]++
			if ci.Direction != drivers.DirIn {
				t.Errorf("datagram %d delivered with direction %v", pl[0], ci.Direction)
			}
		}
	}
	for i := range sent {
		if seen[byte(i)] != 1 {
			t.Errorf("datagram %d delivered %d times, want once", i, seen[byte(i)])
		}
	}
	if st := s.Stats(); st.Drops != 0 {
		t.Errorf("kernel drops %d", st.Drops)
	}
}

// drainBatch reads with NextBatch until the poll timeout says the ring
// is empty and returns the UDP source ports seen, counted.
func drainBatch(t *testing.T, s *Source) map[uint16]int {
	t.Helper()
	frames := make([][]byte, 32)
	cis := make([]drivers.CaptureInfo, 32)
	ports := map[uint16]int{}
	for {
		n, err := s.NextBatch(frames, cis)
		if err == ErrTimeout {
			return ports
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("NextBatch returned no frame and no error")
		}
		for i, f := range frames[:n] {
			if cis[i].CaptureLength != len(f) {
				t.Fatalf("frame of %d bytes with capture length %d", len(f), cis[i].CaptureLength)
			}
			if _, _, sport, _, _, ok := parseUDP(f); ok {
				ports[sport]++
			}
		}
	}
}

// TestOpenFanout checks that OpenFanout's sockets, read with NextBatch,
// share the traffic of several flows with no loss and no duplicate, each
// flow on one socket, and that its group is not one another process could
// name by accident.
func TestOpenFanout(t *testing.T) {
	p := vethtest.New(t)
	var srcs []*Source
	err := p.Do(0, func() (err error) {
		srcs, err = OpenFanout(p.Iface[0], 3, FanoutHash, &Config{PollTimeout: 300 * time.Millisecond, BlockSize: 1 << 16, BlockCount: 8, FanoutGroup: 7})
		return err
	})
	switch {
	case errors.Is(err, os.ErrPermission):
		peertest.Missing(t, "needs CAP_NET_RAW: %v", err)
	case err != nil:
		t.Fatal(err)
	}
	// A plain socket asking for group 7 is not in OpenFanout's group, so
	// it gets every packet on its own.
	other := openIn(t, p, &Config{PollTimeout: 300 * time.Millisecond, FanoutGroup: 7, FanoutMode: FanoutHash})
	const sent = 96
	sports := []int{42101, 42102, 42103, 42104, 42105, 42106, 42107, 42108}
	sendAndSink(t, p, sent, 100, sports...)
	total := 0
	owner := map[uint16]int{}
	for i, s := range srcs {
		for port, n := range drainBatch(t, s) {
			if j, ok := owner[port]; ok {
				t.Errorf("flow from port %d on sockets %d and %d", port, j, i)
			}
			owner[port] = i
			if n != sent/len(sports) {
				t.Errorf("socket %d: %d packets from port %d, want %d", i, n, port, sent/len(sports))
			}
			total += n
		}
		s.Close()
	}
	if total != sent {
		t.Fatalf("fanout delivered %d, want %d", total, sent)
	}
	if n := drain(t, other); n < sent {
		t.Fatalf("a socket outside the group saw %d packets, want at least %d", n, sent)
	}
}

// TestNextBatchNoAllocs guards the batch read path.
func TestNextBatchNoAllocs(t *testing.T) {
	p := vethtest.New(t)
	// The ring holds every packet sent (4 MiB), and the runs read at most
	// 8 × 101 of the 2400 frames, so a timeout means a lost block, not a
	// slow machine: the generous poll timeout only bounds a failure.
	s := openIn(t, p, &Config{BlockSize: 1 << 20, BlockCount: 4, PollTimeout: 10 * time.Second, NoPromiscuous: true})
	sendAndSink(t, p, 2400, 100)
	frames := make([][]byte, 8)
	cis := make([]drivers.CaptureInfo, 8)
	if _, err := s.NextBatch(frames, cis); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := s.NextBatch(frames, cis); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("NextBatch allocates %v times per call", n)
	}
	if used, total := s.Backlog(); used < 1 || total != 4 {
		t.Fatalf("backlog %d of %d blocks with packets waiting", used, total)
	}
}

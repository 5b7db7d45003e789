//go:build linux && cgo

package fore

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/fore/atm"
	"github.com/mira-project/mira/drivers/fore/fatm"
	"github.com/mira-project/mira/drivers/fore/fatmfs"
	"github.com/mira-project/mira/tools/peertest"
)

func TestABILayout(t *testing.T) {
	if err := abiCheck(); err != nil {
		t.Fatal(err)
	}
}

// mount serves a simulated device over FUSE.
func mount(t *testing.T, cells []fatmfs.Cell, cfg *fatmfs.Config) *fatmfs.Server {
	t.Helper()
	peertest.FUSE(t)
	srv, err := fatmfs.Mount(t.TempDir(), "fatm0", cells, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return srv
}

type vcPkt struct {
	vc  atm.VC
	pkt []byte
}

// lineCells segments the corpus' IP packets onto VCs round-robin (LLC
// routed) and returns the 53-byte cells, in PDU order, and the packets.
func lineCells(t *testing.T, vcs []atm.VC, n int) ([]fatmfs.Cell, []vcPkt) {
	ips := ipPackets(ethernetFrames(t, corpus(t, "pcaps/ndpi/1kxun.pcap")))
	if len(ips) > n {
		ips = ips[:n]
	}
	var cells []fatmfs.Cell
	var pkts []vcPkt
	ts := int64(1_700_000_000_000_000_000)
	for i, ip := range ips {
		vc := vcs[i%len(vcs)]
		raw := atm.AppendCells(nil, atm.Header{VPI: vc.VPI(), VCI: vc.VCI()}.UNI(), atm.AppendEncap(nil, atm.EncapLLC, drivers.LinkRaw, ip), 0, 0)
		for off := 0; off < len(raw); off += atm.CellSize {
			ts += 2831
			cells = append(cells, fatmfs.Cell{Timestamp: ts, Data: raw[off : off+atm.CellSize], Dir: uint8(1 + i%2)})
		}
		pkts = append(pkts, vcPkt{vc, ip})
	}
	return cells, pkts
}

func drain(t *testing.T, src drivers.Source) []vcPkt {
	t.Helper()
	var out []vcPkt
	for {
		data, ci, err := src.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !ci.HasVC || ci.CaptureLength != len(data) || ci.Direction == drivers.DirUnknown {
			t.Fatalf("capture info %+v", ci)
		}
		out = append(out, vcPkt{atm.MakeVC(ci.VPI, ci.VCI), bytes.Clone(data)})
	}
}

// TestDeviceAAL5Ring runs the cgo driver against the simulated card over
// FUSE in AAL5 mode with the mmap ring and two hardware VC filters.
func TestDeviceAAL5Ring(t *testing.T) {
	vcs := []atm.VC{atm.MakeVC(1, 100), atm.MakeVC(1, 101), atm.MakeVC(2, 300)}
	cells, pkts := lineCells(t, vcs, 600)
	srv := mount(t, cells, &fatmfs.Config{RingSize: 64 << 10}) // small: forces wrap-around
	if !srv.HasRing() {
		peertest.Missing(t, "the kernel lacks FUSE passthrough: no mmap ring")
	}
	src, err := OpenLive(srv.Path(), &DeviceConfig{Filters: []atm.Filter{atm.Exact(1, 100), atm.Exact(1, 101)}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.dev.(*cdev).ring == nil {
		t.Fatal("driver did not map the ring")
	}
	got := drain(t, src)
	var want []vcPkt
	filteredCells := 0
	for _, p := range pkts {
		if p.vc == vcs[2] {
			filteredCells += atm.PDUCells(len(p.pkt) + 8)
			continue
		}
		want = append(want, p)
	}
	if len(got) != len(want) {
		t.Fatalf("%d packets, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].vc != want[i].vc || !bytes.Equal(got[i].pkt, want[i].pkt) {
			t.Fatalf("packet %d: VC %d/%d, %d bytes; want VC %d/%d, %d bytes", i, got[i].vc.VPI(), got[i].vc.VCI(), len(got[i].pkt), want[i].vc.VPI(), want[i].vc.VCI(), len(want[i].pkt))
		}
	}
	ds, err := src.DeviceStats()
	if err != nil {
		t.Fatal(err)
	}
	if ds.Cells != uint64(len(cells)) || ds.VPIVCIDrops != uint64(filteredCells) || ds.AAL5PDUs != uint64(len(want)) || ds.Records != uint64(len(want)) {
		t.Fatalf("device stats %+v; want cells %d vpi/vci drops %d pdus %d", ds, len(cells), filteredCells, len(want))
	}
	io := srv.Ioctls()
	if io[fatm.IocGetInfo] == 0 || io[fatm.IocSetMode] != 1 || io[fatm.IocAddFilter] != 2 || io[fatm.IocClrFilter] != 1 || io[fatm.IocWait] == 0 {
		t.Fatalf("ioctls served: %v", io)
	}
	if f := srv.Filters(); len(f) != 2 || f[0] != (fatm.Filter{VPI: 1, VCI: 100, VPIMask: 0xffff, VCIMask: 0xffff}) {
		t.Fatalf("filters in the card: %+v", f)
	}
	if st := src.Stats(); st.Packets != uint64(len(want)) || st.Errors != 0 || st.Drops != 0 {
		t.Fatalf("source stats %+v", st)
	}
}

// TestDeviceCellsRead runs raw-cell mode over read() (no ring), with the
// driver reassembling in software, a corrected header bit and a payload
// error on the line.
func TestDeviceCellsRead(t *testing.T) {
	vcs := []atm.VC{atm.MakeVC(0, 32), atm.MakeVC(0, 33)}
	cells, pkts := lineCells(t, vcs, 200)
	// One correctable header error in cell 3, one payload bit error in the
	// last cell of packet 10 (a CRC error: that packet is lost).
	cells[3].Data = bytes.Clone(cells[3].Data)
	cells[3].Data[1] ^= 0x08
	lost := 10
	idx := 0
	for i := 0; i <= lost; i++ {
		idx += atm.PDUCells(len(pkts[i].pkt) + 8)
	}
	cells[idx-1].Data = bytes.Clone(cells[idx-1].Data)
	cells[idx-1].Data[20] ^= 0x40
	srv := mount(t, cells, &fatmfs.Config{RingSize: -1})
	src, err := OpenLive(srv.Path(), &DeviceConfig{Mode: ModeCells})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.dev.(*cdev).ring != nil {
		t.Fatal("ring mapped although the device has none")
	}
	got := drain(t, src)
	want := append(append([]vcPkt(nil), pkts[:lost]...), pkts[lost+1:]...)
	if len(got) != len(want) {
		t.Fatalf("%d packets, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].vc != want[i].vc || !bytes.Equal(got[i].pkt, want[i].pkt) {
			t.Fatalf("packet %d differs", i)
		}
	}
	ds, _ := src.DeviceStats()
	if ds.HECCorrected != 1 || ds.Records != uint64(len(cells)) {
		t.Fatalf("device stats %+v", ds)
	}
	a := src.ATMStats()
	if a.Drops[atm.ReasonCRC] != 1 || src.proc.VCStats(pkts[lost].vc).Drops[atm.ReasonCRC] != 1 {
		t.Fatalf("driver drops %v", a.Drops)
	}
	if st := src.Stats(); st.Errors != 1 {
		t.Fatalf("source stats %+v", st)
	}
}

// TestDeviceFirstCell runs first-cell mode with a snaplen-free ring.
func TestDeviceFirstCell(t *testing.T) {
	vcs := []atm.VC{atm.MakeVC(5, 50)}
	cells, pkts := lineCells(t, vcs, 100)
	srv := mount(t, cells, nil)
	src, err := OpenLive(srv.Path(), &DeviceConfig{Mode: ModeFirstCell})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	n, truncated := 0, 0
	for {
		data, ci, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := pkts[n].pkt
		if ci.Length != len(p) || !bytes.Equal(data, p[:len(data)]) {
			t.Fatalf("packet %d: length %d want %d", n, ci.Length, len(p))
		}
		if ci.CaptureLength < ci.Length {
			truncated++
		}
		n++
	}
	if n != len(pkts) || src.ATMStats().Truncated != uint64(truncated) || truncated == 0 {
		t.Fatalf("%d packets of %d, %d truncated, stats %+v", n, len(pkts), truncated, src.ATMStats())
	}
}

type flowKey struct {
	vc       atm.VC
	src, dst string
	proto    uint8
	sp, dp   uint16
}

// flowOf returns the 5-tuple of an IPv4/IPv6 packet (ports 0 for
// non-TCP/UDP or truncated packets).
func flowOf(vc atm.VC, ip []byte) flowKey {
	k := flowKey{vc: vc}
	var l4 []byte
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4:
		k.src, k.dst, k.proto = string(ip[12:16]), string(ip[16:20]), ip[9]
		l4 = ip[int(ip[0]&15)*4:]
	case len(ip) >= 40 && ip[0]>>4 == 6:
		k.src, k.dst, k.proto = string(ip[8:24]), string(ip[24:40]), ip[6]
		l4 = ip[40:]
	}
	if (k.proto == 6 || k.proto == 17) && len(l4) >= 4 {
		k.sp, k.dp = uint16(l4[0])<<8|uint16(l4[1]), uint16(l4[2])<<8|uint16(l4[3])
	}
	return k
}

// TestDeviceFlowsPerVC is the driver half of the end-to-end check: a real
// trace spread over three PVCs by conversation, captured through the
// FUSE device with a hardware filter given as an operator's device spec,
// yields exactly the flows of the selected PVCs, each on its VC.
func TestDeviceFlowsPerVC(t *testing.T) {
	var pkts []fatmfs.Packet
	for _, ip := range ipPackets(ethernetFrames(t, corpus(t, "pcaps/ndpi/1kxun.pcap"))) {
		pkts = append(pkts, fatmfs.Packet{Timestamp: 1, Data: ip, Link: drivers.LinkRaw})
	}
	vcs := []atm.VC{atm.MakeVC(1, 100), atm.MakeVC(1, 101), atm.MakeVC(2, 300)}
	srv := mount(t, fatmfs.Segment(pkts, vcs), nil)
	want := map[flowKey]int{}
	for _, p := range pkts {
		if vc := fatmfs.VCFor(p, vcs); vc != vcs[2] {
			want[flowOf(vc, p.Data)]++
		}
	}
	src, err := OpenSpec(srv.Path() + ",vc=1/100,vc=1/101")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := map[flowKey]int{}
	perVC := map[atm.VC]int{}
	for _, p := range drain(t, src) {
		k := flowOf(p.vc, p.pkt)
		got[k]++
		if got[k] == 1 {
			perVC[p.vc]++
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d flows, want %d", len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("flow %+v: %d packets, want %d", k, got[k], n)
		}
	}
	if perVC[vcs[0]] == 0 || perVC[vcs[1]] == 0 || perVC[vcs[2]] != 0 {
		t.Fatalf("flows per VC %v", perVC)
	}
	t.Logf("flows per VC: 1/100 %d, 1/101 %d (2/300 filtered in the card: %d cells)", perVC[vcs[0]], perVC[vcs[1]], srv.Stats().VPIVCIDrops)
}

// TestDeviceControl exercises the filter ioctls' error paths and
// Interrupt through the kernel.
func TestDeviceControl(t *testing.T) {
	cells, _ := lineCells(t, []atm.VC{atm.MakeVC(1, 1)}, 10)
	srv := mount(t, cells, &fatmfs.Config{MaxFilters: 2})
	dev, err := OpenDevice(srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	f := fatm.Filter{VPI: 1, VCI: 1, VPIMask: 0xff, VCIMask: 0xffff}
	if err := dev.AddFilter(f); err != nil {
		t.Fatal(err)
	}
	if err := dev.DelFilter(f); err != nil {
		t.Fatal(err)
	}
	if err := dev.DelFilter(f); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("deleting an absent filter: %v", err)
	}
	dev.AddFilter(f)
	dev.AddFilter(f)
	if err := dev.AddFilter(f); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("third filter in two slots: %v", err)
	}
	if err := dev.SetMode(fatm.Mode{Mode: 99}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("bad mode: %v", err)
	}
	if _, err := NewDeviceSource(dev, "x", &DeviceConfig{Filters: make([]atm.Filter, 3)}); err == nil {
		t.Fatal("more filters than slots accepted")
	}
	dev.Close()
	if _, _, err := dev.Next(0); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if _, err := dev.Stats(); !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Stats after Close: %v", err)
	}
}

// TestDeviceTimeoutAndClose checks PollTimeout before the card delivers
// anything, and Close from another goroutine while Next waits.
func TestDeviceTimeoutAndClose(t *testing.T) {
	cells, _ := lineCells(t, []atm.VC{atm.MakeVC(1, 1)}, 10)
	srv := mount(t, cells, nil)
	dev, err := OpenDevice(srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	// No SETMODE yet: the card delivers nothing.
	if _, _, err := dev.Next(30 * time.Millisecond); !errors.Is(err, drivers.ErrTimeout) {
		t.Fatalf("Next before SETMODE: %v", err)
	}
	done := make(chan error)
	go func() {
		_, _, err := dev.Next(0)
		done <- err
	}()
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, drivers.ErrClosed) {
		t.Fatalf("Next during Close: %v", err)
	}
}

// TestDeviceNoAllocs guards the live path: reading from the ring and
// reassembled frames through the processor allocates nothing per packet
// (the WAIT ioctl that refills the ring is amortised over many records).
func TestDeviceNoAllocs(t *testing.T) {
	cells, pkts := lineCells(t, []atm.VC{atm.MakeVC(1, 100), atm.MakeVC(1, 101)}, 2000)
	srv := mount(t, cells, &fatmfs.Config{RingSize: 8 << 20})
	if !srv.HasRing() {
		peertest.Missing(t, "the kernel lacks FUSE passthrough: no mmap ring")
	}
	src, err := OpenLive(srv.Path(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for range 10 {
		if _, _, err := src.Next(); err != nil {
			t.Fatal(err)
		}
	}
	n := min(len(pkts)-20, 1000)
	if a := testing.AllocsPerRun(n, func() {
		if _, _, err := src.Next(); err != nil {
			t.Fatal(err)
		}
	}); a > 0 {
		t.Fatalf("%v allocations per packet", a)
	}
}

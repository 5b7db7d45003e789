//go:build linux

package fatmfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mira-project/mira/drivers/fore/atm"
	"github.com/mira-project/mira/drivers/fore/fatm"
)

// Cell is one cell on the simulated line.
type Cell struct {
	Timestamp int64
	Data      []byte // 53 bytes: header, HEC, payload
	Dir       uint8  // fatm.DirA or fatm.DirB
}

// Config configures the simulated card. The zero value means: UNI, a
// 1 MiB ring (when passthrough works), 64 filter slots.
type Config struct {
	NNI bool
	// RingSize is the mmap ring size in bytes; negative disables the ring.
	RingSize   int
	MaxFilters int
}

// Device is the simulated card's state.
type Device struct {
	mu      sync.Mutex
	cfg     Config
	cells   []Cell
	pos     int
	mode    fatm.Mode
	modeSet chan struct{}
	filters []fatm.Filter
	stats   fatm.Stats
	reasm   *atm.Reassembler
	inPDU   map[atm.VC]bool
	ring    *fatm.Ring
	shm     *os.File
	shmMem  []byte
	held    *record // produced but not yet stored in the ring
	ioctls  map[uint32]int
}

type record struct {
	rec  fatm.Rec
	data []byte
}

// Server is a mounted simulated device.
type Server struct {
	dev    *Device
	server *fuse.Server
	dir    string
	path   string
}

// Mount serves a device file called name in the directory dir, fed from
// cells. Close unmounts it.
func Mount(dir, name string, cells []Cell, cfg *Config) (*Server, error) {
	d := &Device{cells: cells, modeSet: make(chan struct{}), inPDU: map[atm.VC]bool{}, ioctls: map[uint32]int{}}
	if cfg != nil {
		d.cfg = *cfg
	}
	if d.cfg.RingSize == 0 {
		d.cfg.RingSize = 1 << 20
	}
	if d.cfg.MaxFilters <= 0 {
		d.cfg.MaxFilters = 64
	}
	d.reasm = atm.NewReassembler(&atm.ReassemblyConfig{Timeout: -1})
	root := &rootNode{dev: d, name: name}
	srv, err := fs.Mount(dir, root, &fs.Options{
		MountOptions: fuse.MountOptions{FsName: "fatmfs", Name: "fatmfs", DirectMount: true},
	})
	if err != nil {
		return nil, fmt.Errorf("fatmfs: mount %s: %w", dir, err)
	}
	s := &Server{dev: d, server: srv, dir: dir, path: filepath.Join(dir, name)}
	// The server already answers the kernel: configure under the lock.
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg.RingSize > 0 && srv.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0 {
		if err := d.setupRing(srv); err != nil {
			d.cfg.RingSize = -1 // serve read() only
		}
	} else {
		d.cfg.RingSize = -1
	}
	return s, nil
}

// setupRing creates the shared ring in /dev/shm and checks that the
// kernel accepts it as a passthrough backing file.
func (d *Device) setupRing(srv *fuse.Server) error {
	f, err := os.CreateTemp("/dev/shm", "fatmfs-ring-*")
	if err != nil {
		return err
	}
	os.Remove(f.Name())
	size := (fatm.RingHdrSize + d.cfg.RingSize + 4095) &^ 4095
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return err
	}
	id, errno := srv.RegisterBackingFd(&fuse.BackingMap{Fd: int32(f.Fd())})
	if errno != 0 {
		f.Close()
		return errno
	}
	srv.UnregisterBackingFd(id)
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		f.Close()
		return err
	}
	ring, err := fatm.InitRing(mem)
	if err != nil {
		syscall.Munmap(mem)
		f.Close()
		return err
	}
	d.shm, d.shmMem, d.ring = f, mem, ring
	d.cfg.RingSize = size
	return nil
}

// Path is the device file's path.
func (s *Server) Path() string { return s.path }

// HasRing reports whether the device offers the mmap ring.
func (s *Server) HasRing() bool {
	s.dev.mu.Lock()
	defer s.dev.mu.Unlock()
	return s.dev.ring != nil
}

// Stats returns the card's counters.
func (s *Server) Stats() fatm.Stats {
	s.dev.mu.Lock()
	defer s.dev.mu.Unlock()
	return s.dev.stats
}

// Ioctls returns how many times each ioctl request number was served.
func (s *Server) Ioctls() map[uint32]int {
	s.dev.mu.Lock()
	defer s.dev.mu.Unlock()
	m := make(map[uint32]int, len(s.dev.ioctls))
	for k, v := range s.dev.ioctls {
		m[k] = v
	}
	return m
}

// Filters returns the filters the driver loaded.
func (s *Server) Filters() []fatm.Filter {
	s.dev.mu.Lock()
	defer s.dev.mu.Unlock()
	return append([]fatm.Filter(nil), s.dev.filters...)
}

// Close unmounts the file system and frees the ring.
func (s *Server) Close() error {
	err := s.server.Unmount()
	if s.dev.shmMem != nil {
		syscall.Munmap(s.dev.shmMem)
		s.dev.shm.Close()
	}
	return err
}

type rootNode struct {
	fs.Inode
	dev  *Device
	name string
}

var _ = (fs.NodeOnAdder)((*rootNode)(nil))

func (r *rootNode) OnAdd(ctx context.Context) {
	ch := r.NewPersistentInode(ctx, &devNode{dev: r.dev}, fs.StableAttr{Mode: syscall.S_IFREG})
	r.AddChild(r.name, ch, false)
}

type devNode struct {
	fs.Inode
	dev *Device
}

var (
	_ = (fs.NodeOpener)((*devNode)(nil))
	_ = (fs.NodeGetattrer)((*devNode)(nil))
)

func (n *devNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	n.dev.mu.Lock()
	defer n.dev.mu.Unlock()
	if n.dev.ring != nil {
		out.Size = uint64(n.dev.cfg.RingSize)
	}
	return 0
}

func (n *devNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	h := &handle{dev: n.dev}
	n.dev.mu.Lock()
	defer n.dev.mu.Unlock()
	if n.dev.ring != nil {
		return h, 0, 0 // passthrough (set by go-fuse from PassthroughFd)
	}
	return h, fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NONSEEKABLE, 0
}

type handle struct {
	dev *Device
}

var (
	_ = (fs.FileReader)((*handle)(nil))
	_ = (fs.FileIoctler)((*handle)(nil))
	_ = (fs.FilePassthroughFder)((*handle)(nil))
)

func (h *handle) PassthroughFd() (int, bool) {
	h.dev.mu.Lock()
	defer h.dev.mu.Unlock()
	if h.dev.shm == nil {
		return 0, false
	}
	return int(h.dev.shm.Fd()), true
}

// Read serves one record per call.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	d := h.dev
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mode.Mode == 0 {
		return nil, syscall.EAGAIN
	}
	r, ok := d.nextRecord()
	if !ok {
		return fuse.ReadResultData(nil), 0 // end of the cells
	}
	n := int(fatm.RecLen(len(r.data)))
	if len(dest) < n {
		d.held = r
		return nil, syscall.EMSGSIZE
	}
	r.rec.CapLen = uint16(len(r.data))
	r.rec.RecLen = uint32(n)
	r.rec.Marshal(dest)
	copy(dest[fatm.RecHdrSize:], r.data)
	clear(dest[fatm.RecHdrSize+len(r.data) : n])
	d.stats.Records++
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Ioctl(ctx context.Context, cmd uint32, arg uint64, in, out []byte) (int32, syscall.Errno) {
	d := h.dev
	d.mu.Lock()
	d.ioctls[cmd]++
	switch cmd {
	case fatm.IocGetInfo:
		bits := uint8(8)
		if d.cfg.NNI {
			bits = 12
		}
		ring := uint32(0)
		if d.ring != nil {
			ring = uint32(d.cfg.RingSize)
		}
		i := fatm.Info{Version: fatm.Version, VPIBits: bits, VCIBits: 16, NNI: d.cfg.NNI,
			RingSize: ring, MaxFilters: uint32(d.cfg.MaxFilters), MaxSnaplen: 65535}
		i.Marshal(out)
	case fatm.IocSetMode:
		var m fatm.Mode
		if err := m.Unmarshal(in); err != nil || m.Mode < fatm.ModeCells || m.Mode > fatm.ModeAAL5 || m.Snaplen > 65535 {
			d.mu.Unlock()
			return -1, syscall.EINVAL
		}
		if d.mode.Mode == 0 {
			close(d.modeSet)
		}
		d.mode = m
	case fatm.IocAddFilter, fatm.IocDelFilter:
		var f fatm.Filter
		if err := f.Unmarshal(in); err != nil {
			d.mu.Unlock()
			return -1, syscall.EINVAL
		}
		if cmd == fatm.IocAddFilter {
			if len(d.filters) >= d.cfg.MaxFilters {
				d.mu.Unlock()
				return -1, syscall.ENOSPC
			}
			d.filters = append(d.filters, f)
		} else {
			i := indexOf(d.filters, f)
			if i < 0 {
				d.mu.Unlock()
				return -1, syscall.ENOENT
			}
			d.filters = append(d.filters[:i], d.filters[i+1:]...)
		}
	case fatm.IocClrFilter:
		d.filters = d.filters[:0]
	case fatm.IocGetStats:
		st := d.stats
		if d.ring != nil {
			st.RingDrops += d.ring.Drops()
		}
		st.Marshal(out)
	case fatm.IocWait:
		var w fatm.Wait
		if err := w.Unmarshal(in); err != nil {
			d.mu.Unlock()
			return -1, syscall.EINVAL
		}
		d.mu.Unlock()
		w.Status = d.wait(ctx, time.Duration(w.TimeoutMS)*time.Millisecond)
		w.Marshal(out)
		return 0, 0
	default:
		d.mu.Unlock()
		return -1, syscall.ENOTTY
	}
	d.mu.Unlock()
	return 0, 0
}

func indexOf(fs []fatm.Filter, f fatm.Filter) int {
	for i, g := range fs {
		if g == f {
			return i
		}
	}
	return -1
}

// wait blocks until the mode is set (or the timeout), then fills the ring.
func (d *Device) wait(ctx context.Context, timeout time.Duration) uint32 {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-d.modeSet:
	case <-t.C:
		return fatm.WaitTimeout
	case <-ctx.Done():
		return fatm.WaitTimeout
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ring == nil {
		// read() mode: a record is ready unless the cells have run out.
		if d.held == nil {
			r, ok := d.nextRecord()
			if !ok {
				return fatm.WaitEOF
			}
			d.held = r
		}
		return fatm.WaitReady
	}
	for {
		r, ok := d.nextRecord()
		if !ok {
			break
		}
		if !d.ring.Fits(len(r.data)) {
			d.held = r
			break
		}
		d.ring.Put(r.rec, r.data)
		d.stats.Records++
	}
	if d.ring.Head() != d.ring.Tail() {
		return fatm.WaitReady
	}
	return fatm.WaitEOF
}

// nextRecord processes cells until one yields a record; false at the end.
func (d *Device) nextRecord() (*record, bool) {
	if d.held != nil {
		r := d.held
		d.held = nil
		return r, true
	}
	for d.pos < len(d.cells) {
		c := d.cells[d.pos]
		d.pos++
		if r := d.cell(c); r != nil {
			return r, true
		}
	}
	if d.pos == len(d.cells) {
		d.pos++
		before := d.reasm.Drops()
		d.reasm.Flush()
		after := d.reasm.Drops()
		d.stats.AAL5Drops += after[atm.ReasonFlushed] - before[atm.ReasonFlushed]
	}
	return nil, false
}

func (d *Device) selected(vpi, vci uint16) bool {
	if d.mode.Flags&fatm.FlagPromisc != 0 {
		return true
	}
	for _, f := range d.filters {
		if (atm.Filter{VPI: f.VPI, VCI: f.VCI, VPIMask: f.VPIMask, VCIMask: f.VCIMask}).Match(vpi, vci) {
			return true
		}
	}
	return false
}

// cell runs one cell through the card; it returns a record or nil.
func (d *Device) cell(c Cell) *record {
	d.stats.Cells++
	if len(c.Data) < atm.CellSize {
		d.stats.HECUncorrected++
		return nil
	}
	h, st := atm.CheckHEC(c.Data)
	var flags uint8
	switch st {
	case atm.HECBad:
		d.stats.HECUncorrected++
		return nil
	case atm.HECCorrected:
		d.stats.HECCorrected++
		flags |= fatm.RecHECCorrected
	}
	kind := atm.Classify(h)
	if kind == atm.KindIdle || kind == atm.KindUnassigned {
		d.stats.IdleCells++
		return nil
	}
	hd := atm.ParseUNI(h)
	if d.cfg.NNI {
		hd = atm.ParseNNI(h)
	}
	if !d.selected(hd.VPI, hd.VCI) {
		d.stats.VPIVCIDrops++
		return nil
	}
	payload := c.Data[5:atm.CellSize]
	rec := fatm.Rec{Timestamp: c.Timestamp, CellHdr: h, Dir: c.Dir, Flags: flags}
	if kind != atm.KindUser {
		d.stats.OAMCells++
		if d.mode.Mode != fatm.ModeCells {
			return nil
		}
		return d.finish(rec, payload, atm.PayloadSize)
	}
	vc := atm.MakeVC(hd.VPI, hd.VCI)
	end := hd.PTI&atm.PTIUserEnd != 0
	switch d.mode.Mode {
	case fatm.ModeCells:
		return d.finish(rec, payload, atm.PayloadSize)
	case fatm.ModeFirstCell:
		first := !d.inPDU[vc]
		d.inPDU[vc] = !end
		if !first {
			return nil
		}
		rec.Flags |= fatm.RecFirstCell
		return d.finish(rec, payload, atm.PayloadSize)
	}
	before := d.reasm.Drops()
	sdu, _, ok := d.reasm.Push(vc, payload, end, c.Timestamp)
	if !ok {
		if end {
			after := d.reasm.Drops()
			crc := after[atm.ReasonCRC] - before[atm.ReasonCRC]
			d.stats.AAL5CRCErrors += crc
			d.stats.AAL5Drops += after.Total() - before.Total() - crc
		} else if a := d.reasm.Drops(); a.Total() != before.Total() {
			d.stats.AAL5Drops += a.Total() - before.Total()
		}
		return nil
	}
	d.stats.AAL5PDUs++
	rec.AAL = fatm.AAL5
	rec.Flags |= fatm.RecCRCOK
	return d.finish(rec, sdu, len(sdu))
}

func (d *Device) finish(rec fatm.Rec, data []byte, wire int) *record {
	rec.WireLen = uint16(wire)
	if s := int(d.mode.Snaplen); s > 0 && len(data) > s {
		data = data[:s]
		rec.Flags |= fatm.RecTrunc
		d.stats.Truncated++
	}
	return &record{rec: rec, data: append([]byte(nil), data...)}
}

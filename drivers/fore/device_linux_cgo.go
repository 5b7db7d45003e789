//go:build linux && cgo

package fore

/*
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "fatmcap.h"

static int fatm_open(const char *path) { return open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC); }
static int fatm_getinfo(int fd, struct fatm_info *i) { return ioctl(fd, FATMIOC_GETINFO, i); }
static int fatm_setmode(int fd, struct fatm_mode *m) { return ioctl(fd, FATMIOC_SETMODE, m); }
static int fatm_addfilter(int fd, struct fatm_filter *f) { return ioctl(fd, FATMIOC_ADDFILTER, f); }
static int fatm_delfilter(int fd, struct fatm_filter *f) { return ioctl(fd, FATMIOC_DELFILTER, f); }
static int fatm_clrfilter(int fd) { return ioctl(fd, FATMIOC_CLRFILTER); }
static int fatm_getstats(int fd, struct fatm_stats *s) { return ioctl(fd, FATMIOC_GETSTATS, s); }
static int fatm_wait(int fd, struct fatm_wait *w) { return ioctl(fd, FATMIOC_WAIT, w); }
static void *fatm_map(int fd, size_t len) {
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}
static int fatm_unmap(void *p, size_t len) { return munmap(p, len); }
static ssize_t fatm_read(int fd, void *buf, size_t len) { return read(fd, buf, len); }

static unsigned long fatm_ioc(int i) {
	switch (i) {
	case 1: return FATMIOC_GETINFO;
	case 2: return FATMIOC_SETMODE;
	case 3: return FATMIOC_ADDFILTER;
	case 4: return FATMIOC_DELFILTER;
	case 5: return FATMIOC_CLRFILTER;
	case 6: return FATMIOC_GETSTATS;
	case 7: return FATMIOC_WAIT;
	}
	return 0;
}
static size_t fatm_rec_off(int i) {
	switch (i) {
	case 0: return offsetof(struct fatm_rec, cellhdr);
	case 1: return offsetof(struct fatm_rec, caplen);
	case 2: return offsetof(struct fatm_rec, dir);
	case 3: return offsetof(struct fatm_rec, reclen);
	case 4: return offsetof(struct fatm_ring, data_off);
	case 5: return offsetof(struct fatm_ring, drops);
	case 6: return offsetof(struct fatm_info, ring_size);
	case 7: return offsetof(struct fatm_stats, truncated);
	}
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/fore/fatm"
)

// waitMS bounds each FATMIOC_WAIT so that Interrupt takes effect.
const waitMS = 100

type cdev struct {
	path string
	// mu is held shared by Next and the control calls, exclusively by
	// Close, so Close never unmaps the ring or closes the descriptor
	// under them; Next notices closing within one WAIT (waitMS).
	mu      sync.RWMutex
	closing atomic.Bool
	closed  bool
	fd      C.int
	mem     unsafe.Pointer
	memLen  C.size_t
	ring    *fatm.Ring
	buf     []byte
}

func (d *cdev) enter() error {
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return fmt.Errorf("fore: %s: %w", d.path, drivers.ErrClosed)
	}
	return nil
}

// OpenDevice opens a capture device node (the cgo driver). It maps the
// receive ring when the device offers one and falls back to read().
func OpenDevice(path string) (Device, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	fd, err := C.fatm_open(cpath)
	if fd < 0 {
		return nil, fmt.Errorf("fore: open %s: %w", path, err)
	}
	d := &cdev{path: path, fd: fd}
	info, err := d.info()
	if err != nil {
		C.close(fd)
		return nil, err
	}
	if info.RingSize > 0 {
		p, err := C.fatm_map(fd, C.size_t(info.RingSize))
		if p == nil {
			C.close(fd)
			return nil, fmt.Errorf("fore: mmap %s ring of %d bytes: %w", path, info.RingSize, err)
		}
		d.mem, d.memLen = p, C.size_t(info.RingSize)
		ring, err := fatm.OpenRing(unsafe.Slice((*byte)(p), int(info.RingSize)))
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("fore: %s: %w", path, err)
		}
		d.ring = ring
	} else {
		d.buf = make([]byte, fatm.RecLen(65535))
	}
	return d, nil
}

func (d *cdev) ioctlErr(op string, err error) error {
	return fmt.Errorf("fore: %s: ioctl %s: %w", d.path, op, err)
}

func (d *cdev) Info() (fatm.Info, error) {
	if err := d.enter(); err != nil {
		return fatm.Info{}, err
	}
	defer d.mu.RUnlock()
	return d.info()
}

func (d *cdev) info() (fatm.Info, error) {
	var ci C.struct_fatm_info
	if r, err := C.fatm_getinfo(d.fd, &ci); r < 0 {
		return fatm.Info{}, d.ioctlErr("GETINFO", err)
	}
	return fatm.Info{
		Version: uint32(ci.version), VPIBits: uint8(ci.vpi_bits), VCIBits: uint8(ci.vci_bits),
		NNI: ci.nni != 0, RingSize: uint32(ci.ring_size), MaxFilters: uint32(ci.max_filters),
		MaxSnaplen: uint32(ci.max_snaplen),
	}, nil
}

func (d *cdev) SetMode(m fatm.Mode) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.mu.RUnlock()
	cm := C.struct_fatm_mode{mode: C.__u32(m.Mode), flags: C.__u32(m.Flags), snaplen: C.__u32(m.Snaplen)}
	if r, err := C.fatm_setmode(d.fd, &cm); r < 0 {
		return d.ioctlErr("SETMODE", err)
	}
	return nil
}

func cfilter(f fatm.Filter) C.struct_fatm_filter {
	return C.struct_fatm_filter{vpi: C.__u16(f.VPI), vci: C.__u16(f.VCI), vpi_mask: C.__u16(f.VPIMask), vci_mask: C.__u16(f.VCIMask)}
}

func (d *cdev) AddFilter(f fatm.Filter) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.mu.RUnlock()
	cf := cfilter(f)
	if r, err := C.fatm_addfilter(d.fd, &cf); r < 0 {
		return d.ioctlErr("ADDFILTER", err)
	}
	return nil
}

func (d *cdev) DelFilter(f fatm.Filter) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.mu.RUnlock()
	cf := cfilter(f)
	if r, err := C.fatm_delfilter(d.fd, &cf); r < 0 {
		return d.ioctlErr("DELFILTER", err)
	}
	return nil
}

func (d *cdev) ClearFilters() error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.mu.RUnlock()
	if r, err := C.fatm_clrfilter(d.fd); r < 0 {
		return d.ioctlErr("CLRFILTER", err)
	}
	return nil
}

func (d *cdev) Stats() (fatm.Stats, error) {
	if err := d.enter(); err != nil {
		return fatm.Stats{}, err
	}
	defer d.mu.RUnlock()
	var cs C.struct_fatm_stats
	if r, err := C.fatm_getstats(d.fd, &cs); r < 0 {
		return fatm.Stats{}, d.ioctlErr("GETSTATS", err)
	}
	var s fatm.Stats
	err := s.Unmarshal(unsafe.Slice((*byte)(unsafe.Pointer(&cs)), fatm.StatsSize))
	return s, err
}

// wait blocks in FATMIOC_WAIT for at most ms milliseconds.
func (d *cdev) wait(ms int64) (uint32, error) {
	w := C.struct_fatm_wait{timeout_ms: C.__u32(ms)}
	if r, err := C.fatm_wait(d.fd, &w); r < 0 {
		if errors.Is(err, syscall.EINTR) {
			return fatm.WaitTimeout, nil
		}
		return 0, d.ioctlErr("WAIT", err)
	}
	return uint32(w.status), nil
}

func (d *cdev) Next(timeout time.Duration) (fatm.Rec, []byte, error) {
	if err := d.enter(); err != nil {
		return fatm.Rec{}, nil, err
	}
	defer d.mu.RUnlock()
	if d.ring != nil {
		d.ring.Release()
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		if d.closing.Load() {
			return fatm.Rec{}, nil, fmt.Errorf("fore: %s: %w", d.path, drivers.ErrClosed)
		}
		if d.ring != nil {
			rec, data, ok, err := d.ring.Peek()
			if err != nil {
				return fatm.Rec{}, nil, fmt.Errorf("fore: %s: %w", d.path, err)
			}
			if ok {
				return rec, data, nil
			}
		} else {
			n, err := C.fatm_read(d.fd, unsafe.Pointer(&d.buf[0]), C.size_t(len(d.buf)))
			switch {
			case n > 0:
				var rec fatm.Rec
				if err := rec.Unmarshal(d.buf[:n]); err != nil {
					return fatm.Rec{}, nil, fmt.Errorf("fore: %s: read record: %w", d.path, err)
				}
				return rec, d.buf[fatm.RecHdrSize : fatm.RecHdrSize+int(rec.CapLen)], nil
			case n == 0:
				return fatm.Rec{}, nil, io.EOF
			case !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR):
				return fatm.Rec{}, nil, fmt.Errorf("fore: read %s: %w", d.path, err)
			}
		}
		ms := int64(waitMS)
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return fatm.Rec{}, nil, fmt.Errorf("fore: %s: %w", d.path, drivers.ErrTimeout)
			}
			ms = min(ms, max(1, left.Milliseconds()))
		}
		st, err := d.wait(ms)
		if err != nil {
			return fatm.Rec{}, nil, err
		}
		if st == fatm.WaitEOF {
			if d.ring != nil {
				// Records may have landed between Peek and WAIT.
				if _, _, ok, _ := d.ring.Peek(); !ok {
					return fatm.Rec{}, nil, io.EOF
				}
				d.ring, _ = fatm.OpenRing(unsafe.Slice((*byte)(d.mem), int(d.memLen)))
				continue
			}
			return fatm.Rec{}, nil, io.EOF
		}
	}
}

func (d *cdev) Close() error {
	d.closing.Store(true)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var err error
	if d.mem != nil {
		if r, e := C.fatm_unmap(d.mem, d.memLen); r < 0 {
			err = fmt.Errorf("fore: munmap %s: %w", d.path, e)
		}
		d.mem, d.ring = nil, nil
	}
	if r, e := C.close(d.fd); r < 0 && err == nil {
		err = fmt.Errorf("fore: close %s: %w", d.path, e)
	}
	return err
}

// abiCheck compares the C header's layout with package fatm's.
func abiCheck() error {
	type pair struct {
		name      string
		got, want uintptr
	}
	checks := []pair{
		{"sizeof fatm_info", unsafe.Sizeof(C.struct_fatm_info{}), fatm.InfoSize},
		{"sizeof fatm_mode", unsafe.Sizeof(C.struct_fatm_mode{}), fatm.ModeSize},
		{"sizeof fatm_filter", unsafe.Sizeof(C.struct_fatm_filter{}), fatm.FilterSize},
		{"sizeof fatm_stats", unsafe.Sizeof(C.struct_fatm_stats{}), fatm.StatsSize},
		{"sizeof fatm_wait", unsafe.Sizeof(C.struct_fatm_wait{}), fatm.WaitSize},
		{"sizeof fatm_ring", unsafe.Sizeof(C.struct_fatm_ring{}), fatm.RingHdrSize},
		{"sizeof fatm_rec", unsafe.Sizeof(C.struct_fatm_rec{}), fatm.RecHdrSize},
		{"fatm_rec.cellhdr", uintptr(C.fatm_rec_off(0)), 8},
		{"fatm_rec.caplen", uintptr(C.fatm_rec_off(1)), 12},
		{"fatm_rec.dir", uintptr(C.fatm_rec_off(2)), 16},
		{"fatm_rec.reclen", uintptr(C.fatm_rec_off(3)), 20},
		{"fatm_ring.data_off", uintptr(C.fatm_rec_off(4)), 16},
		{"fatm_ring.drops", uintptr(C.fatm_rec_off(5)), 24},
		{"fatm_info.ring_size", uintptr(C.fatm_rec_off(6)), 8},
		{"fatm_stats.truncated", uintptr(C.fatm_rec_off(7)), 88},
		{"FATMIOC_GETINFO", uintptr(C.fatm_ioc(1)), uintptr(fatm.IocGetInfo)},
		{"FATMIOC_SETMODE", uintptr(C.fatm_ioc(2)), uintptr(fatm.IocSetMode)},
		{"FATMIOC_ADDFILTER", uintptr(C.fatm_ioc(3)), uintptr(fatm.IocAddFilter)},
		{"FATMIOC_DELFILTER", uintptr(C.fatm_ioc(4)), uintptr(fatm.IocDelFilter)},
		{"FATMIOC_CLRFILTER", uintptr(C.fatm_ioc(5)), uintptr(fatm.IocClrFilter)},
		{"FATMIOC_GETSTATS", uintptr(C.fatm_ioc(6)), uintptr(fatm.IocGetStats)},
		{"FATMIOC_WAIT", uintptr(C.fatm_ioc(7)), uintptr(fatm.IocWait)},
	}
	var errs []error
	for _, c := range checks {
		if c.got != c.want {
			errs = append(errs, fmt.Errorf("%s: C %d, Go %d", c.name, c.got, c.want))
		}
	}
	return errors.Join(errs...)
}

const cgoDriver = true

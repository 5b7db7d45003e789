package fore

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/fore/atm"
	"github.com/mira-project/mira/drivers/fore/fatm"
)

// Device is an open capture device speaking the fatmcap.h ABI. OpenDevice
// returns the cgo implementation; tests may supply their own.
type Device interface {
	Info() (fatm.Info, error)
	SetMode(fatm.Mode) error
	AddFilter(fatm.Filter) error
	DelFilter(fatm.Filter) error
	ClearFilters() error
	Stats() (fatm.Stats, error)
	// Next returns the next record. Data aliases the ring or a buffer
	// until the next call. With timeout > 0 it returns an error wrapping
	// drivers.ErrTimeout when no record came in that time; 0 waits. A
	// simulated device returns io.EOF when its cells run out; after
	// Close, Next returns an error wrapping drivers.ErrClosed.
	Next(timeout time.Duration) (fatm.Rec, []byte, error)
	// Close may be called from another goroutine while Next waits; it
	// returns once Next has let go of the ring.
	Close() error
}

// Capture modes for DeviceConfig.Mode.
const (
	ModeAAL5      = fatm.ModeAAL5
	ModeCells     = fatm.ModeCells
	ModeFirstCell = fatm.ModeFirstCell
)

// DeviceConfig configures a live device source. The zero value means
// AAL5 mode, promiscuous, whole frames, LLC encapsulation.
type DeviceConfig struct {
	// Mode is ModeAAL5 (the card reassembles), ModeCells (the driver
	// reassembles in software) or ModeFirstCell.
	Mode int
	// Filters are loaded into the card (hardware filtering); none means
	// promiscuous.
	Filters []atm.Filter
	// Snaplen cuts records in the card (0: whole frames).
	Snaplen int
	// ATM configures the software side (encapsulations, reassembly); its
	// filters and FirstCell are set from the fields above.
	ATM atm.Config
	// PollTimeout makes Next return an error wrapping drivers.ErrTimeout
	// when no packet arrived in that time; 0 waits until a packet, the
	// end of a simulated device, or Close.
	PollTimeout time.Duration
}

// DeviceSource is a drivers.Source reading a capture device.
type DeviceSource struct {
	dev     Device
	name    string
	info    fatm.Info
	mode    int
	proc    *atm.Processor
	stats   drivers.Stats
	ifaces  []drivers.Interface
	errs    uint64
	timeout time.Duration
}

// OpenLive opens the device node at path (e.g. /dev/fatm0) and configures
// it; cfg may be nil.
func OpenLive(path string, cfg *DeviceConfig) (*DeviceSource, error) {
	dev, err := OpenDevice(path)
	if err != nil {
		return nil, err
	}
	s, err := NewDeviceSource(dev, path, cfg)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return s, nil
}

// NewDeviceSource configures dev (mode, snaplen, filters) and returns a
// source reading it. name names the interface.
func NewDeviceSource(dev Device, name string, cfg *DeviceConfig) (*DeviceSource, error) {
	var c DeviceConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Mode == 0 {
		c.Mode = ModeAAL5
	}
	info, err := dev.Info()
	if err != nil {
		return nil, fmt.Errorf("fore: %s: get info: %w", name, err)
	}
	if info.Version != fatm.Version {
		return nil, fmt.Errorf("fore: %s: device ABI version %d, driver speaks %d", name, info.Version, fatm.Version)
	}
	if len(c.Filters) > int(info.MaxFilters) {
		return nil, fmt.Errorf("fore: %s: %d filters, the device holds %d", name, len(c.Filters), info.MaxFilters)
	}
	if err := dev.ClearFilters(); err != nil {
		return nil, fmt.Errorf("fore: %s: clear filters: %w", name, err)
	}
	for _, f := range c.Filters {
		if err := dev.AddFilter(fatm.Filter{VPI: f.VPI, VCI: f.VCI, VPIMask: f.VPIMask, VCIMask: f.VCIMask}); err != nil {
			return nil, fmt.Errorf("fore: %s: add filter %d/%d: %w", name, f.VPI, f.VCI, err)
		}
	}
	m := fatm.Mode{Mode: uint32(c.Mode), Snaplen: uint32(c.Snaplen)}
	if len(c.Filters) == 0 {
		m.Flags |= fatm.FlagPromisc
	}
	if err := dev.SetMode(m); err != nil {
		return nil, fmt.Errorf("fore: %s: set mode %d: %w", name, c.Mode, err)
	}
	ac := c.ATM
	ac.Filters = nil // the card filters
	ac.NNI = info.NNI
	ac.FirstCell = c.Mode == ModeFirstCell
	return &DeviceSource{
		dev: dev, name: name, info: info, mode: c.Mode, proc: atm.NewProcessor(&ac), timeout: c.PollTimeout,
		ifaces: []drivers.Interface{{Name: name, LinkType: drivers.LinkRaw, Snaplen: 65535}},
	}, nil
}

// Next returns the next packet; data aliases the device ring or buffer
// until the next call. It returns errors wrapping drivers.ErrTimeout
// (see DeviceConfig.PollTimeout) and drivers.ErrClosed (after Close).
func (s *DeviceSource) Next() ([]byte, drivers.CaptureInfo, error) {
	for {
		rec, data, err := s.dev.Next(s.timeout)
		if err != nil {
			if errors.Is(err, io.EOF) {
				s.proc.Flush()
				return nil, drivers.CaptureInfo{}, io.EOF
			}
			return nil, drivers.CaptureInfo{}, err
		}
		var (
			f  atm.Frame
			ok bool
		)
		switch rec.AAL {
		case fatm.AAL5:
			h := s.header(rec.CellHdr)
			f, ok = s.proc.PDU(h.VPI, h.VCI, data, int(rec.WireLen), rec.Timestamp)
		case fatm.AALRaw:
			if len(data) < atm.PayloadSize {
				s.errs++ // a cell record cut by the snaplen
				continue
			}
			f, ok = s.proc.Record(rec.CellHdr, data, rec.Timestamp)
		default:
			s.errs++
			continue
		}
		if !ok {
			continue
		}
		s.stats.Packets++
		s.stats.Octets += uint64(f.Length)
		dir := drivers.DirUnknown
		switch rec.Dir {
		case fatm.DirA:
			dir = drivers.DirIn
		case fatm.DirB:
			dir = drivers.DirOut
		}
		return f.Data, drivers.CaptureInfo{
			Timestamp: f.Timestamp, CaptureLength: len(f.Data), Length: f.Length,
			LinkType: f.Link, Direction: dir,
			VPI: f.VC.VPI(), VCI: f.VC.VCI(), HasVC: true,
		}, nil
	}
}

func (s *DeviceSource) header(h uint32) atm.Header {
	if s.info.NNI {
		return atm.ParseNNI(h)
	}
	return atm.ParseUNI(h)
}

// Interfaces returns the one capture interface.
func (s *DeviceSource) Interfaces() []drivers.Interface { return s.ifaces }

// Stats returns the source's counters: Drops are the card's ring drops,
// Errors the card's HEC and AAL5 failures plus the driver's own.
func (s *DeviceSource) Stats() drivers.Stats {
	st := s.stats
	a := s.proc.Stats()
	st.Errors = s.errs + a.Drops.Total() - a.Drops[atm.ReasonFiltered]
	if ds, err := s.dev.Stats(); err == nil {
		st.Drops += ds.RingDrops
		st.Errors += ds.HECUncorrected + ds.AAL5CRCErrors + ds.AAL5Drops
	}
	return st
}

// DeviceStats returns the card's statistics block.
func (s *DeviceSource) DeviceStats() (fatm.Stats, error) { return s.dev.Stats() }

// ATMStats returns the driver's cell and frame counters.
func (s *DeviceSource) ATMStats() atm.Stats { return s.proc.Stats() }

// EachVC calls fn with the counters of every VC the driver saw.
func (s *DeviceSource) EachVC(fn func(atm.VC, atm.VCStats)) { s.proc.EachVC(fn) }

// Close closes the device; it may be called from another goroutine while
// Next waits, which then returns an error wrapping drivers.ErrClosed.
func (s *DeviceSource) Close() error { return s.dev.Close() }

package fatm

import (
	"encoding/binary"
	"fmt"
)

// Version is FATM_ABI_VERSION.
const Version = 1

// Modes (struct fatm_mode.mode) and mode flags.
const (
	ModeCells     = 1
	ModeFirstCell = 2
	ModeAAL5      = 3
	FlagPromisc   = 0x1
)

// Wait statuses.
const (
	WaitReady   = 0
	WaitTimeout = 1
	WaitEOF     = 2
)

// Record directions, flags and AAL values.
const (
	DirUnknown = 0
	DirA       = 1
	DirB       = 2

	RecCRCOK        = 0x01
	RecTrunc        = 0x02
	RecHECCorrected = 0x04
	RecFirstCell    = 0x08
	RecWrap         = 0x80

	AALRaw = 0
	AAL5   = 5
)

// Struct sizes.
const (
	InfoSize    = 24
	ModeSize    = 16
	FilterSize  = 8
	StatsSize   = 12 * 8
	WaitSize    = 8
	RingHdrSize = 64
	RecHdrSize  = 24
)

// Linux _IOC encoding.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, nr, size uint32) uint32 { return dir<<30 | size<<16 | 'F'<<8 | nr }

// Ioctl request numbers.
var (
	IocGetInfo   = ioc(iocRead, 1, InfoSize)
	IocSetMode   = ioc(iocWrite, 2, ModeSize)
	IocAddFilter = ioc(iocWrite, 3, FilterSize)
	IocDelFilter = ioc(iocWrite, 4, FilterSize)
	IocClrFilter = ioc(iocNone, 5, 0)
	IocGetStats  = ioc(iocRead, 6, StatsSize)
	IocWait      = ioc(iocRead|iocWrite, 7, WaitSize)
)

// Info is struct fatm_info.
type Info struct {
	Version    uint32
	VPIBits    uint8
	VCIBits    uint8
	NNI        bool
	RingSize   uint32
	MaxFilters uint32
	MaxSnaplen uint32
}

var ne = binary.NativeEndian

// Marshal encodes i into b (InfoSize bytes).
func (i *Info) Marshal(b []byte) {
	_ = b[InfoSize-1]
	clear(b[:InfoSize])
	ne.PutUint32(b[0:], i.Version)
	b[4], b[5] = i.VPIBits, i.VCIBits
	if i.NNI {
		b[6] = 1
	}
	ne.PutUint32(b[8:], i.RingSize)
	ne.PutUint32(b[12:], i.MaxFilters)
	ne.PutUint32(b[16:], i.MaxSnaplen)
}

// Unmarshal decodes b.
func (i *Info) Unmarshal(b []byte) error {
	if len(b) < InfoSize {
		return fmt.Errorf("fatm: info of %d bytes, want %d", len(b), InfoSize)
	}
	*i = Info{Version: ne.Uint32(b), VPIBits: b[4], VCIBits: b[5], NNI: b[6] != 0,
		RingSize: ne.Uint32(b[8:]), MaxFilters: ne.Uint32(b[12:]), MaxSnaplen: ne.Uint32(b[16:])}
	return nil
}

// Mode is struct fatm_mode.
type Mode struct {
	Mode    uint32
	Flags   uint32
	Snaplen uint32
}

// Marshal encodes m into b (ModeSize bytes).
func (m *Mode) Marshal(b []byte) {
	_ = b[ModeSize-1]
	ne.PutUint32(b[0:], m.Mode)
	ne.PutUint32(b[4:], m.Flags)
	ne.PutUint32(b[8:], m.Snaplen)
	ne.PutUint32(b[12:], 0)
}

// Unmarshal decodes b.
func (m *Mode) Unmarshal(b []byte) error {
	if len(b) < ModeSize {
		return fmt.Errorf("fatm: mode of %d bytes, want %d", len(b), ModeSize)
	}
	*m = Mode{Mode: ne.Uint32(b), Flags: ne.Uint32(b[4:]), Snaplen: ne.Uint32(b[8:])}
	return nil
}

// Filter is struct fatm_filter.
type Filter struct {
	VPI, VCI, VPIMask, VCIMask uint16
}

// Marshal encodes f into b (FilterSize bytes).
func (f *Filter) Marshal(b []byte) {
	_ = b[FilterSize-1]
	ne.PutUint16(b[0:], f.VPI)
	ne.PutUint16(b[2:], f.VCI)
	ne.PutUint16(b[4:], f.VPIMask)
	ne.PutUint16(b[6:], f.VCIMask)
}

// Unmarshal decodes b.
func (f *Filter) Unmarshal(b []byte) error {
	if len(b) < FilterSize {
		return fmt.Errorf("fatm: filter of %d bytes, want %d", len(b), FilterSize)
	}
	*f = Filter{ne.Uint16(b), ne.Uint16(b[2:]), ne.Uint16(b[4:]), ne.Uint16(b[6:])}
	return nil
}

// Stats is struct fatm_stats; on the wire every counter is big-endian.
type Stats struct {
	Cells          uint64
	HECCorrected   uint64
	HECUncorrected uint64
	IdleCells      uint64
	OAMCells       uint64
	VPIVCIDrops    uint64
	AAL5PDUs       uint64
	AAL5CRCErrors  uint64
	AAL5Drops      uint64
	Records        uint64
	RingDrops      uint64
	Truncated      uint64
}

func (s *Stats) fields() [12]*uint64 {
	return [12]*uint64{&s.Cells, &s.HECCorrected, &s.HECUncorrected, &s.IdleCells, &s.OAMCells,
		&s.VPIVCIDrops, &s.AAL5PDUs, &s.AAL5CRCErrors, &s.AAL5Drops, &s.Records, &s.RingDrops, &s.Truncated}
}

// Marshal encodes s into b (StatsSize bytes, big-endian counters).
func (s *Stats) Marshal(b []byte) {
	_ = b[StatsSize-1]
	for i, p := range s.fields() {
		binary.BigEndian.PutUint64(b[8*i:], *p)
	}
}

// Unmarshal decodes b.
func (s *Stats) Unmarshal(b []byte) error {
	if len(b) < StatsSize {
		return fmt.Errorf("fatm: stats of %d bytes, want %d", len(b), StatsSize)
	}
	for i, p := range s.fields() {
		*p = binary.BigEndian.Uint64(b[8*i:])
	}
	return nil
}

// Wait is struct fatm_wait.
type Wait struct {
	TimeoutMS uint32
	Status    uint32
}

// Marshal encodes w into b (WaitSize bytes).
func (w *Wait) Marshal(b []byte) {
	_ = b[WaitSize-1]
	ne.PutUint32(b[0:], w.TimeoutMS)
	ne.PutUint32(b[4:], w.Status)
}

// Unmarshal decodes b.
func (w *Wait) Unmarshal(b []byte) error {
	if len(b) < WaitSize {
		return fmt.Errorf("fatm: wait of %d bytes, want %d", len(b), WaitSize)
	}
	*w = Wait{ne.Uint32(b), ne.Uint32(b[4:])}
	return nil
}

// Rec is struct fatm_rec, the header of a ring or read() record.
type Rec struct {
	Timestamp int64
	CellHdr   uint32
	CapLen    uint16
	WireLen   uint16
	Dir       uint8
	Flags     uint8
	AAL       uint8
	RecLen    uint32
}

// RecLen returns the record length for caplen data bytes.
func RecLen(caplen int) uint32 { return uint32(RecHdrSize+caplen+7) &^ 7 }

// Marshal encodes r into b (RecHdrSize bytes).
func (r *Rec) Marshal(b []byte) {
	_ = b[RecHdrSize-1]
	ne.PutUint64(b[0:], uint64(r.Timestamp))
	ne.PutUint32(b[8:], r.CellHdr)
	ne.PutUint16(b[12:], r.CapLen)
	ne.PutUint16(b[14:], r.WireLen)
	b[16], b[17], b[18], b[19] = r.Dir, r.Flags, r.AAL, 0
	ne.PutUint32(b[20:], r.RecLen)
}

// Unmarshal decodes a record header and checks that its lengths are
// consistent with each other and with the len(b) bytes available.
func (r *Rec) Unmarshal(b []byte) error {
	if len(b) < RecHdrSize {
		return fmt.Errorf("fatm: record header of %d bytes, want %d", len(b), RecHdrSize)
	}
	*r = Rec{Timestamp: int64(ne.Uint64(b)), CellHdr: ne.Uint32(b[8:]), CapLen: ne.Uint16(b[12:]),
		WireLen: ne.Uint16(b[14:]), Dir: b[16], Flags: b[17], AAL: b[18], RecLen: ne.Uint32(b[20:])}
	if r.Flags&RecWrap != 0 {
		return nil
	}
	if r.RecLen < RecHdrSize+uint32(r.CapLen) || r.RecLen%8 != 0 {
		return fmt.Errorf("fatm: record length %d does not hold %d data bytes", r.RecLen, r.CapLen)
	}
	if int(RecHdrSize)+int(r.CapLen) > len(b) {
		return fmt.Errorf("fatm: record of %d data bytes runs past the %d bytes available", r.CapLen, len(b))
	}
	return nil
}

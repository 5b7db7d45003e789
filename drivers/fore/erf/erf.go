package erf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ERF record types (Endace "ERF types reference"; wiretap/erf_record.h).
const (
	TypeHDLCPOS  = 1
	TypeEth      = 2
	TypeATM      = 3 // one cell: 4-byte header without HEC + 48-byte payload
	TypeAAL5     = 4 // 4-byte header of the last cell + reassembled PDU
	TypeMCHDLC   = 5
	TypeMCRaw    = 6
	TypeMCATM    = 7
	TypeMCRawCh  = 8
	TypeMCAAL5   = 9
	TypeColorEth = 10
	// Ethernet variants with the TypeEth layout.
	TypeDSMColorEth  = 16
	TypeColorHashEth = 20
	TypeMeta         = 27 // provenance metadata
	TypePad          = 48 // padding record, carries nothing
	// TypeMax is the largest type value in use: 28-31 are reserved for
	// public types, 32-47 for internal use, 48 is padding.
	TypeMax = TypePad

	extensionBit = 0x80
	headerSize   = 16
	// MaxRecord bounds rlen: the field is 16 bits.
	MaxRecord = 0xffff
)

// Record is one ERF record.
type Record struct {
	// Timestamp in nanoseconds since the Unix epoch.
	Timestamp int64
	Type      uint8 // without the extension-header bit
	Flags     uint8
	// Interface is the capture interface (flags bits 0-1).
	Interface int
	// Loss is the loss counter: records the card dropped before this one.
	Loss uint16
	// WireLen is the record's wire length field.
	WireLen int
	// Data is the record body after the header and any extension
	// headers, including the padding to rlen; it aliases the reader.
	Data []byte
	// Offset is the record's offset in the (decompressed) stream.
	Offset int64
}

// FormatError reports a malformed record.
type FormatError struct {
	Name   string // input name
	Offset int64
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("erf: %s: record at offset %d: %s", e.Name, e.Offset, e.Reason)
}

// ErrTruncated is wrapped by errors about a record cut by the end of the
// input.
var ErrTruncated = errors.New("truncated record")

// Timestamp converts an ERF timestamp (seconds in the high 32 bits, a
// binary fraction of a second in the low 32) to Unix nanoseconds.
func Timestamp(ts uint64) int64 {
	sec := int64(ts >> 32)
	frac := ts & 0xffffffff
	ns := (frac*1_000_000_000 + 1<<31) >> 32
	return sec*1_000_000_000 + int64(ns)
}

// MakeTimestamp is the inverse of Timestamp.
func MakeTimestamp(ns int64) uint64 {
	sec := uint64(ns / 1_000_000_000)
	rem := uint64(ns % 1_000_000_000)
	return sec<<32 | (rem<<32+500_000_000)/1_000_000_000
}

// Reader reads ERF records.
type Reader struct {
	name string
	r    *bufio.Reader
	buf  []byte
	off  int64
}

// NewReader returns a reader of r; name appears in errors.
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{name: name, r: bufio.NewReaderSize(r, 64<<10), buf: make([]byte, MaxRecord)}
}

func (r *Reader) fail(off int64, format string, args ...any) error {
	return &FormatError{Name: r.name, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// Next returns the next record, io.EOF at a clean end of input, or an
// error: a *FormatError for a malformed record (wrapping ErrTruncated when
// the input ends inside one). After an error other than io.EOF the reader
// cannot continue, since ERF has no resynchronisation marker.
func (r *Reader) Next() (Record, error) {
	off := r.off
	hdr := r.buf[:headerSize]
	n, err := io.ReadFull(r.r, hdr)
	r.off += int64(n)
	switch {
	case err == io.EOF:
		return Record{}, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Record{}, fmt.Errorf("%w: %w", r.fail(off, "header of %d bytes is cut after %d", headerSize, n), ErrTruncated)
	case err != nil:
		return Record{}, fmt.Errorf("erf: %s: %w", r.name, err)
	}
	typ := hdr[8]
	rlen := int(binary.BigEndian.Uint16(hdr[10:]))
	rec := Record{
		Timestamp: Timestamp(binary.LittleEndian.Uint64(hdr)),
		Type:      typ &^ extensionBit,
		Flags:     hdr[9],
		Interface: int(hdr[9] & 3),
		Loss:      binary.BigEndian.Uint16(hdr[12:]),
		WireLen:   int(binary.BigEndian.Uint16(hdr[14:])),
		Offset:    off,
	}
	if rec.Type == 0 || rec.Type > TypeMax {
		return Record{}, r.fail(off, "invalid record type %d", rec.Type)
	}
	if rlen < headerSize {
		return Record{}, r.fail(off, "record length %d is shorter than the header", rlen)
	}
	body := r.buf[headerSize:rlen]
	n, err = io.ReadFull(r.r, body)
	r.off += int64(n)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			return Record{}, fmt.Errorf("%w: %w", r.fail(off, "record length %d but only %d bytes follow the header", rlen, n), ErrTruncated)
		}
		return Record{}, fmt.Errorf("erf: %s: %w", r.name, err)
	}
	// Skip extension headers: 8 bytes each, chained by their top bit.
	for more := typ&extensionBit != 0; more; {
		if len(body) < 8 {
			return Record{}, r.fail(off, "extension header chain runs past the record length %d", rlen)
		}
		more = body[0]&extensionBit != 0
		body = body[8:]
	}
	rec.Data = body
	return rec, nil
}

// Plausible reports whether b (at least 16 bytes) starts like an ERF
// record: a defined type and a record length that holds the header.
func Plausible(b []byte) bool {
	if len(b) < headerSize {
		return false
	}
	t := b[8] &^ extensionBit
	rlen := int(binary.BigEndian.Uint16(b[10:]))
	return t > 0 && t <= TypeMax && rlen >= headerSize+4
}

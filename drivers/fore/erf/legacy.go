package erf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// LegacySize is the size of a legacy ATM record: an 8-byte little-endian
// ERF timestamp, a 4-byte CRC field (unused, zero in the Auckland traces),
// the 4-byte cell header without HEC and the 48-byte payload.
const LegacySize = 64

// LegacyRecord is one legacy ATM cell record.
type LegacyRecord struct {
	Timestamp int64
	Header    uint32
	// Payload is the 48-byte cell payload, aliasing the reader.
	Payload []byte
	Offset  int64
}

// LegacyReader reads legacy ATM cell records.
type LegacyReader struct {
	name string
	r    *bufio.Reader
	buf  [LegacySize]byte
	off  int64
}

// NewLegacyReader returns a reader of r; name appears in errors.
func NewLegacyReader(r io.Reader, name string) *LegacyReader {
	return &LegacyReader{name: name, r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next record, io.EOF at a clean end, or a *FormatError
// wrapping ErrTruncated when the input ends inside a record.
func (r *LegacyReader) Next() (LegacyRecord, error) {
	off := r.off
	n, err := io.ReadFull(r.r, r.buf[:])
	r.off += int64(n)
	switch {
	case err == io.EOF:
		return LegacyRecord{}, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return LegacyRecord{}, fmt.Errorf("%w: %w", &FormatError{Name: r.name, Offset: off,
			Reason: fmt.Sprintf("legacy ATM record of %d bytes is cut after %d", LegacySize, n)}, ErrTruncated)
	case err != nil:
		return LegacyRecord{}, fmt.Errorf("erf: %s: %w", r.name, err)
	}
	return LegacyRecord{
		Timestamp: Timestamp(binary.LittleEndian.Uint64(r.buf[:])),
		Header:    binary.BigEndian.Uint32(r.buf[12:]),
		Payload:   r.buf[16:LegacySize],
		Offset:    off,
	}, nil
}

package pcapfile

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/mira-project/mira/drivers"
)

// Classic pcap magic numbers, as written in the writer's (little-endian)
// byte order.
const (
	magicMicro uint32 = 0xa1b2c3d4
	magicNano  uint32 = 0xa1b23c4d
)

// Writer writes a classic little-endian pcap file. It is not safe for
// concurrent use.
type Writer struct {
	w       io.Writer
	nano    bool
	snaplen int
	hdr     [16]byte
}

// NewWriter writes the pcap global header for the link type and snaplen to
// w and returns a Writer for its packet records. With nano set, record
// timestamps have nanosecond resolution (magic a1b23c4d), otherwise
// microsecond. A snaplen of 0 or less means 262144.
func NewWriter(w io.Writer, link drivers.LinkType, snaplen int, nano bool) (*Writer, error) {
	if snaplen <= 0 {
		snaplen = maxSnaplen
	}
	var h [24]byte
	magic := magicMicro
	if nano {
		magic = magicNano
	}
	binary.LittleEndian.PutUint32(h[0:], magic)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	// thiszone and sigfigs stay 0.
	binary.LittleEndian.PutUint32(h[16:], uint32(snaplen))
	binary.LittleEndian.PutUint32(h[20:], uint32(link))
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("pcapfile: write header: %w", err)
	}
	return &Writer{w: w, nano: nano, snaplen: snaplen}, nil
}

// WritePacket writes one record: ci.Timestamp, len(data) as the captured
// length and ci.Length as the original length (len(data) when ci.Length is
// 0). It does not allocate.
func (w *Writer) WritePacket(ci drivers.CaptureInfo, data []byte) error {
	orig := ci.Length
	if orig == 0 {
		orig = len(data)
	}
	if orig < len(data) {
		return fmt.Errorf("pcapfile: write packet: original length %d below captured length %d", orig, len(data))
	}
	if uint64(len(data)) > 0xffffffff || uint64(orig) > 0xffffffff {
		return fmt.Errorf("pcapfile: write packet: length %d too large", orig)
	}
	ts := ci.Timestamp
	sec := ts / 1e9
	frac := ts % 1e9
	if frac < 0 {
		sec--
		frac += 1e9
	}
	if !w.nano {
		frac /= 1000
	}
	binary.LittleEndian.PutUint32(w.hdr[0:], uint32(sec))
	binary.LittleEndian.PutUint32(w.hdr[4:], uint32(frac))
	binary.LittleEndian.PutUint32(w.hdr[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(w.hdr[12:], uint32(orig))
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		return fmt.Errorf("pcapfile: write packet: %w", err)
	}
	if _, err := w.w.Write(data); err != nil {
		return fmt.Errorf("pcapfile: write packet: %w", err)
	}
	return nil
}

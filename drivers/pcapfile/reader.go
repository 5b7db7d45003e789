package pcapfile

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mira-project/mira/drivers"
)

const (
	// maxSnaplen is the largest captured length the reader accepts
	// (libpcap's and Wireshark's limit for ordinary link types).
	maxSnaplen = 256 << 10
	// snapSlack is how far a record may exceed its interface's snaplen:
	// real writers (mergecap, some drivers) exceed it a little.
	snapSlack = 64 << 10
	// maxMetaBlock bounds the pcapng blocks the reader keeps in memory
	// (section headers and interface descriptions).
	maxMetaBlock = 1 << 20
	// maxPacketBlock bounds a pcapng packet block: data plus options.
	maxPacketBlock = maxSnaplen + 64<<10
	// readBufSize is the size of the buffered reader over the input.
	readBufSize = 1 << 20
)

// pcapng block types the reader interprets.
const (
	blockSHB = 0x0a0d0d0a
	blockIDB = 0x00000001
	blockPB  = 0x00000002 // obsolete Packet Block
	blockSPB = 0x00000003
	blockEPB = 0x00000006
)

const bomMagic = 0x1a2b3c4d

type format uint8

const (
	formatPcap format = iota
	formatPcapng
)

// iface is the reader's view of one capture interface.
type iface struct {
	link      drivers.LinkType
	snaplen   int
	supported bool
	reported  bool // the unsupported-link error was returned once
	// Timestamp conversion: units per second is 10^pow10 when pow2 is
	// false, 2^exp otherwise.
	pow2   bool
	exp    uint8
	offset int64 // if_tsoffset, seconds
}

// Reader reads a pcap or pcapng capture. It implements drivers.Source.
// Reader is not safe for concurrent use.
type Reader struct {
	name   string
	closer io.Closer
	gz     *gzip.Reader
	br     *bufio.Reader

	format   format
	order    binary.ByteOrder
	big      bool // classic pcap: order is big-endian (tested per record without an interface comparison)
	nano     bool // classic pcap: nanosecond timestamps
	extraHdr int  // classic pcap: bytes after the 16-byte record header

	ifaces     []drivers.Interface
	state      []iface
	sectionIdx int // pcapng: index in ifaces of the current section's first interface

	off  int64 // bytes consumed from the (decompressed) stream
	hdr  [28]byte
	buf  []byte
	err  error // sticky error: framing lost or end of input
	peek bool  // pcapng: a packet block is already in buf (read at open)
	// peekType and peekLen describe the block held when peek is set.
	peekType uint32
	peekLen  int
	peekOff  int64

	stats  drivers.Stats
	counts ErrorCounts
	// mm is the file mapped into memory (uncompressed classic pcap
	// files opened by Open); packets returned alias it.
	mm []byte
	// pf is the offset in mm up to which nextMapped has prefetched;
	// faulted the next offset it will read to have the kernel map its
	// page window, and touched the sum of those reads (kept so the
	// compiler keeps them).
	pf, faulted int
	touched     byte
}

// faultWindow is the kernel's usual fault-around window (fault_around_bytes);
// faultAhead how far ahead of the prefetches nextMapped faults pages in.
const (
	faultWindow = 64 << 10
	faultAhead  = 2 * faultWindow
)

// mapAhead is how far nextMapped prefetches the mapping ahead of the
// record it returns. The hardware prefetcher stops at every 4 KiB page of
// the mapping (the page cache's pages are not contiguous), so without it
// the first read of nearly every record header missed all caches.
// (Prefetching only each record's header and first lines, found by
// walking the headers ahead, was slower: the walk waits on them.)
const mapAhead = 8 << 10

// ErrorCounts counts the records a Reader could not deliver, by reason.
// Their sum is Stats().Errors.
type ErrorCounts struct {
	// Truncated counts records cut short by the end of the input.
	Truncated uint64
	// Oversize counts records whose captured length exceeds the limit.
	Oversize uint64
	// Malformed counts records and blocks with inconsistent lengths or
	// fields (bad block length, trailer mismatch, caplen beyond block).
	Malformed uint64
	// BadInterface counts packets naming an interface that was never
	// described.
	BadInterface uint64
	// UnsupportedLink counts packets of interfaces whose link type MIRA
	// does not decode; they are skipped after one error.
	UnsupportedLink uint64
}

func (c ErrorCounts) total() uint64 {
	return c.Truncated + c.Oversize + c.Malformed + c.BadInterface + c.UnsupportedLink
}

// Reason classifies a read error.
type Reason uint8

// Reasons for errors.
const (
	ReasonMalformed Reason = iota
	ReasonTruncated
	ReasonOversize
	ReasonBadInterface
	ReasonUnsupportedLink
	ReasonBadMagic
)

// Error describes a problem in a capture file, with the byte offset (in
// the decompressed stream) of the record or block where it was found.
type Error struct {
	File   string
	Offset int64
	Reason Reason
	Msg    string
	Err    error // wrapped cause, such as io.ErrUnexpectedEOF
}

func (e *Error) Error() string {
	s := fmt.Sprintf("pcapfile: %s: offset %d: %s", e.File, e.Offset, e.Msg)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ErrUnsupportedLinkType is wrapped by the error reported for a link
// type MIRA does not decode.
var ErrUnsupportedLinkType = errors.New("unsupported link type")

// UnsupportedLinkError reports a capture interface whose link type MIRA
// does not decode. It unwraps to ErrUnsupportedLinkType.
type UnsupportedLinkError struct {
	File     string
	LinkType drivers.LinkType
}

func (e *UnsupportedLinkError) Error() string {
	return fmt.Sprintf("pcapfile: %s: unsupported link type %d (%s)", e.File, uint16(e.LinkType), LinkTypeName(e.LinkType))
}

func (e *UnsupportedLinkError) Unwrap() error { return ErrUnsupportedLinkType }

// Supported reports whether MIRA decodes the link type.
func Supported(l drivers.LinkType) bool {
	switch l {
	case drivers.LinkNull, drivers.LinkEthernet, drivers.LinkPPP, drivers.LinkATMRFC1483,
		drivers.LinkRaw, drivers.LinkPPPHDLC, drivers.LinkLoop, drivers.LinkLinuxSLL,
		drivers.LinkSunATM, drivers.LinkIPv4, drivers.LinkIPv6, drivers.LinkLinuxSLL2,
		drivers.LinkCHDLC, drivers.LinkNFLOG:
		return true
	}
	return false
}

// Open opens a capture file. The file may be gzip-compressed. A classic
// pcap file with an unsupported link type fails here with an
// *UnsupportedLinkError.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pcapfile: %w", err)
	}
	r, err := newReader(f, filepath.Base(path))
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	if r.gz == nil && r.format == formatPcap {
		// Classic pcap records are then read straight from the mapping
		// (see nextPcap); the header was read through r.br.
		r.mm = mapFile(f)
	}
	return r, nil
}

// NewReader reads a capture from rd; name identifies it in errors.
// Close does not close rd.
func NewReader(rd io.Reader, name string) (*Reader, error) {
	return newReader(rd, name)
}

func newReader(rd io.Reader, name string) (*Reader, error) {
	r := &Reader{name: name, buf: make([]byte, 0, 64<<10)}
	br := bufio.NewReaderSize(rd, readBufSize)
	if m, err := br.Peek(2); err == nil && m[0] == 0x1f && m[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("pcapfile: %s: gzip: %w", name, err)
		}
		gz.Multistream(true)
		r.gz = gz
		br = bufio.NewReaderSize(gz, readBufSize)
	}
	r.br = br
	if err := r.readFileHeader(); err != nil {
		return nil, err
	}
	return r, nil
}

// Name returns the name the reader uses in errors.
func (r *Reader) Name() string { return r.name }

// Interfaces returns the capture interfaces described so far. A classic
// pcap file has one. For pcapng, the list holds the interfaces of every
// section read so far (numbered across sections, as tshark numbers them);
// those described before the first packet are known once Open returns.
// The returned slice must not be modified.
func (r *Reader) Interfaces() []drivers.Interface { return r.ifaces }

// Stats returns the reader's counters. Drops is the sum of the drop
// counts in obsolete pcapng packet blocks; Errors is ErrorCounts' total.
func (r *Reader) Stats() drivers.Stats {
	s := r.stats
	s.Errors = r.counts.total()
	return s
}

// ErrorCounts returns the per-reason counts of records not delivered.
func (r *Reader) ErrorCounts() ErrorCounts { return r.counts }

// Close releases the reader. It closes the file opened by Open.
func (r *Reader) Close() error {
	r.err = errClosed
	r.buf = nil
	var err error
	if r.gz != nil {
		err = r.gz.Close()
	}
	if r.mm != nil {
		if merr := unmapFile(r.mm); merr != nil {
			err = merr
		}
		r.mm = nil
	}
	if r.closer != nil {
		if cerr := r.closer.Close(); cerr != nil {
			err = cerr
		}
		r.closer = nil
	}
	return err
}

var errClosed = errors.New("pcapfile: reader closed")

func (r *Reader) errorf(off int64, reason Reason, cause error, format string, args ...any) *Error {
	return &Error{File: r.name, Offset: off, Reason: reason, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// count records an error in the per-reason counters.
func (r *Reader) count(reason Reason) {
	switch reason {
	case ReasonTruncated:
		r.counts.Truncated++
	case ReasonOversize:
		r.counts.Oversize++
	case ReasonBadInterface:
		r.counts.BadInterface++
	case ReasonUnsupportedLink:
		r.counts.UnsupportedLink++
	default:
		r.counts.Malformed++
	}
}

// fail counts err and makes it sticky: framing is lost, every later Next
// returns it again.
func (r *Reader) fail(e *Error) error {
	r.count(e.Reason)
	r.err = e
	return e
}

// skip counts err but keeps reading: the record was framed correctly.
func (r *Reader) skip(e *Error) error {
	r.count(e.Reason)
	return e
}

// readFull reads exactly len(p) bytes. It returns io.EOF only when no
// byte was read, io.ErrUnexpectedEOF when some were.
func (r *Reader) readFull(p []byte) error {
	n, err := io.ReadFull(r.br, p)
	r.off += int64(n)
	return err
}

func (r *Reader) discard(n int64) error {
	for n > 0 {
		step := n
		if step > 1<<30 {
			step = 1 << 30
		}
		d, err := r.br.Discard(int(step))
		r.off += int64(d)
		n -= int64(d)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// grow returns r.buf resized to n bytes, reallocating only when the
// capacity is short (n is bounded by the callers).
func (r *Reader) grow(n int) []byte {
	if cap(r.buf) < n {
		c := 2 * cap(r.buf)
		if c < n {
			c = n
		}
		r.buf = make([]byte, c)
	}
	r.buf = r.buf[:n]
	return r.buf
}

func (r *Reader) readFileHeader() error {
	m, err := r.br.Peek(4)
	if err != nil {
		if len(m) == 0 && err == io.EOF {
			return r.errorf(0, ReasonTruncated, io.ErrUnexpectedEOF, "empty file")
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return r.errorf(0, ReasonTruncated, err, "reading file header")
	}
	le := binary.LittleEndian.Uint32(m)
	be := binary.BigEndian.Uint32(m)
	switch {
	case le == magicMicro || le == magicNano:
		r.order = binary.LittleEndian
		r.nano = le == magicNano
	case be == magicMicro || be == magicNano:
		r.order = binary.BigEndian
		r.big = true
		r.nano = be == magicNano
	case le == magicModified:
		r.order = binary.LittleEndian
		r.extraHdr = 8
	case be == magicModified:
		r.order = binary.BigEndian
		r.big = true
		r.extraHdr = 8
	case le == blockSHB:
		r.format = formatPcapng
		return r.openPcapng()
	default:
		return r.errorf(0, ReasonBadMagic, nil, "not a pcap or pcapng file (magic %08x)", be)
	}
	h := r.hdr[:24]
	if err := r.readFull(h); err != nil {
		return r.errorf(0, ReasonTruncated, io.ErrUnexpectedEOF, "reading file header")
	}
	if major := r.order.Uint16(h[4:]); major != 2 {
		return r.errorf(4, ReasonMalformed, nil, "unsupported pcap version %d.%d", major, r.order.Uint16(h[6:]))
	}
	snaplen := int(r.order.Uint32(h[16:]))
	// The upper bits of the link-type word carry FCS information.
	link := normalise(drivers.LinkType(r.order.Uint32(h[20:]) & 0xffff))
	if !Supported(link) {
		return &UnsupportedLinkError{File: r.name, LinkType: link}
	}
	r.ifaces = []drivers.Interface{{Name: r.name, LinkType: link, Snaplen: snaplen}}
	r.state = []iface{{link: link, snaplen: snaplen, supported: true}}
	return nil
}

// linkATMRFC1483 is the LINKTYPE_ value for RFC 1483 ATM; DLT 11 is the
// BSD value of the same encapsulation, which drivers.LinkATMRFC1483 uses.
const linkATMRFC1483 drivers.LinkType = 100

// normalise maps link-type aliases onto the value MIRA's decoders use.
func normalise(l drivers.LinkType) drivers.LinkType {
	if l == linkATMRFC1483 {
		return drivers.LinkATMRFC1483
	}
	return l
}

// magicModified is the "modified pcap" (Alexey Kuznetzov's patches)
// magic; its records carry 8 more header bytes.
const magicModified uint32 = 0xa1b2cd34

// limit is the largest captured length accepted for an interface.
func limit(snaplen int) int {
	if snaplen > 0 && snaplen < maxSnaplen-snapSlack {
		return snaplen + snapSlack
	}
	return maxSnaplen
}

// Next returns the next packet. The returned slice aliases the reader's
// buffer and is valid only until the next call to Next or Close. At the
// end of the input Next returns io.EOF. A record it cannot deliver gives
// an *Error (or an *UnsupportedLinkError, once per interface); after an
// error that loses the framing (corrupt length, truncated record) every
// later call returns the same error, otherwise the caller may call Next
// again to continue with the following record.
func (r *Reader) Next() ([]byte, drivers.CaptureInfo, error) {
	if r.err != nil {
		return nil, drivers.CaptureInfo{}, r.err
	}
	if r.mm != nil { // classic pcap, mapped: the fast path
		var ci drivers.CaptureInfo
		data, err := r.nextMappedInto(16+r.extraHdr, &ci)
		return data, ci, err
	}
	if r.format == formatPcapng {
		return r.nextPcapng()
	}
	return r.nextPcap()
}

// DataStable reports whether the packets Next returns stay valid until
// Close (drivers.StableSource): true for an uncompressed classic pcap
// file read through its mapping, whose packets alias the mapping.
func (r *Reader) DataStable() bool { return r.mm != nil }

// NextInto is Next writing the capture information into *ci instead of
// returning it: the same records, errors and aliasing rules. A pipeline
// reading millions of packets uses it because returning the struct by
// value means copying it right after its fields were stored, and that
// copy's wide loads stall on the narrow stores (store forwarding fails)
// on every packet.
func (r *Reader) NextInto(ci *drivers.CaptureInfo) ([]byte, error) {
	if r.err != nil || r.mm == nil {
		data, c, err := r.Next()
		*ci = c
		return data, err
	}
	return r.nextMappedInto(16+r.extraHdr, ci)
}

func (r *Reader) nextPcap() ([]byte, drivers.CaptureInfo, error) {
	var ci drivers.CaptureInfo
	start := r.off
	hl := 16 + r.extraHdr
	if r.mm != nil {
		data, err := r.nextMappedInto(hl, &ci)
		return data, ci, err
	}
	// Fast path: header and data inside bufio's buffer are returned
	// in place (valid until the next read, as Next promises), saving a
	// copy per packet.
	h, perr := r.br.Peek(hl)
	if perr != nil {
		h = r.hdr[:hl]
		if err := r.readFull(h); err != nil {
			if err == io.EOF {
				r.err = io.EOF
				return nil, ci, io.EOF
			}
			return nil, ci, r.fail(r.errorf(start, ReasonTruncated, err, "record header"))
		}
	} else if n := r.order.Uint32(h[8:]); int(n) <= readBufSize-hl && n <= uint32(limit(r.state[0].snaplen)) {
		if rec, err := r.br.Peek(hl + int(n)); err == nil {
			r.br.Discard(hl + int(n))
			r.off += int64(hl + int(n))
			return r.pcapRecord(rec[:hl], rec[hl:], &ci)
		}
		h = r.hdr[:hl]
		r.readFull(h) // cannot fail: Peek(hl) succeeded
	} else {
		h = r.hdr[:hl]
		r.readFull(h)
	}
	caplen := r.order.Uint32(h[8:])
	st := &r.state[0]
	if caplen > uint32(limit(st.snaplen)) {
		return nil, ci, r.fail(r.errorf(start, ReasonOversize, nil, "captured length %d exceeds limit %d (snaplen %d)", caplen, limit(st.snaplen), st.snaplen))
	}
	data := r.grow(int(caplen))
	if err := r.readFull(data); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, ci, r.fail(r.errorf(start, ReasonTruncated, err, "record data (%d bytes)", caplen))
	}
	return r.pcapRecord(h, data, &ci)
}

// nextMappedInto reads the next classic record from the file mapping,
// setting every field of *ci.
func (r *Reader) nextMappedInto(hl int, ci *drivers.CaptureInfo) ([]byte, error) {
	*ci = drivers.CaptureInfo{}
	start := r.off
	b := r.mm[start:]
	if len(b) == 0 {
		r.err = io.EOF
		return nil, io.EOF
	}
	if len(b) < hl {
		return nil, r.fail(r.errorf(start, ReasonTruncated, io.ErrUnexpectedEOF, "record header"))
	}
	var caplen uint32
	if !r.big {
		caplen = binary.LittleEndian.Uint32(b[8:])
	} else {
		caplen = r.order.Uint32(b[8:])
	}
	st := &r.state[0]
	if caplen > uint32(limit(st.snaplen)) {
		return nil, r.fail(r.errorf(start, ReasonOversize, nil, "captured length %d exceeds limit %d (snaplen %d)", caplen, limit(st.snaplen), st.snaplen))
	}
	end := hl + int(caplen)
	if len(b) < end {
		return nil, r.fail(r.errorf(start, ReasonTruncated, io.ErrUnexpectedEOF, "record data (%d bytes)", caplen))
	}
	r.off += int64(end)
	if lim := min(int(r.off)+mapAhead, len(r.mm)); r.pf < lim {
		r.prefetch(lim)
	}
	if r.big {
		data, _, err := r.pcapRecord(b[:hl], b[hl:end:end], ci)
		return data, err
	}
	// pcapRecord, inlined for the common little-endian case.
	sec, frac := int64(binary.LittleEndian.Uint32(b[0:])), int64(binary.LittleEndian.Uint32(b[4:]))
	origlen := binary.LittleEndian.Uint32(b[12:])
	if !r.nano {
		frac *= 1000
	}
	ci.Timestamp = sec*1e9 + frac
	ci.CaptureLength = int(caplen)
	ci.Length = int(origlen)
	ci.LinkType = st.link
	r.stats.Packets++
	r.stats.Octets += uint64(origlen)
	return b[hl:end:end], nil
}

// prefetch starts bringing the mapping up to lim into the caches. A
// prefetch of a page not yet mapped into the process is dropped, and the
// kernel maps a file's pages a window at a time on a fault, so the first
// byte faultAhead further on is read for real once per window: the
// prefetches then find the pages mapped.
func (r *Reader) prefetch(lim int) {
	pf := max(r.pf, int(r.off))
	if pf < lim {
		prefetchLines(&r.mm[pf], lim-pf)
	}
	r.pf = lim
	if r.faulted < lim+faultAhead && r.faulted < len(r.mm) {
		r.touched += r.mm[r.faulted]
		r.faulted += faultWindow
	}
}

// pcapRecord fills ci from a classic record header h for data.
func (r *Reader) pcapRecord(h, data []byte, ci *drivers.CaptureInfo) ([]byte, drivers.CaptureInfo, error) {
	var sec, frac int64
	var origlen uint32
	if !r.big { // the common case, without interface calls
		sec, frac = int64(binary.LittleEndian.Uint32(h[0:])), int64(binary.LittleEndian.Uint32(h[4:]))
		origlen = binary.LittleEndian.Uint32(h[12:])
	} else {
		sec, frac = int64(r.order.Uint32(h[0:])), int64(r.order.Uint32(h[4:]))
		origlen = r.order.Uint32(h[12:])
	}
	if !r.nano {
		frac *= 1000
	}
	ci.Timestamp = sec*1e9 + frac
	ci.CaptureLength = len(data)
	ci.Length = int(origlen)
	ci.LinkType = r.state[0].link
	r.stats.Packets++
	r.stats.Octets += uint64(origlen)
	return data, *ci, nil
}

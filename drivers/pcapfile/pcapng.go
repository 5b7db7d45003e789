package pcapfile

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"github.com/mira-project/mira/drivers"
)

// pcapng option codes the reader interprets.
const (
	optEnd       = 0
	optIfName    = 2
	optIfTsresol = 9
	optIfTsoff   = 14
	optEPBFlags  = 2
)

var pow10 = [20]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
	1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// openPcapng reads the first section header and every block up to the
// first packet block, which it keeps for the first Next. An error after
// the section header does not fail the open; Next returns it.
func (r *Reader) openPcapng() error {
	typ, _, _, err := r.readBlock()
	if err == io.EOF {
		return r.errorf(0, ReasonTruncated, io.ErrUnexpectedEOF, "section header")
	}
	if err != nil {
		return err
	}
	if typ != blockSHB {
		return r.errorf(0, ReasonMalformed, nil, "first block is type %#x, not a section header", typ)
	}
	typ, body, start, err := r.readPacketBlock()
	if err != nil {
		return nil // sticky in r.err, returned by Next
	}
	r.peek = true
	r.peekType = typ
	r.peekLen = len(body)
	r.peekOff = start
	return nil
}

// readPacketBlock reads blocks, interpreting section headers and
// interface descriptions, until a packet block (EPB, SPB or PB), whose
// body (without the 8-byte header and the trailer) it returns. All its
// errors are sticky.
func (r *Reader) readPacketBlock() (uint32, []byte, int64, error) {
	for {
		typ, body, start, err := r.readBlock()
		if err != nil {
			return 0, nil, start, err
		}
		switch typ {
		case blockEPB, blockSPB, blockPB:
			return typ, body, start, nil
		}
	}
}

// readBlock reads one block. Section headers and interface descriptions
// are applied; other non-packet blocks are skipped and return an empty
// body.
func (r *Reader) readBlock() (uint32, []byte, int64, error) {
	start := r.off
	h := r.hdr[:8]
	if err := r.readFull(h); err != nil {
		if err == io.EOF {
			r.err = io.EOF
			return 0, nil, start, io.EOF
		}
		return 0, nil, start, r.fail(r.errorf(start, ReasonTruncated, err, "block header"))
	}
	if binary.LittleEndian.Uint32(h) == blockSHB {
		return r.readSHB(start)
	}
	if r.order == nil {
		return 0, nil, start, r.fail(r.errorf(start, ReasonMalformed, nil, "block before section header"))
	}
	typ := r.order.Uint32(h[0:])
	length := r.order.Uint32(h[4:])
	if length < 12 || length%4 != 0 {
		return 0, nil, start, r.fail(r.errorf(start, ReasonMalformed, nil, "block type %#x: bad total length %d", typ, length))
	}
	bodyLen := int64(length) - 12
	var max int64
	switch typ {
	case blockEPB, blockSPB, blockPB:
		max = maxPacketBlock
	case blockIDB:
		max = maxMetaBlock
	default:
		if err := r.discard(bodyLen); err != nil {
			return 0, nil, start, r.fail(r.errorf(start, ReasonTruncated, err, "block type %#x (%d bytes)", typ, length))
		}
		if err := r.checkTrailer(start, typ, length); err != nil {
			return 0, nil, start, err
		}
		return typ, nil, start, nil
	}
	if bodyLen > max {
		reason := ReasonMalformed
		if typ != blockIDB {
			reason = ReasonOversize
		}
		return 0, nil, start, r.fail(r.errorf(start, reason, nil, "block type %#x: total length %d exceeds limit %d", typ, length, max+12))
	}
	body := r.grow(int(bodyLen))
	if err := r.readFull(body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, start, r.fail(r.errorf(start, ReasonTruncated, err, "block type %#x (%d bytes)", typ, length))
	}
	if err := r.checkTrailer(start, typ, length); err != nil {
		return 0, nil, start, err
	}
	if typ == blockIDB {
		if err := r.addInterface(start, body); err != nil {
			return 0, nil, start, err
		}
	}
	return typ, body, start, nil
}

func (r *Reader) checkTrailer(start int64, typ, length uint32) error {
	t := r.hdr[8:12]
	if err := r.readFull(t); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return r.fail(r.errorf(start, ReasonTruncated, err, "block type %#x trailer", typ))
	}
	if got := r.order.Uint32(t); got != length {
		return r.fail(r.errorf(start, ReasonMalformed, nil, "block type %#x: trailing length %d differs from leading length %d", typ, got, length))
	}
	return nil
}

func (r *Reader) readSHB(start int64) (uint32, []byte, int64, error) {
	b := r.hdr[8:12]
	if err := r.readFull(b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, start, r.fail(r.errorf(start, ReasonTruncated, err, "section header"))
	}
	switch {
	case binary.LittleEndian.Uint32(b) == bomMagic:
		r.order = binary.LittleEndian
	case binary.BigEndian.Uint32(b) == bomMagic:
		r.order = binary.BigEndian
	default:
		return 0, nil, start, r.fail(r.errorf(start+8, ReasonMalformed, nil, "section header: bad byte-order magic %x", b))
	}
	length := r.order.Uint32(r.hdr[4:8])
	if length < 28 || length%4 != 0 || length > maxMetaBlock {
		return 0, nil, start, r.fail(r.errorf(start, ReasonMalformed, nil, "section header: bad total length %d", length))
	}
	body := r.grow(int(length) - 16)
	if err := r.readFull(body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, start, r.fail(r.errorf(start, ReasonTruncated, err, "section header (%d bytes)", length))
	}
	if err := r.checkTrailer(start, blockSHB, length); err != nil {
		return 0, nil, start, err
	}
	if major := r.order.Uint16(body[0:]); major != 1 {
		return 0, nil, start, r.fail(r.errorf(start+12, ReasonMalformed, nil, "section header: unsupported version %d.%d", major, r.order.Uint16(body[2:])))
	}
	// Interface ids restart in every section; the global list grows.
	r.sectionIdx = len(r.ifaces)
	return blockSHB, body, start, nil
}

// addInterface applies an interface description block.
func (r *Reader) addInterface(start int64, body []byte) error {
	if len(body) < 8 {
		return r.fail(r.errorf(start, ReasonMalformed, nil, "interface description: body of %d bytes", len(body)))
	}
	st := iface{
		link:    normalise(drivers.LinkType(r.order.Uint16(body[0:]))),
		snaplen: int(r.order.Uint32(body[4:])),
		exp:     6,
	}
	st.supported = Supported(st.link)
	idx := len(r.ifaces)
	name := ""
	opts := body[8:]
	for len(opts) >= 4 {
		code := r.order.Uint16(opts[0:])
		olen := int(r.order.Uint16(opts[2:]))
		if code == optEnd {
			break
		}
		padded := (olen + 3) &^ 3
		if 4+padded > len(opts) {
			return r.fail(r.errorf(start, ReasonMalformed, nil, "interface description: option %d length %d overruns block", code, olen))
		}
		v := opts[4 : 4+olen]
		switch code {
		case optIfName:
			name = string(trimNUL(v))
		case optIfTsresol:
			if olen != 1 {
				break
			}
			if v[0]&0x80 != 0 {
				st.pow2 = true
				st.exp = v[0] & 0x7f
				if st.exp > 63 {
					return r.fail(r.errorf(start, ReasonMalformed, nil, "interface description: timestamp resolution 2^-%d", st.exp))
				}
			} else {
				st.exp = v[0]
				if st.exp > 19 {
					return r.fail(r.errorf(start, ReasonMalformed, nil, "interface description: timestamp resolution 10^-%d", st.exp))
				}
			}
		case optIfTsoff:
			if olen == 8 {
				st.offset = int64(r.order.Uint64(v))
			}
		}
		opts = opts[4+padded:]
	}
	if name == "" {
		name = fmt.Sprintf("%s#%d", r.name, idx)
	}
	r.ifaces = append(r.ifaces, drivers.Interface{Name: name, LinkType: st.link, Snaplen: st.snaplen})
	r.state = append(r.state, st)
	return nil
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// timestamp converts a pcapng timestamp in the interface's units to
// nanoseconds since the epoch, rounding down as tshark does.
func (st *iface) timestamp(units uint64) int64 {
	var ups uint64
	if st.pow2 {
		ups = 1 << st.exp
	} else {
		ups = pow10[st.exp]
	}
	sec := units / ups
	rem := units % ups
	hi, lo := bits.Mul64(rem, 1e9)
	frac, _ := bits.Div64(hi, lo, ups) // rem < ups, so hi < ups: no overflow
	return int64(sec)*1e9 + int64(frac) + st.offset*1e9
}

func (r *Reader) nextPcapng() ([]byte, drivers.CaptureInfo, error) {
	for {
		var typ uint32
		var body []byte
		var start int64
		if r.peek {
			r.peek = false
			typ, body, start = r.peekType, r.buf[:r.peekLen], r.peekOff
		} else {
			var err error
			typ, body, start, err = r.readPacketBlock()
			if err != nil {
				return nil, drivers.CaptureInfo{}, err
			}
		}
		data, ci, skipped, err := r.decodePacket(typ, body, start)
		if err != nil || !skipped {
			return data, ci, err
		}
	}
}

// decodePacket interprets a packet block body. skipped reports a packet
// of an unsupported interface that was counted and should be passed over.
// Its errors are not sticky: the block was framed correctly.
func (r *Reader) decodePacket(typ uint32, body []byte, start int64) (data []byte, ci drivers.CaptureInfo, skipped bool, err error) {
	var ifid int
	var units uint64
	var caplen, origlen uint32
	var opts []byte
	var drops uint64
	switch typ {
	case blockEPB:
		if len(body) < 20 {
			return nil, ci, false, r.skip(r.errorf(start, ReasonMalformed, nil, "enhanced packet block: body of %d bytes", len(body)))
		}
		ifid = int(r.order.Uint32(body[0:]))
		units = uint64(r.order.Uint32(body[4:]))<<32 | uint64(r.order.Uint32(body[8:]))
		caplen = r.order.Uint32(body[12:])
		origlen = r.order.Uint32(body[16:])
		if uint64(caplen) > uint64(len(body)-20) {
			return nil, ci, false, r.skip(r.errorf(start, ReasonMalformed, nil, "enhanced packet block: captured length %d exceeds block", caplen))
		}
		data = body[20 : 20+caplen]
		opts = body[20+min(len(body)-20, int((caplen+3)&^3)):]
	case blockPB:
		if len(body) < 20 {
			return nil, ci, false, r.skip(r.errorf(start, ReasonMalformed, nil, "packet block: body of %d bytes", len(body)))
		}
		ifid = int(r.order.Uint16(body[0:]))
		drops = uint64(r.order.Uint16(body[2:]))
		units = uint64(r.order.Uint32(body[4:]))<<32 | uint64(r.order.Uint32(body[8:]))
		caplen = r.order.Uint32(body[12:])
		origlen = r.order.Uint32(body[16:])
		if uint64(caplen) > uint64(len(body)-20) {
			return nil, ci, false, r.skip(r.errorf(start, ReasonMalformed, nil, "packet block: captured length %d exceeds block", caplen))
		}
		data = body[20 : 20+caplen]
		opts = body[20+min(len(body)-20, int((caplen+3)&^3)):]
	case blockSPB:
		if len(body) < 4 {
			return nil, ci, false, r.skip(r.errorf(start, ReasonMalformed, nil, "simple packet block: body of %d bytes", len(body)))
		}
		ifid = 0
		origlen = r.order.Uint32(body[0:])
		caplen = uint32(len(body) - 4)
		if origlen < caplen {
			caplen = origlen
		}
	}
	if ifid >= len(r.ifaces)-r.sectionIdx {
		return nil, ci, false, r.skip(r.errorf(start, ReasonBadInterface, nil, "packet for interface %d, section has %d", ifid, len(r.ifaces)-r.sectionIdx))
	}
	idx := r.sectionIdx + ifid
	st := &r.state[idx]
	if typ == blockSPB {
		if st.snaplen > 0 && caplen > uint32(st.snaplen) {
			caplen = uint32(st.snaplen)
		}
		data = body[4 : 4+caplen]
	}
	if !st.supported {
		r.count(ReasonUnsupportedLink)
		if st.reported {
			return nil, ci, true, nil
		}
		st.reported = true
		return nil, ci, false, &UnsupportedLinkError{File: r.name, LinkType: st.link}
	}
	if caplen > uint32(limit(st.snaplen)) {
		return nil, ci, false, r.skip(r.errorf(start, ReasonOversize, nil, "captured length %d exceeds limit %d (snaplen %d)", caplen, limit(st.snaplen), st.snaplen))
	}
	if typ != blockSPB {
		ci.Timestamp = st.timestamp(units)
		ci.Direction = r.direction(opts)
	}
	ci.CaptureLength = int(caplen)
	ci.Length = int(origlen)
	ci.LinkType = st.link
	ci.Interface = idx
	r.stats.Packets++
	r.stats.Octets += uint64(origlen)
	r.stats.Drops += drops
	return data, ci, false, nil
}

// direction reads the inbound/outbound bits of epb_flags (pack_flags).
func (r *Reader) direction(opts []byte) drivers.Direction {
	for len(opts) >= 4 {
		code := r.order.Uint16(opts[0:])
		olen := int(r.order.Uint16(opts[2:]))
		if code == optEnd {
			break
		}
		padded := (olen + 3) &^ 3
		if 4+padded > len(opts) {
			break
		}
		if code == optEPBFlags && olen == 4 {
			switch r.order.Uint32(opts[4:]) & 3 {
			case 1:
				return drivers.DirIn
			case 2:
				return drivers.DirOut
			}
			return drivers.DirUnknown
		}
		opts = opts[4+padded:]
	}
	return drivers.DirUnknown
}

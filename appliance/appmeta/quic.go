package appmeta

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
)

// QUIC versions whose client Initial MIRA decrypts, with their initial
// salts and key labels.
const (
	quicV1      = 0x00000001
	quicV2      = 0x6b3343cf
	minInitial  = 1200 // RFC 9000 §14.1: client Initial datagrams are padded to this
	maxCID      = 20
	cryptoSpace = 4096 // CRYPTO bytes reassembled from the first Initial
)

var (
	saltV1      = []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}
	saltV2      = []byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9}
	saltDraft29 = []byte{0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99}
)

// quicVersion returns the salt and label prefix of version v, and the
// long-header packet type of its Initial packets.
func quicVersion(v uint32) (salt []byte, prefix string, initial byte, ok bool) {
	switch {
	case v == quicV1:
		return saltV1, "quic ", 0, true
	case v == quicV2:
		return saltV2, "quicv2 ", 1, true
	case v >= 0xff00001d && v <= 0xff000020: // drafts 29 to 32
		return saltDraft29, "quic ", 0, true
	}
	return nil, "", 0, false
}

// IsQUICInitial reports whether datagram p starts with a long-header
// Initial packet of a version QUICInitial decrypts, of a client's size.
func IsQUICInitial(p []byte) bool {
	if len(p) < minInitial || p[0]&0xc0 != 0xc0 {
		return false
	}
	_, _, initial, ok := quicVersion(binary.BigEndian.Uint32(p[1:5]))
	return ok && (p[0]>>4)&3 == initial
}

// Scratch is the working memory of QUICInitial, kept by the caller and
// reused across flows.
type Scratch struct {
	pkt    []byte
	crypto [cryptoSpace]byte
}

// QUICInitial decrypts the client Initial packet at the start of
// datagram p with the initial keys derived from its destination
// connection id and reads the ClientHello in its CRYPTO frames (those of
// this packet only; out-of-order frames are put in place). It reports
// whether a server name was found.
func QUICInitial(p []byte, s *Scratch, f *Found) bool {
	if !IsQUICInitial(p) {
		return false
	}
	salt, prefix, _, _ := quicVersion(binary.BigEndian.Uint32(p[1:5]))
	off := 5
	dcl := int(p[off])
	off++
	if dcl > maxCID || off+dcl >= len(p) {
		return false
	}
	dcid := p[off : off+dcl]
	off += dcl
	scl := int(p[off])
	off++
	if scl > maxCID || off+scl > len(p) {
		return false
	}
	off += scl
	tl, n := varint(p[off:])
	if n == 0 || tl > uint64(len(p)) {
		return false
	}
	off += n + int(tl)
	if off > len(p) {
		return false
	}
	length, n := varint(p[off:])
	if n == 0 {
		return false
	}
	off += n
	pnOff := off
	if length < 20 || length > uint64(len(p)-pnOff) {
		return false
	}
	end := pnOff + int(length)

	// Keys (RFC 9001 §5.2, RFC 9369 §3.3.1-2).
	initial, err := hkdf.Extract(sha256.New, dcid, salt)
	if err != nil {
		return false
	}
	client, err := expandLabel(initial, "client in", 32)
	if err != nil {
		return false
	}
	key, err1 := expandLabel(client, prefix+"key", 16)
	iv, err2 := expandLabel(client, prefix+"iv", 12)
	hp, err3 := expandLabel(client, prefix+"hp", 16)
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}

	// Header protection (RFC 9001 §5.4): the sample starts 4 bytes after
	// the packet number's start.
	s.pkt = append(s.pkt[:0], p[:end]...)
	pkt := s.pkt
	hb, err := aes.NewCipher(hp)
	if err != nil {
		return false
	}
	var mask [16]byte
	hb.Encrypt(mask[:], pkt[pnOff+4:pnOff+20])
	pkt[0] ^= mask[0] & 0x0f
	pnLen := int(pkt[0]&3) + 1
	var pn uint64
	for i := range pnLen {
		pkt[pnOff+i] ^= mask[1+i]
		pn = pn<<8 | uint64(pkt[pnOff+i])
	}
	hdr := pnOff + pnLen

	// Payload protection (RFC 9001 §5.3).
	kb, err := aes.NewCipher(key)
	if err != nil {
		return false
	}
	aead, err := cipher.NewGCM(kb)
	if err != nil {
		return false
	}
	var nonce [12]byte
	copy(nonce[:], iv)
	for i := range 8 {
		nonce[11-i] ^= byte(pn >> (8 * i))
	}
	plain, err := aead.Open(pkt[hdr:hdr], nonce[:], pkt[hdr:end], pkt[:hdr])
	if err != nil {
		return false
	}
	n = cryptoData(plain, &s.crypto)
	return ClientHello(s.crypto[:n], KindQUIC, f)
}

// cryptoData copies the CRYPTO frames of a decrypted Initial payload into
// buf at their offsets and returns the length of the contiguous data
// from offset 0. Frames other than PADDING, PING, ACK and CRYPTO end the
// walk (a client's first Initial carries no others).
func cryptoData(b []byte, buf *[cryptoSpace]byte) int {
	var spans [32]span
	ns := 0
	for len(b) > 0 {
		switch t := b[0]; {
		case t == 0x00 || t == 0x01: // PADDING, PING
			b = b[1:]
		case t == 0x02 || t == 0x03: // ACK
			b = skipACK(b[1:], t == 0x03)
			if b == nil {
				return contiguous(spans[:ns])
			}
		case t == 0x06: // CRYPTO
			o, n1 := varint(b[1:])
			if n1 == 0 {
				return contiguous(spans[:ns])
			}
			l, n2 := varint(b[1+n1:])
			if n2 == 0 {
				return contiguous(spans[:ns])
			}
			start := 1 + n1 + n2
			if l > uint64(len(b)-start) {
				return contiguous(spans[:ns])
			}
			data := b[start : start+int(l)]
			b = b[start+int(l):]
			if o < cryptoSpace && ns < len(spans) {
				c := copy(buf[o:], data)
				spans[ns] = span{int(o), int(o) + c}
				ns++
			}
		default:
			return contiguous(spans[:ns])
		}
	}
	return contiguous(spans[:ns])
}

// contiguous returns how far the spans cover [0, x) without a hole.
func contiguous(spans []span) int {
	end := 0
	for grew := true; grew; {
		grew = false
		for _, s := range spans {
			if s.lo <= end && s.hi > end {
				end, grew = s.hi, true
			}
		}
	}
	return end
}

// span is a range of CRYPTO stream offsets received.
type span struct{ lo, hi int }

// skipACK skips an ACK frame's body; nil when it is cut short.
func skipACK(b []byte, ecn bool) []byte {
	var n int
	for range 2 { // largest acknowledged, ack delay
		if _, n = varint(b); n == 0 {
			return nil
		}
		b = b[n:]
	}
	count, n := varint(b)
	if n == 0 || count > uint64(len(b)) {
		return nil
	}
	b = b[n:]
	for range 1 + 2*count { // first range, then gap and length pairs
		if _, n = varint(b); n == 0 {
			return nil
		}
		b = b[n:]
	}
	if ecn {
		for range 3 {
			if _, n = varint(b); n == 0 {
				return nil
			}
			b = b[n:]
		}
	}
	return b
}

// varint reads a QUIC variable-length integer (RFC 9000 §16); n is 0
// when b is too short.
func varint(b []byte) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0
	}
	v = uint64(b[0] & 0x3f)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n
}

// expandLabel is TLS 1.3's HKDF-Expand-Label with an empty context.
func expandLabel(secret []byte, label string, length int) ([]byte, error) {
	info := make([]byte, 0, 4+6+len(label))
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = append(info, byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, 0)
	return hkdf.Expand(sha256.New, secret, string(info), length)
}

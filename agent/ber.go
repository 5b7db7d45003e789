package agent

import (
	"fmt"
)

// Decode error reasons, counted in Stats.ParseErrors.
const (
	reasonTruncated = iota
	reasonBadTag
	reasonBadLength
	reasonBadInteger
	reasonBadVersion
	reasonBadFlags
	reasonBadSecurityModel
	reasonBadMaxSize
	reasonBadPDU
	numReasons
)

var reasonNames = [numReasons]string{
	"truncated", "bad-tag", "bad-length", "bad-integer", "bad-version",
	"bad-flags", "bad-security-model", "bad-max-size", "bad-pdu",
}

// DecodeError reports a malformed SNMP message.
type DecodeError struct {
	Offset int
	Reason string
	What   string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("snmp message: %s at offset %d: %s", e.What, e.Offset, e.Reason)
}

type berErr struct {
	off    int
	reason int
	what   string
}

func (e *berErr) toError() *DecodeError {
	return &DecodeError{Offset: e.off, Reason: reasonNames[e.reason], What: e.what}
}

// readTLV reads one BER TLV at off. It returns the tag, the contents'
// start and end, and the offset after the TLV.
func readTLV(b []byte, off int, what string) (tag byte, start, end int, err *berErr) {
	if off >= len(b) {
		return 0, 0, 0, &berErr{off, reasonTruncated, what}
	}
	tag = b[off]
	if tag&0x1f == 0x1f {
		return 0, 0, 0, &berErr{off, reasonBadTag, what}
	}
	p := off + 1
	if p >= len(b) {
		return 0, 0, 0, &berErr{p, reasonTruncated, what}
	}
	l := int(b[p])
	p++
	if l&0x80 != 0 {
		n := l & 0x7f
		if n == 0 || n > 3 {
			return 0, 0, 0, &berErr{p - 1, reasonBadLength, what}
		}
		if p+n > len(b) {
			return 0, 0, 0, &berErr{p, reasonTruncated, what}
		}
		l = 0
		for i := 0; i < n; i++ {
			l = l<<8 | int(b[p+i])
		}
		p += n
	}
	if l > len(b)-p {
		return 0, 0, 0, &berErr{p, reasonTruncated, what}
	}
	return tag, p, p + l, nil
}

func readInt(b []byte, off int, what string) (v int64, next int, err *berErr) {
	tag, s, e, err := readTLV(b, off, what)
	if err != nil {
		return 0, 0, err
	}
	if tag != 0x02 {
		return 0, 0, &berErr{off, reasonBadTag, what}
	}
	if e == s || e-s > 5 {
		return 0, 0, &berErr{s, reasonBadInteger, what}
	}
	v = int64(int8(b[s]))
	for i := s + 1; i < e; i++ {
		v = v<<8 | int64(b[i])
	}
	return v, e, nil
}

func readOctets(b []byte, off int, what string) (start, end, next int, err *berErr) {
	tag, s, e, err := readTLV(b, off, what)
	if err != nil {
		return 0, 0, 0, err
	}
	if tag != 0x04 {
		return 0, 0, 0, &berErr{off, reasonBadTag, what}
	}
	return s, e, e, nil
}

// msgHeader is the part of a message the agent reads before handing it
// to gosnmp: the version and, for v3, the header and USM parameters.
// Byte slices alias the input.
type msgHeader struct {
	version   int64
	msgID     int64
	maxSize   int64
	flags     byte
	secModel  int64
	engineID  []byte
	boots     int64
	time      int64
	user      []byte
	authStart int // offset of msgAuthenticationParameters' contents
	authEnd   int
	privParam []byte
	dataOff   int // offset of msgData (ScopedPDU or encrypted OCTET STRING)
	msgEnd    int
}

// parseHeader parses the message header. For v1/v2c only version is set.
func parseHeader(b []byte, h *msgHeader) *berErr {
	*h = msgHeader{}
	tag, s, e, err := readTLV(b, 0, "message")
	if err != nil {
		return err
	}
	if tag != 0x30 {
		return &berErr{0, reasonBadTag, "message"}
	}
	h.msgEnd = e
	v, p, err := readInt(b[:e], s, "msgVersion")
	if err != nil {
		return err
	}
	h.version = v
	if v != 3 {
		return nil
	}
	tag, hs, he, err := readTLV(b[:e], p, "msgGlobalData")
	if err != nil {
		return err
	}
	if tag != 0x30 {
		return &berErr{p, reasonBadTag, "msgGlobalData"}
	}
	q := hs
	if h.msgID, q, err = readInt(b[:he], q, "msgID"); err != nil {
		return err
	}
	if h.msgID < 0 {
		return &berErr{hs, reasonBadInteger, "msgID"}
	}
	maxOff := q
	if h.maxSize, q, err = readInt(b[:he], q, "msgMaxSize"); err != nil {
		return err
	}
	if h.maxSize < 484 {
		return &berErr{maxOff, reasonBadMaxSize, "msgMaxSize"}
	}
	fs, fe, q2, err := readOctets(b[:he], q, "msgFlags")
	if err != nil {
		return err
	}
	if fe-fs != 1 {
		return &berErr{fs, reasonBadFlags, "msgFlags"}
	}
	h.flags = b[fs]
	if h.flags&0x03 == 0x02 { // priv without auth
		return &berErr{fs, reasonBadFlags, "msgFlags"}
	}
	if h.secModel, _, err = readInt(b[:he], q2, "msgSecurityModel"); err != nil {
		return err
	}
	if h.secModel != 3 {
		return &berErr{q2, reasonBadSecurityModel, "msgSecurityModel"}
	}
	ss, se, p2, err := readOctets(b[:e], he, "msgSecurityParameters")
	if err != nil {
		return err
	}
	tag, us, ue, err := readTLV(b[:se], ss, "UsmSecurityParameters")
	if err != nil {
		return err
	}
	if tag != 0x30 {
		return &berErr{ss, reasonBadTag, "UsmSecurityParameters"}
	}
	r := us
	var a, z int
	if a, z, r, err = readOctets(b[:ue], r, "msgAuthoritativeEngineID"); err != nil {
		return err
	}
	h.engineID = b[a:z]
	if h.boots, r, err = readInt(b[:ue], r, "msgAuthoritativeEngineBoots"); err != nil {
		return err
	}
	if h.time, r, err = readInt(b[:ue], r, "msgAuthoritativeEngineTime"); err != nil {
		return err
	}
	if a, z, r, err = readOctets(b[:ue], r, "msgUserName"); err != nil {
		return err
	}
	h.user = b[a:z]
	if h.authStart, h.authEnd, r, err = readOctets(b[:ue], r, "msgAuthenticationParameters"); err != nil {
		return err
	}
	if a, z, _, err = readOctets(b[:ue], r, "msgPrivacyParameters"); err != nil {
		return err
	}
	h.privParam = b[a:z]
	if p2 >= e {
		return &berErr{p2, reasonTruncated, "msgData"}
	}
	h.dataOff = p2
	return nil
}

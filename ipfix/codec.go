package ipfix

import (
	"encoding/binary"
	"errors"
)

// Wire constants (RFC 7011 §3).
const (
	Version           = 10
	HeaderLen         = 16
	SetHeaderLen      = 4
	TemplateSetID     = 2
	OptionsSetID      = 3
	MinDataSetID      = 256
	MaxMessageLen     = 65535
	enterpriseBit     = 0x8000
	stlSemanticAllOf  = 3
	stlHeaderLen      = 3 // semantic + template id
	maxVarLenShort    = 254
	varLenLongMarker  = 255
	templateHeaderLen = 4
)

// Header is an IPFIX message header.
type Header struct {
	Length     uint16
	ExportTime uint32
	Sequence   uint32
	Domain     uint32
}

// Field is one template field specifier. Length VarLen marks a
// variable-length field.
type Field struct {
	ID         uint16
	Enterprise uint32
	Length     uint16
}

// Template is a template or options template record. ScopeCount > 0 makes
// it an options template; the first ScopeCount fields are the scope.
type Template struct {
	ID         uint16
	ScopeCount uint16
	Fields     []Field
}

// ErrTooLarge is returned when an encoded message would exceed 65535 bytes.
var ErrTooLarge = errors.New("ipfix: message exceeds 65535 bytes")

// AppendHeader appends a message header; the length is written later by
// FinishMessage.
func AppendHeader(b []byte, h Header) []byte {
	b = binary.BigEndian.AppendUint16(b, Version)
	b = binary.BigEndian.AppendUint16(b, h.Length)
	b = binary.BigEndian.AppendUint32(b, h.ExportTime)
	b = binary.BigEndian.AppendUint32(b, h.Sequence)
	return binary.BigEndian.AppendUint32(b, h.Domain)
}

// FinishMessage writes the length of the message that starts at msg[0]
// and ends at the end of msg.
func FinishMessage(msg []byte) error {
	if len(msg) > MaxMessageLen {
		return ErrTooLarge
	}
	binary.BigEndian.PutUint16(msg[2:], uint16(len(msg)))
	return nil
}

// AppendSetHeader opens a set and returns the buffer and the set's start
// offset for FinishSet.
func AppendSetHeader(b []byte, setID uint16) ([]byte, int) {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, setID)
	return binary.BigEndian.AppendUint16(b, 0), start
}

// FinishSet pads the set that starts at b[start] to a multiple of pad
// bytes (0 or 1: no padding) and writes its length.
func FinishSet(b []byte, start, pad int) []byte {
	if pad > 1 {
		for (len(b)-start)%pad != 0 {
			b = append(b, 0)
		}
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

// AppendTemplate appends one template record (inside a template set when
// ScopeCount is 0, an options template set otherwise).
func AppendTemplate(b []byte, t *Template) []byte {
	b = binary.BigEndian.AppendUint16(b, t.ID)
	b = binary.BigEndian.AppendUint16(b, uint16(len(t.Fields)))
	if t.ScopeCount > 0 {
		b = binary.BigEndian.AppendUint16(b, t.ScopeCount)
	}
	for _, f := range t.Fields {
		if f.Enterprise != 0 {
			b = binary.BigEndian.AppendUint16(b, f.ID|enterpriseBit)
			b = binary.BigEndian.AppendUint16(b, f.Length)
			b = binary.BigEndian.AppendUint32(b, f.Enterprise)
		} else {
			b = binary.BigEndian.AppendUint16(b, f.ID)
			b = binary.BigEndian.AppendUint16(b, f.Length)
		}
	}
	return b
}

// AppendWithdrawal appends a template withdrawal record for id; id
// TemplateSetID (in a template set) or OptionsSetID (in an options
// template set) withdraws all templates of that kind (RFC 7011 §8.1).
func AppendWithdrawal(b []byte, id uint16) []byte {
	b = binary.BigEndian.AppendUint16(b, id)
	return binary.BigEndian.AppendUint16(b, 0)
}

// AppendVarLen appends v with its RFC 7011 §7 variable-length prefix.
func AppendVarLen(b, v []byte) []byte {
	b = appendVarLenPrefix(b, len(v))
	return append(b, v...)
}

func appendVarLenPrefix(b []byte, n int) []byte {
	if n <= maxVarLenShort {
		return append(b, byte(n))
	}
	b = append(b, varLenLongMarker)
	return binary.BigEndian.AppendUint16(b, uint16(n))
}

// ReadVarLen splits a variable-length field off the front of b. It reports
// the value, the number of bytes consumed and whether the encoding was
// valid (the prefix and value fit in b).
func ReadVarLen(b []byte) (v []byte, n int, ok bool) {
	if len(b) < 1 {
		return nil, 0, false
	}
	l, hdr := int(b[0]), 1
	if l == varLenLongMarker {
		if len(b) < 3 {
			return nil, 0, false
		}
		l, hdr = int(binary.BigEndian.Uint16(b[1:])), 3
	}
	if len(b)-hdr < l {
		return nil, 0, false
	}
	return b[hdr : hdr+l], hdr + l, true
}

// ParseHeader reads a message header from b.
func ParseHeader(b []byte) (Header, bool) {
	if len(b) < HeaderLen || binary.BigEndian.Uint16(b) != Version {
		return Header{}, false
	}
	return Header{
		Length:     binary.BigEndian.Uint16(b[2:]),
		ExportTime: binary.BigEndian.Uint32(b[4:]),
		Sequence:   binary.BigEndian.Uint32(b[8:]),
		Domain:     binary.BigEndian.Uint32(b[12:]),
	}, true
}

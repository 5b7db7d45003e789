package mib

import (
	_ "embed"
	"strconv"
	"strings"
)

//go:generate go run ./internal/mibgen -in MIRA-PROBE-MIB.txt -out oids_gen.go -pkg mib

// Text is the MIB module's source, for tools that install it next to the
// probe (snmpwalk -M DIR -m MIRA-PROBE-MIB).
//
//go:embed MIRA-PROBE-MIB.txt
var Text []byte

// Kind says what sort of node an Object is.
type Kind string

// Object kinds.
const (
	KindNode         Kind = "node"
	KindScalar       Kind = "scalar"
	KindTable        Kind = "table"
	KindEntry        Kind = "entry"
	KindColumn       Kind = "column"
	KindNotification Kind = "notification"
	KindGroup        Kind = "group"
	KindCompliance   Kind = "compliance"
)

// Object is one definition of the module.
type Object struct {
	Name    string
	OID     string // dotted, no leading dot
	Kind    Kind
	Syntax  string // the SYNTAX clause's type name
	Base    string // the SNMP base type on the wire: Counter64, Gauge32, Integer, OctetString, ...
	Access  string // MAX-ACCESS
	Index   []string
	Objects []string
}

// Lookup returns the object with the given name.
func Lookup(name string) (Object, bool) {
	for _, o := range Objects {
		if o.Name == name {
			return o, true
		}
	}
	return Object{}, false
}

// ParseOID parses a dotted OID with or without a leading dot.
func ParseOID(s string) ([]uint32, error) {
	s = strings.TrimPrefix(s, ".")
	if s == "" {
		return nil, &OIDError{Input: s, Offset: 0}
	}
	parts := strings.Split(s, ".")
	out := make([]uint32, len(parts))
	off := 0
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, &OIDError{Input: s, Offset: off}
		}
		out[i] = uint32(n)
		off += len(p) + 1
	}
	return out, nil
}

// MustOID is ParseOID for the generated constants; it panics on a bad OID,
// which can only be a generator bug.
func MustOID(s string) []uint32 {
	o, err := ParseOID(s)
	if err != nil {
		panic(err)
	}
	return o
}

// OIDError reports a malformed dotted OID.
type OIDError struct {
	Input  string
	Offset int
}

func (e *OIDError) Error() string {
	return "mib: bad oid " + strconv.Quote(e.Input) + " at offset " + strconv.Itoa(e.Offset)
}

package store

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/mira-project/mira/flow"
)

// RecordVersion is the version byte that starts every encoded record. A
// decoder accepts only the versions it knows; a new layout gets a new
// version and the old decoder stays. Version 2 appends the flow sampling
// interval to version 1's layout; version 3 appends application metadata
// (flow.App) to version 2's and is written only for records that have
// some, so records without stay readable by version-2 decoders. Version 4
// is version 3 whose app flags may say an FTP data port list follows
// (appFTP); it is written only for records with one, so the others stay
// readable by version-3 decoders. Version 5 appends the scanned octets
// (flow.Record.ScannedOctets, a uvarint) to version 2's layout, then
// version 4's app flags and metadata when the record has some (the
// flags byte is left out when it has none: nothing may follow a record);
// it is written only for records with scanned octets, so the others
// stay readable by version-4 decoders, and a record of an older version
// reads as not scanned (0).
const RecordVersion = 5

// recordV2 is the layout of records without application metadata,
// recordV3 of those without an FTP data port list, recordV4 of those
// without scanned octets.
const (
	recordV2 = 2
	recordV3 = 3
	recordV4 = 4
)

// App flags of a version-3 and 4 record (appFTP: version 4 only).
const (
	appNames = 1 // four names follow, each uvarint length and bytes
	appRcode = 2 // a DNS response code byte follows
	appFTP   = 4 // an FTP data port list follows, uvarint length and bytes
)

// maxAppName bounds a stored application name.
const maxAppName = 255

// Address tags in the record encoding.
const (
	addrNone = 0 // invalid (zero) netip.Addr
	addrV4   = 4
	addrV6   = 6
)

// Decode failure reasons; DecodeError.Reason is one of these, and
// Store.DecodeErrors counts by them.
const (
	ReasonTruncated = "truncated"
	ReasonVersion   = "unknown version"
	ReasonAddrTag   = "bad address tag"
	ReasonOverflow  = "varint overflow"
	ReasonRange     = "value out of range"
	ReasonMACFlag   = "bad mac flag"
	ReasonSymptoms  = "symptom count exceeds input"
	ReasonTrailing  = "trailing bytes"
	ReasonBadKey    = "bad key"
	ReasonBadOrigin = "unknown origin"
)

// DecodeError describes why an encoded record could not be decoded.
type DecodeError struct {
	Offset int    // byte offset in the encoded value where decoding failed
	Field  string // the field being decoded
	Reason string // one of the Reason constants
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode record: %s at offset %d (%s)", e.Reason, e.Offset, e.Field)
}

// AppendRecord appends the binary encoding of r to dst and returns the
// extended slice. It does not allocate when dst has room. IPv6 zones are not
// stored.
//
// It grows dst once to the most the record can take and writes each field
// at an index (no append per field): this runs for every record a
// collector receives.
func AppendRecord(dst []byte, r *flow.Record) []byte {
	a := &r.App
	appZero := a.IsZero()
	n := maxRecordFixed + maxSymptomLen*len(r.Symptoms)
	if !appZero {
		n += min(len(a.HTTPHost), maxAppName) + min(len(a.ServerName), maxAppName) +
			min(len(a.ALPN), maxAppName) + min(len(a.DNSName), maxAppName) + min(len(a.FTPData), maxAppName)
	}
	dst = slices.Grow(dst, n)
	at := len(dst)
	b := dst[at : at+n]
	switch {
	case r.ScannedOctets != 0:
		b[0] = RecordVersion
	case appZero:
		b[0] = recordV2
	case a.FTPData == "":
		b[0] = recordV3
	default:
		b[0] = recordV4
	}
	i := putAddr(b, 1, r.Src)
	i = putAddr(b, i, r.Dst)
	i = putUvarint(b, i, uint64(r.Sport))
	i = putUvarint(b, i, uint64(r.Dport))
	b[i] = r.Proto
	i = putUvarint(b, i+1, uint64(r.VLAN))
	i = putUvarint(b, i, r.Packets)
	i = putUvarint(b, i, r.Octets)
	i = putUvarint(b, i, r.InnerOctets)
	i = putVarint(b, i, r.First)
	i = putVarint(b, i, r.Last-r.First)
	b[i], b[i+1], b[i+2], b[i+3] = r.TCPFlags, byte(r.EndReason), r.IPVersion, byte(r.Tunnel)
	if !r.TunnelSrc.IsValid() && !r.TunnelDst.IsValid() {
		// Not tunnelled (most records): two empty addresses.
		b[i+4], b[i+5] = addrNone, addrNone
		i += 6
	} else {
		i = putAddr(b, i+4, r.TunnelSrc)
		i = putAddr(b, i, r.TunnelDst)
	}
	i = putUvarint(b, i, uint64(r.Ingress))
	b[i] = r.Direction
	i = putUvarint(b, i+1, uint64(r.VPI))
	i = putUvarint(b, i, uint64(r.VCI))
	if r.SrcMAC == ([6]byte{}) && r.DstMAC == ([6]byte{}) {
		b[i] = 0
		i++
	} else {
		b[i] = 1
		*(*[6]byte)(b[i+1:]) = r.SrcMAC
		*(*[6]byte)(b[i+7:]) = r.DstMAC
		i += 13
	}
	i = putUvarint(b, i, uint64(r.Aggregate))
	i = putUvarint(b, i, uint64(r.Category))
	i = putUvarint(b, i, uint64(len(r.Symptoms)))
	for _, s := range r.Symptoms {
		i = putUvarint(b, i, uint64(s.ID))
		i = putUvarint(b, i, uint64(s.Count))
	}
	i = putUvarint(b, i, uint64(r.ObservationDomain))
	i = putUvarint(b, i, uint64(r.SamplingPacketInterval))
	i = putUvarint(b, i, uint64(r.SamplingFlowInterval))
	if r.ScannedOctets != 0 {
		i = putUvarint(b, i, r.ScannedOctets)
	}
	if appZero {
		return dst[:at+i]
	}
	var f byte
	if a.HTTPHost != "" || a.ServerName != "" || a.ALPN != "" || a.DNSName != "" {
		f |= appNames
	}
	if a.DNSResponse {
		f |= appRcode
	}
	if a.FTPData != "" {
		f |= appFTP
	}
	b[i] = f
	i++
	if f&appNames != 0 {
		i = putAppName(b, i, a.HTTPHost)
		i = putAppName(b, i, a.ServerName)
		i = putAppName(b, i, a.ALPN)
		i = putAppName(b, i, a.DNSName)
	}
	if f&appRcode != 0 {
		b[i] = a.DNSRcode
		i++
	}
	if f&appFTP != 0 {
		i = putAppName(b, i, a.FTPData)
	}
	return dst[:at+i]
}

// maxRecordFixed bounds a record's encoding without its symptoms and the
// bytes of its application names (every varint at its longest, both
// addresses IPv6, the MACs, every app flag and name length);
// maxSymptomLen bounds one symptom.
const (
	maxRecordFixed = 1 + 2*17 + 3 + 3 + 1 + 3 + 3*10 + 2*10 + 4 + 2*17 + 5 + 1 + 2*3 + 13 + 5 + 3 +
		10 + 3*5 + 10 + 1 + 5*2 + 1
	maxSymptomLen = 3 + 5
)

// putUvarint writes v at b[i:] as binary.AppendUvarint does and returns
// the index after it.
func putUvarint(b []byte, i int, v uint64) int {
	for v >= 0x80 {
		b[i] = byte(v) | 0x80
		v >>= 7
		i++
	}
	b[i] = byte(v)
	return i + 1
}

// putVarint writes v at b[i:] as binary.AppendVarint does.
func putVarint(b []byte, i int, v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return putUvarint(b, i, u)
}

// putAddr writes a tagged address at b[i:].
func putAddr(b []byte, i int, a netip.Addr) int {
	switch {
	case !a.IsValid(): // most tunnel endpoints: the cheapest test first
		b[i] = addrNone
		return i + 1
	case a.Is4():
		b[i] = addrV4
		*(*[4]byte)(b[i+1:]) = a.As4()
		return i + 5
	}
	// A valid address that is not IPv4 is IPv6.
	b[i] = addrV6
	*(*[16]byte)(b[i+1:]) = a.As16()
	return i + 17
}

// putAppName writes a stored application name (cut to maxAppName).
func putAppName(b []byte, i int, n string) int {
	n = n[:min(len(n), maxAppName)]
	i = putUvarint(b, i, uint64(len(n)))
	return i + copy(b[i:], n)
}

// appName reads one stored application name: printable ASCII.
func (d *decoder) appName(field string) string {
	b := d.appNameBytes(field)
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

// skipAppName checks one stored application name and skips it.
func (d *decoder) skipAppName(field string) { d.appNameBytes(field) }

func (d *decoder) appNameBytes(field string) []byte {
	n := d.uvarint(field, maxAppName)
	b := d.bytes(field, int(n))
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			d.off -= len(b)
			d.fail(field, ReasonRange)
			return nil
		}
	}
	return b
}

// decoder reads an encoded record; the first failure sticks in err.
type decoder struct {
	b   []byte
	off int
	err *DecodeError
}

func (d *decoder) fail(field, reason string) {
	if d.err == nil {
		d.err = &DecodeError{Offset: d.off, Field: field, Reason: reason}
	}
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail(field, ReasonTruncated)
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) uvarint(field string, max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	switch {
	case n == 0:
		d.fail(field, ReasonTruncated)
		return 0
	case n < 0:
		d.fail(field, ReasonOverflow)
		return 0
	case v > max:
		d.fail(field, ReasonRange)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	switch {
	case n == 0:
		d.fail(field, ReasonTruncated)
		return 0
	case n < 0:
		d.fail(field, ReasonOverflow)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) bytes(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b)-d.off < n {
		d.fail(field, ReasonTruncated)
		return nil
	}
	v := d.b[d.off : d.off+n]
	d.off += n
	return v
}

func (d *decoder) addr(field string) netip.Addr {
	switch tag := d.byte(field); {
	case d.err != nil:
	case tag == addrNone:
	case tag == addrV4:
		if b := d.bytes(field, 4); b != nil {
			return netip.AddrFrom4([4]byte(b))
		}
	case tag == addrV6:
		if b := d.bytes(field, 16); b != nil {
			return netip.AddrFrom16([16]byte(b))
		}
	default:
		d.off--
		d.fail(field, ReasonAddrTag)
	}
	return netip.Addr{}
}

// DecodeRecord decodes one encoded record into r, overwriting every field.
// The symptom list is appended to r.Symptoms[:0], so a caller that reuses r
// across calls reuses its capacity; a record with no symptoms gets a nil
// list. On failure the error is a *DecodeError and r is undefined.
func DecodeRecord(b []byte, r *flow.Record) error { return decodeRecord(b, r, true) }

// DecodeRecordNoNames is DecodeRecord without the application names
// (App.HTTPHost, ServerName, ALPN, DNSName: checked, left empty; the DNS
// response code and FTP data ports are kept), for readers that use
// none of them (the report's rollups): no string is allocated for them.
func DecodeRecordNoNames(b []byte, r *flow.Record) error { return decodeRecord(b, r, false) }

func decodeRecord(b []byte, r *flow.Record, names bool) error {
	d := decoder{b: b}
	v := d.byte("version")
	if d.err == nil && (v < 1 || v > RecordVersion) {
		d.off = 0
		d.fail("version", ReasonVersion)
	}
	syms := r.Symptoms[:0]
	*r = flow.Record{}
	r.Src = d.addr("src")
	r.Dst = d.addr("dst")
	r.Sport = uint16(d.uvarint("sport", 0xffff))
	r.Dport = uint16(d.uvarint("dport", 0xffff))
	r.Proto = d.byte("proto")
	r.VLAN = uint16(d.uvarint("vlan", 0xffff))
	r.Packets = d.uvarint("packets", 1<<64-1)
	r.Octets = d.uvarint("octets", 1<<64-1)
	r.InnerOctets = d.uvarint("inner octets", 1<<64-1)
	r.First = d.varint("first")
	r.Last = r.First + d.varint("duration")
	r.TCPFlags = d.byte("tcp flags")
	r.EndReason = flow.EndReason(d.byte("end reason"))
	r.IPVersion = d.byte("ip version")
	r.Tunnel = flow.TunnelType(d.byte("tunnel"))
	r.TunnelSrc = d.addr("tunnel src")
	r.TunnelDst = d.addr("tunnel dst")
	r.Ingress = uint32(d.uvarint("ingress", 0xffffffff))
	r.Direction = d.byte("direction")
	r.VPI = uint16(d.uvarint("vpi", 0xffff))
	r.VCI = uint16(d.uvarint("vci", 0xffff))
	switch f := d.byte("mac flag"); {
	case d.err != nil, f == 0:
	case f == 1:
		if m := d.bytes("mac", 12); m != nil {
			copy(r.SrcMAC[:], m[:6])
			copy(r.DstMAC[:], m[6:])
		}
	default:
		d.off--
		d.fail("mac flag", ReasonMACFlag)
	}
	r.Aggregate = uint32(d.uvarint("aggregate", 0xffffffff))
	r.Category = uint16(d.uvarint("category", 0xffff))
	start := d.off
	n := d.uvarint("symptom count", 1<<32)
	// Each symptom takes at least two bytes: refuse counts the input cannot
	// hold before allocating for them.
	if d.err == nil && n > uint64(len(b)-d.off)/2 {
		d.off = start
		d.fail("symptom count", ReasonSymptoms)
	}
	if d.err == nil && n > 0 {
		if uint64(cap(syms)) < n {
			syms = make([]flow.SymptomCount, 0, n)
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			id := d.uvarint("symptom id", 0xffff)
			c := d.uvarint("symptom count", 0xffffffff)
			syms = append(syms, flow.SymptomCount{ID: uint16(id), Count: uint32(c)})
		}
		r.Symptoms = syms
	}
	r.ObservationDomain = uint32(d.uvarint("observation domain", 0xffffffff))
	r.SamplingPacketInterval = uint32(d.uvarint("sampling interval", 0xffffffff))
	if v >= 2 {
		r.SamplingFlowInterval = uint32(d.uvarint("flow sampling interval", 0xffffffff))
	}
	if v >= 5 {
		at := d.off
		r.ScannedOctets = d.uvarint("scanned octets", 1<<64-1)
		// A version-5 record's scanned octets are not 0 (a record
		// without is written in an older version): a record has one
		// encoding.
		if d.err == nil && r.ScannedOctets == 0 {
			d.off = at
			d.fail("scanned octets", ReasonRange)
		}
	}
	if v >= 3 && (v < 5 || (d.err == nil && d.off < len(b))) {
		f := d.byte("app flags")
		known := byte(appNames | appRcode)
		if v >= 4 {
			known |= appFTP
		}
		if d.err == nil && (f == 0 || f&^known != 0) {
			d.off--
			d.fail("app flags", ReasonRange)
		}
		if f&appNames != 0 && names {
			r.App.HTTPHost = d.appName("http host")
			r.App.ServerName = d.appName("server name")
			r.App.ALPN = d.appName("alpn")
			r.App.DNSName = d.appName("dns name")
		} else if f&appNames != 0 {
			d.skipAppName("http host")
			d.skipAppName("server name")
			d.skipAppName("alpn")
			d.skipAppName("dns name")
		}
		if f&appRcode != 0 {
			r.App.DNSResponse, r.App.DNSRcode = true, d.byte("dns rcode")
		}
		if f&appFTP != 0 {
			r.App.FTPData = d.appName("ftp data ports")
		}
	}
	if d.err == nil && d.off != len(b) {
		d.fail("end", ReasonTrailing)
	}
	if d.err != nil {
		return d.err
	}
	return nil
}

// ChunkVersion starts every stored value: a chunk of records of one origin,
// in end-time order, each length-prefixed:
//
//	ChunkVersion, uvarint n, n × (uvarint len, encoded record)
const ChunkVersion = 1

// Chunk decode failure reason.
const ReasonChunk = "bad chunk header"

// maxChunkRecords bounds a chunk so that one damaged value loses few
// records and a scan's first chunk holds few records before its start.
const maxChunkRecords = 64

// appendChunkHeader starts a chunk of n records.
func appendChunkHeader(dst []byte, n int) []byte {
	dst = append(dst, ChunkVersion)
	return binary.AppendUvarint(dst, uint64(n))
}

// appendChunkRecord appends one length-prefixed record to a chunk.
func appendChunkRecord(dst []byte, r *flow.Record) []byte {
	// Reserve one length byte (most records are under 128 bytes) and
	// move the record when it needs more.
	at := len(dst)
	dst = append(dst, 0)
	dst = AppendRecord(dst, r)
	n := len(dst) - at - 1
	if n < 0x80 {
		dst[at] = byte(n)
		return dst
	}
	var lb [binary.MaxVarintLen64]byte
	l := binary.PutUvarint(lb[:], uint64(n))
	dst = append(dst, lb[:l-1]...)
	copy(dst[at+l:], dst[at+1:at+1+n])
	copy(dst[at:], lb[:l])
	return dst
}

// ChunkRecords calls fn with the encoded bytes of each record of a stored
// chunk. A record fn fails on does not stop the walk, since the length
// prefixes frame the next one; a damaged header or length does, and is
// returned as a *DecodeError (fn has seen the records before it).
func ChunkRecords(v []byte, fn func(rec []byte)) error {
	d := decoder{b: v}
	if ver := d.byte("chunk version"); d.err == nil && ver != ChunkVersion {
		d.off = 0
		d.fail("chunk version", ReasonChunk)
	}
	n := d.uvarint("chunk count", uint64(len(v)))
	if d.err == nil && n == 0 {
		d.fail("chunk count", ReasonChunk)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		l := d.uvarint("record length", uint64(len(v)))
		if b := d.bytes("record", int(l)); d.err == nil {
			fn(b)
		}
	}
	if d.err == nil && d.off != len(v) {
		d.fail("chunk end", ReasonTrailing)
	}
	if d.err != nil {
		return d.err
	}
	return nil
}

package store

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mira-project/mira/flow"
)

// appendRecordRef is AppendRecord as it was written first, an append
// per field: the reference the indexed writer must match byte for byte
// (the stored format is a contract: old stores read the same).
func appendRecordRef(dst []byte, r *flow.Record) []byte {
	a := &r.App
	switch {
	case r.ScannedOctets != 0:
		dst = append(dst, RecordVersion)
	case a.IsZero():
		dst = append(dst, recordV2)
	case a.FTPData == "":
		dst = append(dst, recordV3)
	default:
		dst = append(dst, recordV4)
	}
	dst = appendAddrRef(dst, r.Src)
	dst = appendAddrRef(dst, r.Dst)
	dst = binary.AppendUvarint(dst, uint64(r.Sport))
	dst = binary.AppendUvarint(dst, uint64(r.Dport))
	dst = append(dst, r.Proto)
	dst = binary.AppendUvarint(dst, uint64(r.VLAN))
	dst = binary.AppendUvarint(dst, r.Packets)
	dst = binary.AppendUvarint(dst, r.Octets)
	dst = binary.AppendUvarint(dst, r.InnerOctets)
	dst = binary.AppendVarint(dst, r.First)
	dst = binary.AppendVarint(dst, r.Last-r.First)
	dst = append(dst, r.TCPFlags, byte(r.EndReason), r.IPVersion, byte(r.Tunnel))
	dst = appendAddrRef(dst, r.TunnelSrc)
	dst = appendAddrRef(dst, r.TunnelDst)
	dst = binary.AppendUvarint(dst, uint64(r.Ingress))
	dst = append(dst, r.Direction)
	dst = binary.AppendUvarint(dst, uint64(r.VPI))
	dst = binary.AppendUvarint(dst, uint64(r.VCI))
	if r.SrcMAC == ([6]byte{}) && r.DstMAC == ([6]byte{}) {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = append(dst, r.SrcMAC[:]...)
		dst = append(dst, r.DstMAC[:]...)
	}
	dst = binary.AppendUvarint(dst, uint64(r.Aggregate))
	dst = binary.AppendUvarint(dst, uint64(r.Category))
	dst = binary.AppendUvarint(dst, uint64(len(r.Symptoms)))
	for _, s := range r.Symptoms {
		dst = binary.AppendUvarint(dst, uint64(s.ID))
		dst = binary.AppendUvarint(dst, uint64(s.Count))
	}
	dst = binary.AppendUvarint(dst, uint64(r.ObservationDomain))
	dst = binary.AppendUvarint(dst, uint64(r.SamplingPacketInterval))
	dst = binary.AppendUvarint(dst, uint64(r.SamplingFlowInterval))
	if r.ScannedOctets != 0 {
		dst = binary.AppendUvarint(dst, r.ScannedOctets)
	}
	if a.IsZero() {
		return dst
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
	dst = append(dst, f)
	if f&appNames != 0 {
		for _, n := range [...]string{a.HTTPHost, a.ServerName, a.ALPN, a.DNSName} {
			n = n[:min(len(n), maxAppName)]
			dst = binary.AppendUvarint(dst, uint64(len(n)))
			dst = append(dst, n...)
		}
	}
	if f&appRcode != 0 {
		dst = append(dst, a.DNSRcode)
	}
	if f&appFTP != 0 {
		n := a.FTPData[:min(len(a.FTPData), maxAppName)]
		dst = binary.AppendUvarint(dst, uint64(len(n)))
		dst = append(dst, n...)
	}
	return dst
}

func appendAddrRef(dst []byte, a netip.Addr) []byte {
	switch {
	case a.Is4():
		b := a.As4()
		dst = append(dst, addrV4)
		return append(dst, b[:]...)
	case a.Is6():
		b := a.As16()
		dst = append(dst, addrV6)
		return append(dst, b[:]...)
	}
	return append(dst, addrNone)
}

// recordFrom fills a record from arbitrary bytes: every field, symptom
// lists and application names of any length (longer than stored ones
// too) and content, addresses of every kind (zoned, mapped, none).
func recordFrom(b []byte) flow.Record {
	next := func(n int) []byte {
		v := make([]byte, n)
		copy(v, b)
		b = b[min(n, len(b)):]
		return v
	}
	u := func(n int) uint64 {
		v := next(n)
		var x uint64
		for _, c := range v {
			x = x<<8 | uint64(c)
		}
		// Small values are the common case; let a byte choose.
		if sh := next(1)[0]; sh&0x80 != 0 {
			x >>= sh & 63
		}
		return x
	}
	addr := func() netip.Addr {
		switch k := next(1)[0] % 5; k {
		case 1:
			return netip.AddrFrom4([4]byte(next(4)))
		case 2:
			return netip.AddrFrom16([16]byte(next(16)))
		case 3:
			return netip.AddrFrom16([16]byte(next(16))).WithZone("eth0")
		case 4:
			return netip.AddrFrom16(netip.AddrFrom4([4]byte(next(4))).As16())
		}
		return netip.Addr{}
	}
	name := func() string {
		n := int(next(1)[0])
		if n > 200 {
			n += int(next(1)[0]) // past maxAppName too
		}
		return string(next(n % 400))
	}
	var r flow.Record
	r.Src, r.Dst = addr(), addr()
	r.Sport, r.Dport, r.Proto, r.VLAN = uint16(u(2)), uint16(u(2)), byte(u(1)), uint16(u(2))
	r.Packets, r.Octets, r.InnerOctets = u(8), u(8), u(8)
	r.First, r.Last = int64(u(8)), int64(u(8))
	r.TCPFlags, r.EndReason, r.IPVersion, r.Tunnel = byte(u(1)), flow.EndReason(u(1)), byte(u(1)), flow.TunnelType(u(1))
	r.TunnelSrc, r.TunnelDst = addr(), addr()
	r.Ingress, r.Direction, r.VPI, r.VCI = uint32(u(4)), byte(u(1)), uint16(u(2)), uint16(u(2))
	if next(1)[0]&1 != 0 {
		r.SrcMAC, r.DstMAC = [6]byte(next(6)), [6]byte(next(6))
	}
	r.Aggregate, r.Category = uint32(u(4)), uint16(u(2))
	for n := next(1)[0] % 40; n > 0; n-- {
		r.Symptoms = append(r.Symptoms, flow.SymptomCount{ID: uint16(u(2)), Count: uint32(u(4))})
	}
	r.ObservationDomain, r.SamplingPacketInterval, r.SamplingFlowInterval = uint32(u(4)), uint32(u(4)), uint32(u(4))
	r.ScannedOctets = u(8)
	if f := next(1)[0]; f&1 != 0 {
		r.App = flow.App{HTTPHost: name(), ServerName: name(), ALPN: name(), DNSName: name(),
			DNSRcode: byte(u(1)), DNSResponse: f&2 != 0, FTPData: name()}
	}
	return r
}

// TestAppendRecordSameAsReference: the indexed writer's bytes are the
// reference encoder's, appended to an empty and a non-empty buffer.
func TestAppendRecordSameAsReference(t *testing.T) {
	recs := append(append(sampleRecords(), appRecords()...), scannedRecords()...)
	for i := range 2000 {
		b := make([]byte, 600)
		for j := range b {
			b[j] = byte(i*7919 + j*j*31 + j>>3)
		}
		recs = append(recs, recordFrom(b[i%97:]))
	}
	for i := range recs {
		sameAsReference(t, &recs[i])
	}
}

func sameAsReference(t *testing.T, r *flow.Record) {
	t.Helper()
	for _, pre := range [][]byte{nil, []byte("prefix"), make([]byte, 3, 64)} {
		want := appendRecordRef(append([]byte(nil), pre...), r)
		got := AppendRecord(append([]byte(nil), pre...), r)
		if !bytes.Equal(got, want) {
			t.Fatalf("record %+v:\nAppendRecord %x\nreference    %x", r, got, want)
		}
	}
}

// FuzzAppendRecord: on any record, AppendRecord writes the reference
// encoder's bytes.
func FuzzAppendRecord(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 700))
	f.Add(bytes.Repeat([]byte{1, 2, 3, 0x81, 200, 9}, 100))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := recordFrom(b)
		sameAsReference(t, &r)
	})
}

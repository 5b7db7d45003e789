package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"github.com/mira-project/mira/flow"
)

func sampleRecords() []flow.Record {
	return []flow.Record{
		{},
		{
			Key: flow.Key{
				Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.7"),
				Sport: 40001, Dport: 25, Proto: 6, VLAN: 42,
			},
			Packets: 12, Octets: 2301, InnerOctets: 2301,
			First: 1552590234892000000, Last: 1552590243371000000,
			TCPFlags: 0x1b, EndReason: flow.EndDetected, IPVersion: 4,
			Ingress: 3, Direction: 0,
			SrcMAC: [6]byte{0, 1, 2, 3, 4, 5}, DstMAC: [6]byte{6, 7, 8, 9, 10, 11},
			Aggregate: 7, Category: 3,
			Symptoms:          []flow.SymptomCount{{ID: 1, Count: 3}, {ID: 65535, Count: 4294967295}},
			ObservationDomain: 42, SamplingPacketInterval: 100,
		},
		{
			Key: flow.Key{
				Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("::ffff:192.0.2.9"),
				Sport: 0, Dport: 8 << 8, Proto: 58,
			},
			Packets: 1<<64 - 1, Octets: 1<<64 - 1, InnerOctets: 0,
			First: -5, Last: -10, // clocks before 1970 and a last before first survive
			IPVersion: 6, Tunnel: flow.TunnelGRE,
			TunnelSrc: netip.MustParseAddr("203.0.113.1"), TunnelDst: netip.MustParseAddr("2001:db8::ff"),
			Direction: 255, VPI: 0xffff, VCI: 0xffff,
			Aggregate: 0xffffffff, Category: 0xffff, ObservationDomain: 0xffffffff,
			SamplingPacketInterval: 0xffffffff, Ingress: 0xffffffff,
		},
	}
}

// appRecords have application metadata (record version 3).
func appRecords() []flow.Record {
	return []flow.Record{
		{Packets: 3, App: flow.App{HTTPHost: "www.example.org:8080", ALPN: "h2,http/1.1"}},
		{Packets: 1, App: flow.App{DNSName: "a.example", DNSResponse: true, DNSRcode: 3}},
		{Packets: 1, App: flow.App{DNSResponse: true}},
		{Packets: 7, App: flow.App{FTPData: "50126,20"}},
		{Packets: 7, App: flow.App{DNSName: "ftp.example", FTPData: "1025", DNSResponse: true}},
	}
}

// scannedRecords have scanned octets (record version 5), with and
// without application metadata.
func scannedRecords() []flow.Record {
	return []flow.Record{
		{Packets: 3, Octets: 3000, ScannedOctets: 517},
		{Packets: 3, ScannedOctets: 1<<64 - 1, Symptoms: []flow.SymptomCount{{ID: 2, Count: 1}}},
		{Packets: 1, ScannedOctets: 1, App: flow.App{ServerName: "video.example.net", ALPN: "h2"}},
		{Packets: 7, ScannedOctets: 200, App: flow.App{DNSName: "ftp.example", FTPData: "1025", DNSResponse: true}},
	}
}

// TestRecordScannedVersion: a record with scanned octets is version 5,
// one without keeps its older version (older decoders read it), and a
// version-5 record may not say 0 (one record, one encoding).
func TestRecordScannedVersion(t *testing.T) {
	for i, r := range scannedRecords() {
		if b := AppendRecord(nil, &r); b[0] != 5 {
			t.Errorf("scanned record %d has version %d, want 5", i, b[0])
		}
		r.ScannedOctets = 0
		if b := AppendRecord(nil, &r); b[0] >= 5 {
			t.Errorf("record %d without scanned octets has version %d", i, b[0])
		}
	}
	r := flow.Record{Packets: 2, ScannedOctets: 9}
	b := AppendRecord(nil, &r)
	if b[len(b)-1] != 9 {
		t.Fatalf("scanned octets not last: % x", b)
	}
	b[len(b)-1] = 0
	var out flow.Record
	var de *DecodeError
	if err := DecodeRecord(b, &out); !errors.As(err, &de) || de.Reason != ReasonRange || de.Field != "scanned octets" || de.Offset != len(b)-1 {
		t.Fatalf("version 5 with 0 scanned octets: %v", err)
	}
	// The app flags of a version-5 record follow only when it has
	// metadata: a zero flags byte is refused as before.
	b = append(AppendRecord(nil, &flow.Record{ScannedOctets: 9}), 0)
	if err := DecodeRecord(b, &out); !errors.As(err, &de) || de.Reason != ReasonRange || de.Field != "app flags" {
		t.Fatalf("version 5 with zero app flags: %v", err)
	}
}

// TestDecodeOldRecords: records as the encoder wrote them before
// version 5 (bytes from commit 1c65fe1) still decode, with 0 scanned
// octets (not known).
func TestDecodeOldRecords(t *testing.T) {
	first := int64(1552590234892000000)
	for _, tt := range []struct {
		hex  string
		want flow.Record
	}{
		{"0204c000020104c6336407c1b802bb0306000cfd110080ecd287f7a5f48b2b80979a963f00030400000000000000000000010401010004",
			flow.Record{Key: flow.Key{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.7"), Sport: 40001, Dport: 443, Proto: 6},
				Packets: 12, Octets: 2301, First: first, Last: 1552590243371000000, EndReason: flow.EndDetected, IPVersion: 4,
				Symptoms: []flow.SymptomCount{{ID: 4, Count: 1}}, ObservationDomain: 1, SamplingFlowInterval: 4}},
		{"030620010db80000000000000000000000010620010db8000000000000000000000002e92935110001500080ecd287f7a5f48b2b0000000600000000000000000000000000000300000009612e6578616d706c6503",
			flow.Record{Key: flow.Key{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"), Sport: 5353, Dport: 53, Proto: 17},
				Packets: 1, Octets: 80, First: first, Last: first, IPVersion: 6,
				App: flow.App{DNSName: "a.example", DNSResponse: true, DNSRcode: 3}}},
		{"0404c000020104c0000202c2b80215060007bc050080ecd287f7a5f48b2b80a8d6b9070000040000000000000000000000000000040835303132362c3230",
			flow.Record{Key: flow.Key{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"), Sport: 40002, Dport: 21, Proto: 6},
				Packets: 7, Octets: 700, First: first, Last: first + 1e9, IPVersion: 4, App: flow.App{FTPData: "50126,20"}}},
	} {
		b, err := hex.DecodeString(tt.hex)
		if err != nil {
			t.Fatal(err)
		}
		got := flow.Record{ScannedOctets: 77} // overwritten
		if err := DecodeRecord(b, &got); err != nil {
			t.Fatalf("version %d: %v", b[0], err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("version %d:\n got %+v\nwant %+v", b[0], got, tt.want)
		}
		// Without scanned octets the encoder still writes these bytes.
		if again := AppendRecord(nil, &got); !bytes.Equal(again, b) {
			t.Errorf("version %d re-encodes as % x", b[0], again)
		}
	}
}

// TestRecordFTPVersion: a record with an FTP data port list is version
// 4; version 3 may not carry one (a version-3 decoder's view).
func TestRecordFTPVersion(t *testing.T) {
	r := flow.Record{Packets: 2, App: flow.App{FTPData: "50126"}}
	b := AppendRecord(nil, &r)
	if b[0] != 4 {
		t.Fatalf("record with FTP data ports has version %d", b[0])
	}
	b[0] = 3
	var out flow.Record
	var de *DecodeError
	if err := DecodeRecord(b, &out); !errors.As(err, &de) || de.Reason != ReasonRange || de.Field != "app flags" {
		t.Fatalf("version 3 with the FTP flag: %v", err)
	}
	r.App.FTPData = ""
	r.App.DNSName = "a.example"
	if b := AppendRecord(nil, &r); b[0] != 3 {
		t.Errorf("record with app metadata but no FTP data ports has version %d, want 3", b[0])
	}
}

// TestRecordAppVersions: a record without application metadata keeps
// version 2's layout (old decoders read it); one with it is version 3;
// a bad name byte is a range error, not a crash.
func TestRecordAppVersions(t *testing.T) {
	plain := flow.Record{Packets: 2}
	if b := AppendRecord(nil, &plain); b[0] != 2 {
		t.Errorf("record without app metadata has version %d", b[0])
	}
	r := flow.Record{Packets: 2, App: flow.App{ServerName: "video.example.net"}}
	b := AppendRecord(nil, &r)
	if b[0] != 3 {
		t.Fatalf("record with app metadata has version %d", b[0])
	}
	i := len(b) - 1 - len("video.example.net") - 1 - 1 // the 'v'... of the server name
	for ; b[i] != 'v'; i++ {
	}
	b[i] = 0x01
	var out flow.Record
	var de *DecodeError
	if err := DecodeRecord(b, &out); !errors.As(err, &de) || de.Reason != ReasonRange || de.Field != "server name" {
		t.Fatalf("bad name byte: %v", err)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for i, want := range append(append(sampleRecords(), appRecords()...), scannedRecords()...) {
		b := AppendRecord(nil, &want)
		var got flow.Record
		if err := DecodeRecord(b, &got); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

// checkNoNames: DecodeRecordNoNames gives what DecodeRecord gave (r,
// err) less the four application names, and the same error.
func checkNoNames(t *testing.T, b []byte, r *flow.Record, err error) {
	t.Helper()
	var got flow.Record
	err2 := DecodeRecordNoNames(b, &got)
	if fmt.Sprint(err) != fmt.Sprint(err2) {
		t.Fatalf("DecodeRecordNoNames: error %v, DecodeRecord's %v", err2, err)
	}
	if err != nil {
		return
	}
	want := *r
	want.App.HTTPHost, want.App.ServerName, want.App.ALPN, want.App.DNSName = "", "", "", ""
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeRecordNoNames:\n got %+v\nwant %+v", got, want)
	}
}

func TestRecordNoNames(t *testing.T) {
	for _, r := range append(append(sampleRecords(), appRecords()...), scannedRecords()...) {
		b := AppendRecord(nil, &r)
		var got flow.Record
		err := DecodeRecord(b, &got)
		checkNoNames(t, b, &got, err)
		for n := range b {
			err := DecodeRecord(b[:n], &got)
			checkNoNames(t, b[:n], &got, err)
		}
	}
	// Allocation: none for the names.
	r := appRecords()[0]
	b := AppendRecord(nil, &r)
	var got flow.Record
	if n := testing.AllocsPerRun(100, func() { DecodeRecordNoNames(b, &got) }); n != 0 {
		t.Errorf("DecodeRecordNoNames: %v allocations", n)
	}
}

func TestRecordZoneDropped(t *testing.T) {
	r := flow.Record{Key: flow.Key{Src: netip.MustParseAddr("fe80::1%eth0")}}
	var got flow.Record
	if err := DecodeRecord(AppendRecord(nil, &r), &got); err != nil {
		t.Fatal(err)
	}
	if got.Src != netip.MustParseAddr("fe80::1") {
		t.Errorf("src = %v, want fe80::1", got.Src)
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	good := AppendRecord(nil, &sampleRecords()[1])
	// Every strict prefix of a valid record is truncated.
	for n := 0; n < len(good); n++ {
		var r flow.Record
		err := DecodeRecord(good[:n], &r)
		var de *DecodeError
		if !errors.As(err, &de) || (de.Reason != ReasonTruncated && de.Reason != ReasonSymptoms) {
			t.Fatalf("prefix %d: err = %v, want truncated", n, err)
		}
		if de.Offset > n {
			t.Fatalf("prefix %d: offset %d beyond input", n, de.Offset)
		}
	}
	mod := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	tests := []struct {
		name   string
		in     []byte
		reason string
		offset int
		msg    string
	}{
		{"version", mod(func(b []byte) []byte { b[0] = 9; return b }), ReasonVersion, 0,
			"decode record: unknown version at offset 0 (version)"},
		{"addr tag", mod(func(b []byte) []byte { b[1] = 5; return b }), ReasonAddrTag, 1,
			"decode record: bad address tag at offset 1 (src)"},
		{"trailing", append(append([]byte(nil), good...), 0), ReasonTrailing, len(good),
			""},
		{"sport range", []byte{1, 0, 0, 0x80, 0x80, 0x04}, ReasonRange, 3,
			"decode record: value out of range at offset 3 (sport)"},
		{"overflow", []byte{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ReasonOverflow, 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r flow.Record
			err := DecodeRecord(tt.in, &r)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want *DecodeError", err)
			}
			if de.Reason != tt.reason || de.Offset != tt.offset {
				t.Errorf("got %q at %d, want %q at %d", de.Reason, de.Offset, tt.reason, tt.offset)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("message %q, want %q", err, tt.msg)
			}
		})
	}
}

func TestDecodeRecordHugeSymptomCount(t *testing.T) {
	r := flow.Record{}
	b := AppendRecord(nil, &r)
	// Replace the trailing "0 symptoms, domain 0, sampling 0, flow
	// sampling 0" with a symptom count of 2^32 followed by nothing useful.
	b = append(b[:len(b)-4], 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0)
	err := DecodeRecord(b, &r)
	var de *DecodeError
	if !errors.As(err, &de) || de.Reason != ReasonSymptoms {
		t.Fatalf("err = %v, want %q", err, ReasonSymptoms)
	}
}

func TestRecordCodecAllocs(t *testing.T) {
	recs := sampleRecords()
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = AppendRecord(buf[:0], &recs[1]) }); n != 0 {
		t.Errorf("AppendRecord: %v allocs, want 0", n)
	}
	var r flow.Record
	if err := DecodeRecord(buf, &r); err != nil {
		t.Fatal(err)
	}
	// Reusing r reuses its symptom capacity.
	if n := testing.AllocsPerRun(100, func() {
		if err := DecodeRecord(buf, &r); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("DecodeRecord: %v allocs, want 0", n)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range append(append(sampleRecords(), appRecords()...), scannedRecords()...) {
		f.Add(AppendRecord(nil, &r))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 6})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r flow.Record
		err := DecodeRecord(b, &r)
		checkNoNames(t, b, &r, err)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			if de.Offset < 0 || de.Offset > len(b) {
				t.Fatalf("offset %d outside input of %d bytes", de.Offset, len(b))
			}
			return
		}
		// What decodes must re-encode to something that decodes the same.
		var again flow.Record
		if err := DecodeRecord(AppendRecord(nil, &r), &again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", r, again)
		}
	})
}

func TestChunkRoundTrip(t *testing.T) {
	recs := sampleRecords()
	big := recs[1]
	for i := 0; i < 3000; i++ {
		big.Symptoms = append(big.Symptoms, flow.SymptomCount{ID: uint16(i), Count: 1})
	}
	recs = append(recs, big)
	b := appendChunkHeader(nil, len(recs))
	for i := range recs {
		b = appendChunkRecord(b, &recs[i])
	}
	var got []flow.Record
	err := ChunkRecords(b, func(rb []byte) {
		var r flow.Record
		if err := DecodeRecord(rb, &r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Errorf("chunk round trip changed the records")
	}
}

func FuzzChunkRecords(f *testing.F) {
	recs := sampleRecords()
	b := appendChunkHeader(nil, len(recs))
	for i := range recs {
		b = appendChunkRecord(b, &recs[i])
	}
	f.Add(b)
	f.Add([]byte{ChunkVersion, 0})
	f.Add([]byte{ChunkVersion, 2, 1, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var seen [][]byte
		err := ChunkRecords(b, func(rb []byte) {
			seen = append(seen, rb)
			var r flow.Record
			DecodeRecord(rb, &r) // must not panic either
		})
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(b) {
				t.Fatalf("bad error %v for %d-byte input", err, len(b))
			}
			return
		}
		// A well-formed chunk re-frames to the same bytes when its
		// lengths are minimal, and always to the same records.
		again := appendChunkHeader(nil, len(seen))
		for _, rb := range seen {
			again = binary.AppendUvarint(again, uint64(len(rb)))
			again = append(again, rb...)
		}
		var seen2 [][]byte
		if err := ChunkRecords(again, func(rb []byte) { seen2 = append(seen2, rb) }); err != nil {
			t.Fatalf("re-framed chunk: %v", err)
		}
		if !reflect.DeepEqual(seen, seen2) {
			t.Fatalf("re-framing changed the records")
		}
	})
}

// TestDecodeRecordVersion1 checks that records written before the flow
// sampling interval was added still decode.
func TestDecodeRecordVersion1(t *testing.T) {
	in := flow.Record{Packets: 7, Octets: 700, SamplingPacketInterval: 10, ObservationDomain: 3}
	b := AppendRecord(nil, &in)
	if b[len(b)-1] != 0 {
		t.Fatalf("flow sampling not last: % x", b)
	}
	b = b[:len(b)-1]
	b[0] = 1
	var out flow.Record
	if err := DecodeRecord(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Packets != 7 || out.SamplingPacketInterval != 10 || out.ObservationDomain != 3 || out.SamplingFlowInterval != 0 {
		t.Fatalf("decoded %+v", out)
	}
	in.SamplingFlowInterval = 16
	b = AppendRecord(nil, &in)
	if err := DecodeRecord(b, &out); err != nil || out.SamplingFlowInterval != 16 {
		t.Fatalf("version 2: %v %+v", err, out)
	}
}

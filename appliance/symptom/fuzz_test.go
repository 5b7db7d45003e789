package symptom

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse: the database parser and compiler never panic, and every error
// names the file.
func FuzzParse(f *testing.F) {
	f.Add([]byte(semYAML))
	f.Add(DefaultYAML())
	f.Add([]byte("symptoms:\n  - name: A\n    patterns: [\"|00\"]\n"))
	f.Add([]byte("symptoms:\n  - name: A\n    patterns:\n      - {value: \"FF\", mask: \"FF\", anchor: start}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// A database of streamed patterns only (content, literal, hex)
		// counts the same over its own text cut into packets as in one
		// piece.
		once, ok := scanOnce(db, data)
		for _, e := range db.m.ents {
			ok = ok && e.kind == KindLiteral
		}
		if !ok {
			return
		}
		for _, sizes := range [][]int{{1}, {len(data)/2 + 1}, {3, 7}} {
			if got := scanChunks(db, data, sizes); !mapsEqual(got, once) {
				t.Fatalf("sizes %v: streamed %v, one-shot %v", sizes, got, once)
			}
		}
	})
}

// FuzzScan builds a literal database from fuzzed patterns and checks that
// scanning the input in fuzzed packet sizes agrees with the whole-buffer
// oracle, and that the default database counts the same streamed as in
// one piece.
func FuzzScan(f *testing.F) {
	f.Add("abc", "b|0a|c", true, uint8(3), []byte("xxabc\nbcABC\nb\ncab"))
	f.Add("EHLO", "RCPT TO:", false, uint8(1), []byte("EHLO\nEHLO RCPT TO:"))
	f.Add("\n\n", "x", true, uint8(2), []byte("\n\n\nx\n"))
	f.Add("HTTP/", "Host:", true, uint8(5+32*7), []byte("EHLO mx.example.org\r\nMAIL FROM:<a@example.org>\r\n250 ok\r\nGET /a.mp3 HTTP/1.1\r\nContent-Type: audio/mpeg\r\n"))
	f.Fuzz(func(t *testing.T, p1, p2 string, nocase bool, step uint8, data []byte) {
		y := fmt.Sprintf("symptoms:\n  - name: A\n    patterns:\n      - {literal: %q, nocase: %v}\n      - {literal: %q, anchor: line}\n  - name: B\n    patterns:\n      - {literal: %q, offset: 2, depth: 40}\n",
			p1, nocase, p2, p1+p2)
		db, err := Parse("fuzz.yaml", []byte(y))
		if err != nil {
			return // e.g. empty pattern
		}
		want := naiveCounts(db, data)
		sizes := []int{int(step%32) + 1, int(step/32) + 1}
		if got := scanChunks(db, data, sizes); !mapsEqual(got, want) {
			t.Fatalf("patterns %q %q nocase %v sizes %v: streamed %v, whole %v", p1, p2, nocase, sizes, got, want)
		}
		// The same through FDR (which large databases take), both strides.
		fdrMinGrams = -1
		fdb, err := Parse("fuzz.yaml", []byte(y))
		fdrMinGrams = teddyMaxGrams
		if err != nil {
			t.Fatal(err)
		}
		for _, stride := range []int{1, 2} {
			if fdb.m.fdr != nil {
				fdb.m.fdr.args.stride = stride
			}
			if got := scanChunks(fdb, data, sizes); !mapsEqual(got, want) {
				t.Fatalf("FDR stride %d: patterns %q %q nocase %v sizes %v: streamed %v, whole %v", stride, p1, p2, nocase, sizes, got, want)
			}
		}
		// The default database's streamed patterns, split into packets of
		// the fuzzed sizes, count what they count on the whole stream at
		// once; the whole default database runs over the same packets.
		lit := streamedDefault(t)
		if once, ok := scanOnce(lit, data); ok {
			if got := scanChunks(lit, data, sizes); !mapsEqual(got, once) {
				t.Fatalf("default database's streamed patterns, sizes %v: streamed %v, one-shot %v", sizes, got, once)
			}
		}
		scanChunks(Default(), data, sizes)
		// A datagram scanned on its own counts what a stream start does.
		for _, d := range []*DB{db, Default()} {
			once, _ := scanOnce(d, data)
			var c Counts
			if n := d.ScanDatagram(&c, data); n != len(data) || !mapsEqual(countsMap(&c), once) {
				t.Fatalf("datagram: %d bytes, %v; stream start: %d bytes, %v", n, countsMap(&c), len(data), once)
			}
		}
	})
}

// FuzzValidate runs every format validator at every position of the input:
// none may panic or read outside it.
func FuzzValidate(f *testing.F) {
	f.Add([]byte("\xff\xfb\x90\x64ID3\x04\x00\x00\x00\x00\x1f\x76OggS\x00\x02fLaC\x00\x00\x00\x22"))
	f.Add([]byte("\x00\x00\x00\x18ftypmp42\x1a\x45\xdf\xa3\x93\x42\x82\x88matroskaRIFF\x00\x00\x00\x00AVI FLV\x01\x05\x00\x00\x00\x09"))
	// protocol headers (validate_proto.go)
	f.Add([]byte("\x30\x0e\x02\x01\x01\x04\x06public\xa0\x01\x00"))
	f.Add([]byte("\xc3\x00\x00\x00\x01\x08\x01\x02\x03\x04\x05\x06\x07\x08\x00\x00"))
	f.Add([]byte("\x00\x0e\x80\x08\x00\x01\x00\x00\x00\xa0\x12\x34\x56\x78\xd5\xd5\x00\x0c\x80\x08\x00\x02\x00\x00\x00\xa0\x12\x34\x56\x78"))
	f.Add([]byte("\x03\x00\x00\x0b\x06\xe0\x00\x00\x00\x00\x00*1\r\n$4\r\nPING\r\n<34>Oct 1 x"))
	// Invariant: a verdict depends only on the object's bytes (from its
	// start to the packet's end), not on where in the packet it starts
	// nor on what precedes it.
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, v := range validators {
			for s := 0; s < len(data); s++ {
				if got, alone := v.check(data, s), v.check(data[s:], 0); got != alone {
					t.Fatalf("%s at %d: %v in the packet, %v on its own bytes % x", name, s, got, alone, data[s:min(len(data), s+32)])
				}
			}
		}
	})
}

var (
	streamedOnce sync.Once
	streamedDB   *DB
	streamedErr  error
)

// streamedDefault returns the default database restricted to the patterns
// that are followed across packets (content, literal and hex ones;
// validators, masks and regular expressions look inside one packet only,
// doc.go), for which a streamed scan must count exactly what a one-shot
// scan counts.
func streamedDefault(t *testing.T) *DB {
	t.Helper()
	streamedOnce.Do(func() {
		var doc struct {
			Version  int              `yaml:"version"`
			Symptoms []map[string]any `yaml:"symptoms"`
		}
		if streamedErr = yaml.Unmarshal(DefaultYAML(), &doc); streamedErr != nil {
			return
		}
		kept := 0
		syms := doc.Symptoms[:0]
		for _, s := range doc.Symptoms {
			var ps []any
			for _, p := range s["patterns"].([]any) {
				m := p.(map[string]any)
				_, v := m["validate"]
				_, r := m["regex"]
				_, k := m["mask"]
				if !v && !r && !k {
					ps = append(ps, p)
				}
			}
			if len(ps) > 0 { // a symptom found only by validators goes
				s["patterns"] = ps
				syms = append(syms, s)
				kept += len(ps)
			}
		}
		doc.Symptoms = syms
		if kept < 50 {
			streamedErr = fmt.Errorf("only %d streamed patterns in the default database", kept)
			return
		}
		var b []byte
		if b, streamedErr = yaml.Marshal(doc); streamedErr != nil {
			return
		}
		streamedDB, streamedErr = Parse("default-streamed.yaml", b)
	})
	if streamedErr != nil {
		t.Fatal(streamedErr)
	}
	return streamedDB
}

// scanOnce scans data as one packet; ok is false when more than the
// symptoms one Counts holds occurred (then the counts are incomplete).
func scanOnce(db *DB, data []byte) (map[uint16]uint64, bool) {
	var st State
	var c Counts
	db.Scan(&st, &c, data, 0)
	return countsMap(&c), c.Overflow == 0
}

// unpinned returns a copy of db whose pinned entries are tried position
// by position like the other anchored ones (the matcher before pinning).
func unpinned(db *DB) *DB {
	m := *db.m
	m.anchored = nil
	m.pinned = nil
	for i := range m.ents {
		if e := &m.ents[i]; e.hi != ^uint64(0) && e.hi-e.lo <= maxAnchoredSpan {
			m.anchored = append(m.anchored, uint32(i))
		}
	}
	c := *db
	c.m = &m
	return &c
}

// FuzzPinned checks that looking pinned entries up by trigger byte counts
// what trying every anchored entry at its window counts, for the default
// database, at the start of a direction and at small stream offsets.
func FuzzPinned(f *testing.F) {
	f.Add([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), uint8(0))
	f.Add([]byte("\xe3\x38\x00\x00\x00\x01\x10GND\x00"), uint8(3))
	f.Add([]byte("\x30\x0e\x02\x01\x01\x04\x06public\xa0\x01\x00"), uint8(0))
	f.Add([]byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www"), uint8(2))
	f.Add([]byte("\x00\x00\x00\x08\x04\xd2\x16\x2f"), uint8(0))
	def := Default()
	if len(def.m.pinned) == 0 {
		f.Fatal("the default database pins no entry")
	}
	ref := unpinned(def)
	f.Fuzz(func(t *testing.T, data []byte, off uint8) {
		var s1, s2 State
		var c1, c2 Counts
		o := uint64(off % 50)
		def.Scan(&s1, &c1, data, o)
		ref.Scan(&s2, &c2, data, o)
		if got, want := countsMap(&c1), countsMap(&c2); !mapsEqual(got, want) {
			t.Fatalf("offset %d % x: pinned %v, unpinned %v", o, data, got, want)
		}
	})
}

// FuzzTLSAppDataAt: the record walk never panics, and what it returns is
// -1 or the header of an application-data record reached by whole TLS
// records from the start.
func FuzzTLSAppDataAt(f *testing.F) {
	f.Add([]byte("\x16\x03\x03\x00\x02hi\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00\x10"))
	f.Add([]byte("\x16\x03\x01\xff\xff"))
	f.Add([]byte("\x17\x03\x03\x00\x00"))
	db, err := Parse("tls.yaml", []byte("version: 1\ntls_bypass: T\nsymptoms:\n  - name: T\n    description: t\n    patterns:\n      - {content: \"|16 03|\", anchor: start}\n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		k := db.TLSAppDataAt(p)
		if k == -1 {
			return
		}
		if k < 0 || k+5 > len(p) || p[k] != 23 || p[k+1] != 3 || p[k+2] > 4 {
			t.Fatalf("offset %d in %x is no application-data header", k, p)
		}
		for i := 0; i < k; {
			if p[i] < 20 || p[i] > 22 {
				t.Fatalf("offset %d: record type %d before the application data at %d", i, p[i], k)
			}
			i += 5 + (int(p[i+3])<<8 | int(p[i+4]))
			if i > k {
				t.Fatalf("a record runs past the application data at %d", k)
			}
		}
	})
}

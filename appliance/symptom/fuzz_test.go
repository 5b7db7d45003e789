package symptom

import (
	"fmt"
	"strings"
	"testing"
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
		var st State
		var c Counts
		db.Scan(&st, &c, data, 0)
	})
}

// FuzzScan builds a literal database from fuzzed patterns and checks that
// scanning the input in fuzzed packet sizes agrees with the whole-buffer
// oracle; with the default database it checks only that nothing panics.
func FuzzScan(f *testing.F) {
	f.Add("abc", "b|0a|c", true, uint8(3), []byte("xxabc\nbcABC\nb\ncab"))
	f.Add("EHLO", "RCPT TO:", false, uint8(1), []byte("EHLO\nEHLO RCPT TO:"))
	f.Add("\n\n", "x", true, uint8(2), []byte("\n\n\nx\n"))
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
		var st State
		var c Counts
		for off := 0; off < len(data); off += sizes[0] {
			Default().Scan(&st, &c, data[off:min(off+sizes[0], len(data))], uint64(off))
		}
	})
}

// FuzzValidate runs every format validator at every position of the input:
// none may panic or read outside it.
func FuzzValidate(f *testing.F) {
	f.Add([]byte("\xff\xfb\x90\x64ID3\x04\x00\x00\x00\x00\x1f\x76OggS\x00\x02fLaC\x00\x00\x00\x22"))
	f.Add([]byte("\x00\x00\x00\x18ftypmp42\x1a\x45\xdf\xa3\x93\x42\x82\x88matroskaRIFF\x00\x00\x00\x00AVI FLV\x01\x05\x00\x00\x00\x09"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range validators {
			for s := 0; s < len(data); s++ {
				v.check(data, s)
			}
		}
	})
}

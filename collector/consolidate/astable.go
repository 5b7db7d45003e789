package consolidate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gaissmai/bart"
)

// ASTable maps addresses to their origin AS by longest-prefix match.
type ASTable struct {
	t bart.Table[uint32]
	// Errors counts skipped lines by reason.
	Errors map[string]int
	// First is the first skipped line (nil: none).
	First *ASError
}

// Skipped says how many lines ParseAS skipped and the first of them,
// nil when it read every line: a mistyped prefix would otherwise go
// unnoticed, its traffic counted as AS 0.
func (t *ASTable) Skipped() error {
	if t == nil || t.First == nil {
		return nil
	}
	n := 0
	for _, c := range t.Errors {
		n += c
	}
	return fmt.Errorf("%d line(s) skipped, the first: %w", n, t.First)
}

// ASError describes a line of an AS table that could not be read.
type ASError struct {
	Input  string
	Line   int
	Offset int64 // byte offset of the line in the input
	Reason string
}

func (e *ASError) Error() string {
	return fmt.Sprintf("as table %s: line %d (offset %d): %s", e.Input, e.Line, e.Offset, e.Reason)
}

// Skip reasons of AS table lines.
const (
	ASReasonPrefix = "bad prefix"
	ASReasonASN    = "bad as number"
	ASReasonFields = "too few fields"
	ASReasonLong   = "line too long"
)

// Lookup returns the origin AS of a, 0 when no prefix covers it.
func (t *ASTable) Lookup(a netip.Addr) uint32 {
	if t == nil {
		return 0
	}
	v, _ := t.t.Lookup(a.Unmap())
	return v
}

// Len returns the number of prefixes.
func (t *ASTable) Len() int { return t.t.Size() }

func parseASN(s string) (uint32, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "AS"), "as")
	if a, b, ok := strings.Cut(s, "."); ok {
		// asdot notation: high.low
		h, err1 := strconv.ParseUint(a, 10, 16)
		l, err2 := strconv.ParseUint(b, 10, 16)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		return uint32(h<<16 | l), true
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

func parsePrefix(s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, false
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// ParseAS reads an AS table and guesses its format from its first data
// line: `bgpdump -m` output (fields separated by "|", prefix in field 6,
// AS path in field 7, origin AS its last element) or CSV lines
// "prefix,asn" (an optional header line, "#" comments, "AS" prefixes
// and asdot numbers accepted). Malformed lines are skipped and counted
// in ASTable.Errors; the first of them is returned as an *ASError along
// with the table when no line at all could be read.
func ParseAS(r io.Reader, input string) (*ASTable, error) {
	t := &ASTable{Errors: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	var first error
	fail := func(line int, off int64, reason string) {
		t.Errors[reason]++
		if first == nil {
			t.First = &ASError{Input: input, Line: line, Offset: off, Reason: reason}
			first = t.First
		}
	}
	line := 0
	var off int64
	good := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		at := off
		off += int64(len(b)) + 1
		s := strings.TrimSpace(string(b))
		if s == "" || s[0] == '#' {
			continue
		}
		var pfx netip.Prefix
		var asn uint32
		if strings.Contains(s, "|") {
			f := strings.Split(s, "|")
			if len(f) < 7 {
				fail(line, at, ASReasonFields)
				continue
			}
			p, ok := parsePrefix(f[5])
			if !ok {
				fail(line, at, ASReasonPrefix)
				continue
			}
			path := strings.Fields(f[6])
			if len(path) == 0 {
				fail(line, at, ASReasonASN)
				continue
			}
			o := path[len(path)-1]
			// An AS set {a,b} as origin: take its first member.
			o = strings.Trim(o, "{}")
			o, _, _ = strings.Cut(o, ",")
			a, ok := parseASN(o)
			if !ok {
				fail(line, at, ASReasonASN)
				continue
			}
			pfx, asn = p, a
		} else {
			f := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == '\t' || r == ' ' })
			if len(f) < 2 {
				fail(line, at, ASReasonFields)
				continue
			}
			p, ok := parsePrefix(f[0])
			if !ok {
				if good == 0 && line == 1 {
					continue // a header line
				}
				fail(line, at, ASReasonPrefix)
				continue
			}
			a, ok := parseASN(f[1])
			if !ok {
				fail(line, at, ASReasonASN)
				continue
			}
			pfx, asn = p, a
		}
		// The first origin seen for a prefix wins (a RIB dump lists one
		// route per peer).
		if _, ok := t.t.Get(pfx); !ok {
			t.t.Insert(pfx, asn)
		}
		good++
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			fail(line+1, off, ASReasonLong)
			return t, first
		}
		return t, fmt.Errorf("as table %s: %w", input, err)
	}
	if good == 0 && first != nil {
		return t, first
	}
	return t, nil
}

// ParseASBytes is ParseAS over a byte slice.
func ParseASBytes(b []byte, input string) (*ASTable, error) {
	return ParseAS(bytes.NewReader(b), input)
}

package symptom

import (
	"errors"
	"fmt"
	"math/bits"
	"regexp"
	"regexp/syntax"
)

// entry is one compiled pattern alternative. The trigger is a literal
// (folded when nocase) found by the prefilter and, for plain literals, by
// the boundary automata; toff is where the trigger sits in the pattern.
type entry struct {
	trig   []byte
	toff   int
	length int // bytes the whole pattern covers from its start
	sym    uint16
	kind   Kind
	nocase bool
	bol    bool
	lo, hi uint64 // the pattern must lie within [lo, hi) of the stream
	value  []byte // KindMask
	mask   []byte
	check  validator // KindValidate
	sync   companion // KindValidate: a byte every match has (see shortCompanion)
	re     *regexp.Regexp
}

const (
	maxPatternLen   = 4096
	maxMaskVariants = 64
	maxNoCaseGrams  = 16
)

// Compile builds a database from a parsed spec.
func Compile(spec *Spec) (*DB, error) {
	db := &DB{limit: spec.ScanLimit, file: spec.File}
	var ents []entry
	for si, s := range spec.Symptoms {
		db.symptoms = append(db.symptoms, Symptom{ID: uint16(si + 1), Name: s.Name, Description: s.Description})
		for pi := range s.Patterns {
			p := &s.Patterns[pi]
			es, err := compilePattern(p, uint16(si+1))
			if err != nil {
				e := specErr(spec.File, p.Line, s.Name, pi+1, p.Text, "%v", err)
				e.Key = p.Key
				return nil, e
			}
			ents = append(ents, es...)
			db.patterns++
		}
	}
	if spec.TLSBypass != "" {
		for _, sy := range db.symptoms {
			if sy.Name == spec.TLSBypass {
				db.tlsID = sy.ID
			}
		}
		if db.tlsID == 0 {
			return nil, specErr(spec.File, spec.TLSBypassLine, "", 0, "", "tls_bypass: no symptom %q", spec.TLSBypass)
		}
	}
	m, err := newMatcher(ents)
	if err != nil {
		return nil, &Error{File: spec.File, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	db.m = m
	return db, nil
}

func compilePattern(p *PatternSpec, sym uint16) ([]entry, error) {
	base := entry{sym: sym, kind: p.Kind, nocase: p.NoCase, bol: p.Anchor == AnchorLine}
	base.lo = p.Offset
	base.hi = ^uint64(0)
	if p.Depth > 0 {
		base.hi = p.Offset + p.Depth
		if base.hi < p.Offset {
			return nil, errors.New("offset+depth overflows")
		}
	}
	if p.Anchor == AnchorStart {
		if p.Offset != 0 {
			return nil, errors.New("anchor start with a non-zero offset")
		}
		base.lo = 0
	}
	switch p.Kind {
	case KindLiteral:
		if len(p.Bytes) > maxPatternLen {
			return nil, fmt.Errorf("pattern longer than %d bytes", maxPatternLen)
		}
		e := base
		e.trig = p.Bytes
		if p.NoCase {
			e.trig = foldBytes(p.Bytes)
		}
		e.length = len(p.Bytes)
		if err := e.fixStart(p.Anchor); err != nil {
			return nil, err
		}
		return []entry{e}, nil
	case KindMask:
		if len(p.Bytes) > maxPatternLen {
			return nil, fmt.Errorf("pattern longer than %d bytes", maxPatternLen)
		}
		off, trigs, err := maskTriggers(p.Bytes, p.Mask)
		if err != nil {
			return nil, err
		}
		var out []entry
		for _, t := range trigs {
			e := base
			e.trig, e.toff = t, off
			e.length = len(p.Bytes)
			e.value, e.mask = p.Bytes, p.Mask
			if err := e.fixStart(p.Anchor); err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	case KindValidate:
		v, ok := validators[p.Validate]
		if !ok {
			return nil, fmt.Errorf("unknown validator %q (known: %s)", p.Validate, validatorNames())
		}
		if p.NoCase {
			return nil, errors.New("nocase does not apply to validate")
		}
		var out []entry
		for _, t := range v.triggers {
			e := base
			e.trig, e.toff = t.bytes, t.off
			e.length = v.minLen
			e.check = v.check
			e.sync = v.sync
			if err := e.fixStart(p.Anchor); err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	case KindRegex:
		expr := p.Regex
		if p.NoCase {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(`^(?:` + expr + `)`)
		if err != nil {
			return nil, fmt.Errorf("regex: %v", err)
		}
		prefix, fold, err := regexPrefix(expr)
		if err != nil {
			return nil, err
		}
		e := base
		e.trig = prefix
		if fold {
			e.trig = foldBytes(prefix)
			e.nocase = true
		}
		e.length = len(prefix)
		e.re = re
		if err := e.fixStart(p.Anchor); err != nil {
			return nil, err
		}
		return []entry{e}, nil
	}
	return nil, fmt.Errorf("unknown pattern kind %d", p.Kind)
}

// fixStart narrows the window of a start-anchored pattern.
func (e *entry) fixStart(a Anchor) error {
	if a == AnchorStart {
		e.lo = 0
		end := uint64(e.length)
		if end < e.hi {
			e.hi = end
		}
	}
	if e.hi != ^uint64(0) && e.hi < e.lo+uint64(e.length) {
		return fmt.Errorf("window [%d,%d) is shorter than the pattern (%d bytes)", e.lo, e.hi, e.length)
	}
	return nil
}

// regexPrefix finds the literal every match must begin with. Case-folded
// prefixes are returned folded; the caller marks the entry nocase.
func regexPrefix(expr string) ([]byte, bool, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, false, fmt.Errorf("regex: %v", err)
	}
	re = re.Simplify()
	var lit []rune
	for re.Op == syntax.OpConcat && len(re.Sub) > 0 {
		re = re.Sub[0]
	}
	fold := false
	if re.Op == syntax.OpLiteral {
		lit = re.Rune
		fold = re.Flags&syntax.FoldCase != 0
	}
	var b []byte
	for _, r := range lit {
		if r >= 0x80 {
			break
		}
		b = append(b, byte(r))
	}
	if len(b) < 2 {
		return nil, false, fmt.Errorf("regex %q has no literal prefix of at least 2 bytes for the prefilter", expr)
	}
	if len(b) > maxPatternLen {
		b = b[:maxPatternLen]
	}
	return b, fold, nil
}

// maskTriggers picks the run of masked bytes with at most maxMaskVariants
// expansions that is longest (fully masked bytes first), and expands it.
func maskTriggers(value, mask []byte) (int, [][]byte, error) {
	bestOff, bestLen, bestFree := -1, 0, 0
	for i := range mask {
		free := 0
		for j := i; j < len(mask); j++ {
			if mask[j] == 0 {
				break
			}
			free += 8 - bits.OnesCount8(mask[j])
			if free > 6 { // 2^6 = maxMaskVariants
				break
			}
			l := j - i + 1
			if l > 4 && bestLen >= 4 {
				break
			}
			if l > bestLen || (l == bestLen && free < bestFree) {
				bestOff, bestLen, bestFree = i, l, free
			}
		}
	}
	if bestOff < 0 || (bestLen < 2 && bestFree > 0) {
		return 0, nil, errors.New("mask has no byte run selective enough to trigger on; use a validator")
	}
	trigs := [][]byte{nil}
	for j := bestOff; j < bestOff+bestLen; j++ {
		v, m := value[j]&mask[j], mask[j]
		var next [][]byte
		for _, t := range trigs {
			for x := 0; x < 256; x++ {
				if byte(x)&m == v {
					nt := append(append([]byte(nil), t...), byte(x))
					next = append(next, nt)
				}
			}
		}
		trigs = next
	}
	return bestOff, trigs, nil
}

func foldBytes(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = foldByte(c)
	}
	return out
}

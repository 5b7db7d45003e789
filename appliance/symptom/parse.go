package symptom

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mira-project/mira/internal/yamlnode"
)

// Error is a database error. It names the file, the line, the key path
// (symptoms[2].patterns[0].hex), the symptom and the pattern (1-based
// index and its text) where these are known.
type Error struct {
	File    string
	Line    int
	Key     string
	Symptom string
	Pattern int    // 1-based index within the symptom, 0 if none
	Text    string // the pattern's text as written, if any
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": key %q", e.Key)
	}
	if e.Symptom != "" {
		fmt.Fprintf(&b, ": symptom %q", e.Symptom)
	}
	if e.Pattern > 0 {
		fmt.Fprintf(&b, ": pattern %d", e.Pattern)
		if e.Text != "" {
			fmt.Fprintf(&b, " (%q)", e.Text)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrSyntax is wrapped by every parse and compile error.
var ErrSyntax = errors.New("invalid symptom database")

// Anchor restricts where a pattern may start.
type Anchor uint8

// Anchors.
const (
	AnchorNone  Anchor = iota
	AnchorStart        // at offset 0 of the flow direction's payload
	AnchorLine         // at offset 0 or right after a "\n"
)

// Kind is a pattern kind.
type Kind uint8

// Pattern kinds.
const (
	KindLiteral  Kind = iota // content, literal and hex
	KindMask                 // value/mask
	KindValidate             // a named format validator
	KindRegex                // a regular expression behind its literal prefix
)

// PatternSpec is one pattern as written in the database.
type PatternSpec struct {
	Kind     Kind
	Text     string // as written (for messages)
	Bytes    []byte // literal bytes, or the value of a mask pattern
	Mask     []byte // mask, same length as Bytes (KindMask)
	Validate string // validator name (KindValidate)
	Regex    string // expression (KindRegex)
	NoCase   bool
	Anchor   Anchor
	Offset   uint64
	Depth    uint64 // 0: unbounded
	Line     int
	Key      string // key path in the file: symptoms[0].patterns[1]
}

// SymptomSpec is one symptom as written in the database.
type SymptomSpec struct {
	Name        string
	Description string
	Patterns    []PatternSpec
	Line        int
}

// Spec is a whole database as written.
type Spec struct {
	File      string
	ScanLimit uint64 // bytes per flow direction; 0: unlimited
	// TLSBypass names the symptom that marks a TLS handshake (see
	// DB.Encrypted); "" turns the bypass off. TLSBypassLine is its line.
	TLSBypass     string
	TLSBypassLine int
	Symptoms      []SymptomSpec
}

func specErr(file string, line int, sym string, pat int, text string, format string, args ...any) *Error {
	return &Error{File: file, Line: line, Symptom: sym, Pattern: pat, Text: text,
		Err: fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, args...)...)}
}

// nodeErr is specErr at a node of the file: its line and key path.
func nodeErr(n yamlnode.Node, sym string, pat int, text string, format string, args ...any) *Error {
	e := specErr(n.File, 0, sym, pat, text, format, args...)
	if n.Node != nil {
		e.Line = n.Line
	}
	e.Key = n.Path
	return e
}

// ParseSpec reads a database's YAML into a Spec without compiling it.
// Unknown keys are errors.
func ParseSpec(name string, data []byte) (*Spec, error) {
	root, err := yamlnode.Parse(name, data)
	if err != nil {
		var ye *yamlnode.Error
		if !errors.As(err, &ye) {
			return nil, &Error{File: name, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
		}
		return nil, &Error{File: name, Line: ye.Line, Err: fmt.Errorf("%w: %v", ErrSyntax, ye.Err)}
	}
	spec := &Spec{File: name}
	if root.Node == nil {
		return nil, nodeErr(root, "", 0, "", "empty document")
	}
	if root.Kind != yaml.MappingNode {
		return nil, nodeErr(root, "", 0, "", "top level must be a mapping")
	}
	seen := map[string]bool{}
	err = root.Map(func(key string, k, v yamlnode.Node) error {
		switch key {
		case "version":
			if v.Value != "1" {
				return nodeErr(v, "", 0, "", "unsupported version %q", v.Value)
			}
		case "scan_limit":
			n, err := strconv.ParseUint(v.Value, 10, 64)
			if err != nil || v.Kind != yaml.ScalarNode {
				return nodeErr(v, "", 0, "", "scan_limit: want a byte count, got %q", v.Value)
			}
			spec.ScanLimit = n
		case "tls_bypass":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return nodeErr(v, "", 0, "", "tls_bypass: want a symptom name, got %q", v.Value)
			}
			spec.TLSBypass, spec.TLSBypassLine = v.Value, v.Line
		case "symptoms":
			if v.Kind != yaml.SequenceNode {
				return nodeErr(v, "", 0, "", "symptoms must be a list")
			}
			return v.Seq(func(_ int, sn yamlnode.Node) error {
				s, err := parseSymptom(sn)
				if err != nil {
					return err
				}
				if seen[s.Name] {
					return nodeErr(sn, s.Name, 0, "", "duplicate symptom name")
				}
				seen[s.Name] = true
				spec.Symptoms = append(spec.Symptoms, *s)
				return nil
			})
		default:
			return nodeErr(k, "", 0, "", "unknown key %q", key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(spec.Symptoms) == 0 {
		return nil, nodeErr(root, "", 0, "", "no symptoms")
	}
	if len(spec.Symptoms) > 65535 {
		return nil, nodeErr(root, "", 0, "", "too many symptoms (%d)", len(spec.Symptoms))
	}
	return spec, nil
}

func parseSymptom(n yamlnode.Node) (*SymptomSpec, error) {
	if n.Kind != yaml.MappingNode {
		return nil, nodeErr(n, "", 0, "", "a symptom must be a mapping")
	}
	s := &SymptomSpec{Line: n.Line}
	var pats yamlnode.Node
	err := n.Map(func(key string, k, v yamlnode.Node) error {
		switch key {
		case "name":
			s.Name = v.Value
		case "description":
			s.Description = v.Value
		case "patterns":
			pats = v
		default:
			return nodeErr(k, s.Name, 0, "", "unknown key %q", key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s.Name == "" {
		return nil, nodeErr(n, "", 0, "", "symptom without a name")
	}
	if pats.Node == nil || pats.Kind != yaml.SequenceNode || len(pats.Content) == 0 {
		at := pats
		if at.Node == nil {
			at = n
		}
		return nil, nodeErr(at, s.Name, 0, "", "symptom needs a non-empty patterns list")
	}
	err = pats.Seq(func(i int, pn yamlnode.Node) error {
		p, err := parsePattern(s.Name, i+1, pn)
		if err != nil {
			return err
		}
		s.Patterns = append(s.Patterns, *p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func parsePattern(sym string, idx int, n yamlnode.Node) (*PatternSpec, error) {
	p := &PatternSpec{Line: n.Line, Key: n.Path}
	if n.Kind == yaml.ScalarNode { // shorthand: a bare string is content
		p.Text = n.Value
		b, err := ParseContent(n.Value)
		if err != nil {
			return nil, nodeErr(n, sym, idx, n.Value, "%v", err)
		}
		p.Bytes = b
		return p, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, nodeErr(n, sym, idx, "", "a pattern must be a string or a mapping")
	}
	kinds := 0
	var maskText string
	hasMask := false
	fail := func(at yamlnode.Node, format string, args ...any) error {
		return nodeErr(at, sym, idx, p.Text, format, args...)
	}
	// First pass: the text, so later errors can quote it.
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch n.Content[i].Value {
		case "content", "literal", "hex", "value", "validate", "regex":
			p.Text = n.Content[i+1].Value
		}
	}
	err := n.Map(func(key string, k, v yamlnode.Node) error {
		if v.Kind != yaml.ScalarNode {
			return fail(v, "%s: want a scalar", key)
		}
		var err error
		switch key {
		case "content":
			kinds++
			p.Kind = KindLiteral
			p.Bytes, err = ParseContent(v.Value)
		case "literal":
			kinds++
			p.Kind = KindLiteral
			p.Bytes = []byte(v.Value)
		case "hex":
			kinds++
			p.Kind = KindLiteral
			p.Bytes, err = parseHex(v.Value)
		case "value":
			kinds++
			p.Kind = KindMask
			p.Bytes, err = parseHex(v.Value)
		case "mask":
			hasMask = true
			maskText = v.Value
		case "validate":
			kinds++
			p.Kind = KindValidate
			p.Validate = v.Value
		case "regex":
			kinds++
			p.Kind = KindRegex
			p.Regex = v.Value
		case "nocase":
			p.NoCase, err = strconv.ParseBool(v.Value)
		case "anchor":
			switch v.Value {
			case "start":
				p.Anchor = AnchorStart
			case "line":
				p.Anchor = AnchorLine
			case "none", "":
				p.Anchor = AnchorNone
			default:
				err = fmt.Errorf("anchor: want start, line or none, got %q", v.Value)
			}
		case "offset":
			p.Offset, err = strconv.ParseUint(v.Value, 0, 64)
		case "depth":
			p.Depth, err = strconv.ParseUint(v.Value, 0, 64)
			if err == nil && p.Depth == 0 {
				err = errors.New("depth must be positive")
			}
		default:
			return fail(k, "unknown key %q", key)
		}
		if err != nil {
			return fail(v, "%s: %v", key, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if kinds != 1 {
		return nil, fail(n, "want exactly one of content, literal, hex, value, validate, regex (got %d)", kinds)
	}
	if hasMask != (p.Kind == KindMask) {
		return nil, fail(n, "mask goes with value, and value needs a mask")
	}
	if p.Kind == KindMask {
		m, err := parseHex(maskText)
		if err != nil {
			return nil, fail(n, "mask: %v", err)
		}
		if len(m) != len(p.Bytes) {
			return nil, fail(n, "value has %d bytes but mask has %d", len(p.Bytes), len(m))
		}
		if p.NoCase {
			return nil, fail(n, "nocase does not apply to value/mask")
		}
		p.Mask = m
	}
	return p, nil
}

// ParseContent parses Snort-style content: text with |hex| parts. A
// backslash escapes the next character ("\|", "\\", "\"").
func ParseContent(s string) ([]byte, error) {
	var out []byte
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("content %q: dangling backslash at offset %d", s, i)
			}
			out = append(out, s[i+1])
			i += 2
		case '|':
			j := strings.IndexByte(s[i+1:], '|')
			if j < 0 {
				return nil, fmt.Errorf("content %q: unterminated hex part at offset %d", s, i)
			}
			b, err := parseHex(s[i+1 : i+1+j])
			if err != nil {
				return nil, fmt.Errorf("content %q: at offset %d: %v", s, i+1, err)
			}
			out = append(out, b...)
			i += j + 2
		default:
			out = append(out, c)
			i++
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("content %q: empty", s)
	}
	return out, nil
}

func parseHex(s string) ([]byte, error) {
	s = strings.Trim(s, "|")
	var out []byte
	digits := 0
	var cur byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		var v byte
		switch {
		case c == ' ' || c == '\t':
			if digits == 1 {
				return nil, fmt.Errorf("hex %q: odd digit before offset %d", s, i)
			}
			continue
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return nil, fmt.Errorf("hex %q: bad character %q at offset %d", s, c, i)
		}
		cur = cur<<4 | v
		digits++
		if digits == 2 {
			out = append(out, cur)
			digits, cur = 0, 0
		}
	}
	if digits != 0 {
		return nil, fmt.Errorf("hex %q: odd number of digits", s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("hex %q: empty", s)
	}
	return out, nil
}

// quoteBytes formats a byte string in content syntax (for messages).
func quoteBytes(b []byte) string {
	var buf bytes.Buffer
	inHex := false
	for _, c := range b {
		printable := c >= 0x20 && c < 0x7f && c != '|' && c != '\\' && c != '"'
		if printable {
			if inHex {
				buf.WriteByte('|')
				inHex = false
			}
			buf.WriteByte(c)
			continue
		}
		if !inHex {
			buf.WriteByte('|')
			inHex = true
		} else {
			buf.WriteByte(' ')
		}
		fmt.Fprintf(&buf, "%02X", c)
	}
	if inHex {
		buf.WriteByte('|')
	}
	return buf.String()
}

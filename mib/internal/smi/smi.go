// Package smi parses the subset of SMIv2 that MIRA-PROBE-MIB uses and
// generates Go source for its OIDs. It is not a general MIB compiler: it
// resolves OIDs only against nodes defined in the same module plus a few
// well-known roots, which is all the probe's own module needs.
package smi

import (
	"bytes"
	"fmt"
	"go/format"
	"sort"
	"strconv"
	"strings"
)

// Kind says what sort of node a definition is.
type Kind string

// Node kinds.
const (
	KindNode         Kind = "node"         // OBJECT IDENTIFIER or MODULE-IDENTITY
	KindScalar       Kind = "scalar"       // OBJECT-TYPE outside a table
	KindTable        Kind = "table"        // SEQUENCE OF
	KindEntry        Kind = "entry"        // row object with INDEX
	KindColumn       Kind = "column"       // OBJECT-TYPE under an entry
	KindNotification Kind = "notification" // NOTIFICATION-TYPE
	KindGroup        Kind = "group"        // OBJECT-GROUP, NOTIFICATION-GROUP
	KindCompliance   Kind = "compliance"   // MODULE-COMPLIANCE
)

// Enum is one named number of an INTEGER enumeration.
type Enum struct {
	Name  string
	Value int
}

// Def is one definition of the module.
type Def struct {
	Name    string
	Macro   string // OBJECT IDENTIFIER, OBJECT-TYPE, ...
	Parent  string
	Sub     uint32
	OID     []uint32
	Kind    Kind
	Syntax  string // OBJECT-TYPE SYNTAX type name (first word; SEQUENCE OF gives "SEQUENCE")
	Access  string
	Index   []string
	Objects []string // NOTIFICATION-TYPE / OBJECT-GROUP members
	Enums   []Enum
	Line    int
}

// Module is a parsed MIB module.
type Module struct {
	Name    string
	Imports []string // the modules named in IMPORTS (FROM ...), in order
	Defs    []*Def   // in OID order
}

// SyntaxError describes where a module failed to parse.
type SyntaxError struct {
	File   string
	Line   int
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("smi: %s:%d (offset %d): %s", e.File, e.Line, e.Offset, e.Msg)
}

type token struct {
	s      string
	line   int
	offset int
	quoted bool
}

func tokenize(file string, src []byte) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f':
			i++
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			// Comment to end of line (or to the next "--").
			j := i + 2
			for j < len(src) && src[j] != '\n' {
				if src[j] == '-' && j+1 < len(src) && src[j+1] == '-' {
					j += 2
					break
				}
				j++
			}
			i = j
		case c == '"':
			j := i + 1
			startLine := line
			for j < len(src) && src[j] != '"' {
				if src[j] == '\n' {
					line++
				}
				j++
			}
			if j >= len(src) {
				return nil, &SyntaxError{File: file, Line: startLine, Offset: i, Msg: "unterminated string"}
			}
			toks = append(toks, token{s: string(src[i+1 : j]), line: startLine, offset: i, quoted: true})
			i = j + 1
		case c == ':' && i+2 < len(src) && src[i+1] == ':' && src[i+2] == '=':
			toks = append(toks, token{s: "::=", line: line, offset: i})
			i += 3
		case c == '.' && i+1 < len(src) && src[i+1] == '.':
			toks = append(toks, token{s: "..", line: line, offset: i})
			i += 2
		case strings.IndexByte("{}(),;|", c) >= 0:
			toks = append(toks, token{s: string(c), line: line, offset: i})
			i++
		case isWordByte(c):
			j := i
			for j < len(src) && isWordByte(src[j]) {
				if src[j] == '-' && j+1 < len(src) && src[j+1] == '-' {
					break
				}
				j++
			}
			toks = append(toks, token{s: string(src[i:j]), line: line, offset: i})
			i = j
		default:
			return nil, &SyntaxError{File: file, Line: line, Offset: i, Msg: fmt.Sprintf("unexpected byte %q", c)}
		}
	}
	return toks, nil
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// roots are the OIDs the module may hang its definitions from.
var roots = map[string][]uint32{
	"enterprises": {1, 3, 6, 1, 4, 1},
	"mib-2":       {1, 3, 6, 1, 2, 1},
}

var macros = map[string]bool{
	"MODULE-IDENTITY": true, "OBJECT-TYPE": true, "NOTIFICATION-TYPE": true,
	"OBJECT-GROUP": true, "NOTIFICATION-GROUP": true, "MODULE-COMPLIANCE": true,
	"OBJECT-IDENTITY": true,
}

// Parse parses a module. file names the input in errors.
func Parse(file string, src []byte) (*Module, error) {
	toks, err := tokenize(file, src)
	if err != nil {
		return nil, err
	}
	p := &parser{file: file, toks: toks}
	return p.module()
}

type parser struct {
	file string
	toks []token
	pos  int
}

func (p *parser) errf(format string, args ...any) error {
	t := token{line: 0, offset: -1}
	if p.pos < len(p.toks) {
		t = p.toks[p.pos]
	} else if len(p.toks) > 0 {
		t = p.toks[len(p.toks)-1]
	}
	return &SyntaxError{File: p.file, Line: t.line, Offset: t.offset, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) peek(k int) string {
	if p.pos+k < len(p.toks) {
		return p.toks[p.pos+k].s
	}
	return ""
}

func (p *parser) next() (token, bool) {
	if p.pos >= len(p.toks) {
		return token{}, false
	}
	t := p.toks[p.pos]
	p.pos++
	return t, true
}

func (p *parser) expect(s string) error {
	t, ok := p.next()
	if !ok {
		return p.errf("unexpected end of input, want %q", s)
	}
	if t.s != s || t.quoted {
		p.pos--
		return p.errf("got %q, want %q", t.s, s)
	}
	return nil
}

func (p *parser) module() (*Module, error) {
	name, ok := p.next()
	if !ok {
		return nil, p.errf("empty module")
	}
	m := &Module{Name: name.s}
	for _, w := range []string{"DEFINITIONS", "::=", "BEGIN"} {
		if err := p.expect(w); err != nil {
			return nil, err
		}
	}
	if p.peek(0) == "IMPORTS" {
		for p.pos < len(p.toks) && p.toks[p.pos].s != ";" {
			if p.toks[p.pos].s == "FROM" && p.pos+1 < len(p.toks) {
				m.Imports = append(m.Imports, p.toks[p.pos+1].s)
			}
			p.pos++
		}
		if err := p.expect(";"); err != nil {
			return nil, err
		}
	}
	byName := map[string]*Def{}
	for {
		t, ok := p.next()
		if !ok {
			return nil, p.errf("missing END")
		}
		if t.s == "END" {
			break
		}
		if t.quoted {
			return nil, p.errf("unexpected string")
		}
		var d *Def
		var err error
		switch {
		case p.peek(0) == "OBJECT" && p.peek(1) == "IDENTIFIER":
			p.pos += 2
			d = &Def{Name: t.s, Macro: "OBJECT IDENTIFIER", Kind: KindNode, Line: t.line}
			err = p.assignment(d)
		case macros[p.peek(0)]:
			mt, _ := p.next()
			d = &Def{Name: t.s, Macro: mt.s, Line: t.line}
			err = p.macroBody(d)
		case p.peek(0) == "::=":
			// Type assignment (SEQUENCE or TEXTUAL-CONVENTION): skip to the
			// closing brace or the end of the clause.
			err = p.skipType()
		default:
			p.pos--
			return nil, p.errf("unexpected %q", t.s)
		}
		if err != nil {
			return nil, err
		}
		if d != nil {
			if _, dup := byName[d.Name]; dup {
				return nil, &SyntaxError{File: p.file, Line: d.Line, Offset: t.offset, Msg: "duplicate definition of " + d.Name}
			}
			byName[d.Name] = d
			m.Defs = append(m.Defs, d)
		}
	}
	if err := resolve(p.file, m, byName); err != nil {
		return nil, err
	}
	return m, nil
}

func (p *parser) skipType() error {
	p.pos++ // ::=
	depth := 0
	for {
		t, ok := p.next()
		if !ok {
			return p.errf("unterminated type assignment")
		}
		switch t.s {
		case "{":
			depth++
		case "}":
			depth--
			if depth == 0 {
				return nil
			}
		case "TEXTUAL-CONVENTION":
			return p.errf("TEXTUAL-CONVENTION is not supported")
		}
		if depth < 0 {
			return p.errf("unbalanced braces")
		}
	}
}

// assignment parses "::= { parent n }".
func (p *parser) assignment(d *Def) error {
	if err := p.expect("::="); err != nil {
		return err
	}
	if err := p.expect("{"); err != nil {
		return err
	}
	parent, ok := p.next()
	if !ok || parent.quoted {
		return p.errf("want parent name")
	}
	d.Parent = parent.s
	numTok, ok := p.next()
	if !ok {
		return p.errf("want sub-identifier")
	}
	n, err := strconv.ParseUint(numTok.s, 10, 32)
	if err != nil {
		p.pos--
		return p.errf("bad sub-identifier %q", numTok.s)
	}
	d.Sub = uint32(n)
	return p.expect("}")
}

// list parses "{ a, b, c }".
func (p *parser) list() ([]string, error) {
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	var out []string
	for {
		t, ok := p.next()
		if !ok {
			return nil, p.errf("unterminated list")
		}
		switch t.s {
		case "}":
			return out, nil
		case ",":
		default:
			if t.s == "IMPLIED" {
				continue
			}
			out = append(out, t.s)
		}
	}
}

func (p *parser) macroBody(d *Def) error {
	for {
		t, ok := p.next()
		if !ok {
			return p.errf("unterminated %s", d.Macro)
		}
		switch t.s {
		case "::=":
			p.pos--
			return p.assignment(d)
		case "SYNTAX":
			if err := p.syntax(d); err != nil {
				return err
			}
		case "MAX-ACCESS":
			a, ok := p.next()
			if !ok {
				return p.errf("want access")
			}
			d.Access = a.s
		case "INDEX":
			l, err := p.list()
			if err != nil {
				return err
			}
			d.Index = l
		case "OBJECTS", "NOTIFICATIONS":
			l, err := p.list()
			if err != nil {
				return err
			}
			d.Objects = l
		case "MANDATORY-GROUPS":
			if _, err := p.list(); err != nil {
				return err
			}
		}
	}
}

func (p *parser) syntax(d *Def) error {
	t, ok := p.next()
	if !ok {
		return p.errf("want syntax")
	}
	d.Syntax = t.s
	switch {
	case t.s == "SEQUENCE":
		if err := p.expect("OF"); err != nil {
			return err
		}
		_, ok := p.next()
		if !ok {
			return p.errf("want row type")
		}
	case t.s == "INTEGER" && p.peek(0) == "{":
		p.pos++
		for {
			n, ok := p.next()
			if !ok {
				return p.errf("unterminated enumeration")
			}
			if n.s == "}" {
				break
			}
			if n.s == "," {
				continue
			}
			if err := p.expect("("); err != nil {
				return err
			}
			v, ok := p.next()
			if !ok {
				return p.errf("want enumeration value")
			}
			iv, err := strconv.Atoi(v.s)
			if err != nil {
				p.pos--
				return p.errf("bad enumeration value %q", v.s)
			}
			if err := p.expect(")"); err != nil {
				return err
			}
			d.Enums = append(d.Enums, Enum{Name: n.s, Value: iv})
		}
	}
	// Skip a size or range restriction.
	if p.peek(0) == "(" {
		depth := 0
		for {
			t, ok := p.next()
			if !ok {
				return p.errf("unterminated restriction")
			}
			if t.s == "(" {
				depth++
			} else if t.s == ")" {
				depth--
				if depth == 0 {
					break
				}
			}
		}
	}
	return nil
}

func resolve(file string, m *Module, byName map[string]*Def) error {
	var oidOf func(d *Def, depth int) ([]uint32, error)
	oidOf = func(d *Def, depth int) ([]uint32, error) {
		if d.OID != nil {
			return d.OID, nil
		}
		if depth > len(byName) {
			return nil, &SyntaxError{File: file, Line: d.Line, Offset: -1, Msg: "OID loop at " + d.Name}
		}
		var base []uint32
		if r, ok := roots[d.Parent]; ok {
			base = r
		} else if pd, ok := byName[d.Parent]; ok {
			b, err := oidOf(pd, depth+1)
			if err != nil {
				return nil, err
			}
			base = b
		} else {
			return nil, &SyntaxError{File: file, Line: d.Line, Offset: -1, Msg: fmt.Sprintf("%s: unknown parent %q", d.Name, d.Parent)}
		}
		d.OID = append(append([]uint32{}, base...), d.Sub)
		return d.OID, nil
	}
	for _, d := range m.Defs {
		if _, err := oidOf(d, 0); err != nil {
			return err
		}
	}
	for _, d := range m.Defs {
		switch d.Macro {
		case "OBJECT-TYPE":
			switch {
			case d.Syntax == "SEQUENCE":
				d.Kind = KindTable
			case len(d.Index) > 0:
				d.Kind = KindEntry
			default:
				if pd, ok := byName[d.Parent]; ok && len(pd.Index) > 0 {
					d.Kind = KindColumn
				} else {
					d.Kind = KindScalar
				}
			}
		case "NOTIFICATION-TYPE":
			d.Kind = KindNotification
		case "OBJECT-GROUP", "NOTIFICATION-GROUP":
			d.Kind = KindGroup
		case "MODULE-COMPLIANCE":
			d.Kind = KindCompliance
		default:
			d.Kind = KindNode
		}
		for _, o := range d.Objects {
			if _, ok := byName[o]; !ok {
				return &SyntaxError{File: file, Line: d.Line, Offset: -1, Msg: fmt.Sprintf("%s: unknown object %q", d.Name, o)}
			}
		}
	}
	sort.SliceStable(m.Defs, func(i, j int) bool { return Compare(m.Defs[i].OID, m.Defs[j].OID) < 0 })
	return nil
}

// Compare orders OIDs lexicographically.
func Compare(a, b []uint32) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

// baseTypes maps the SYNTAX names the module may use to the SNMP base
// type the agent encodes them as.
var baseTypes = map[string]string{
	"Counter64":            "Counter64",
	"Counter32":            "Counter32",
	"Gauge32":              "Gauge32",
	"Unsigned32":           "Gauge32",
	"TimeTicks":            "TimeTicks",
	"INTEGER":              "Integer",
	"Integer32":            "Integer",
	"InterfaceIndexOrZero": "Integer",
	"DisplayString":        "OctetString",
	"DateAndTime":          "OctetString",
	"OCTET":                "OctetString",
}

func goName(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func dotted(oid []uint32) string {
	var b strings.Builder
	for i, n := range oid {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatUint(uint64(n), 10))
	}
	return b.String()
}

// Generate returns gofmt'ed Go source for package pkg declaring the
// module's OIDs, its objects in OID order and its enumerations. source
// names the MIB file in the DO NOT EDIT header.
func Generate(m *Module, pkg, source string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by mibgen from %s; DO NOT EDIT.\n\npackage %s\n\n", source, pkg)
	fmt.Fprintf(&b, "// ModuleName is the MIB module these OIDs come from.\nconst ModuleName = %q\n\n", m.Name)
	b.WriteString("// OIDs of the module's definitions, dotted, without a leading dot.\nconst (\n")
	for _, d := range m.Defs {
		fmt.Fprintf(&b, "\t%s = %q // %s\n", goName(d.Name), dotted(d.OID), d.Macro)
	}
	b.WriteString(")\n\n")
	b.WriteString("// Objects lists every definition of the module in OID order.\nvar Objects = []Object{\n")
	for _, d := range m.Defs {
		base := ""
		if d.Kind == KindScalar || d.Kind == KindColumn {
			var ok bool
			base, ok = baseTypes[d.Syntax]
			if !ok {
				return nil, fmt.Errorf("smi: %s: no base type known for syntax %q", d.Name, d.Syntax)
			}
		}
		fmt.Fprintf(&b, "\t{Name: %q, OID: %s, Kind: Kind%s, Syntax: %q, Base: %q, Access: %q, Index: %#v, Objects: %#v},\n",
			d.Name, goName(d.Name), goName(string(d.Kind)), d.Syntax, base, d.Access, d.Index, d.Objects)
	}
	b.WriteString("}\n")
	var enums []string
	for _, d := range m.Defs {
		for _, e := range d.Enums {
			enums = append(enums, fmt.Sprintf("\t%s%s = %d // %s(%d)\n", goName(d.Name), goName(e.Name), e.Value, e.Name, e.Value))
		}
	}
	if len(enums) > 0 {
		b.WriteString("\n// Enumerated values of INTEGER objects.\nconst (\n")
		b.WriteString(strings.Join(enums, ""))
		b.WriteString(")\n")
	}
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("smi: formatting generated code: %w", err)
	}
	return out, nil
}

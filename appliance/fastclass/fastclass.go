package fastclass

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/gaissmai/bart"
	"gopkg.in/yaml.v3"

	"github.com/mira-project/mira/flow"
)

// ErrSyntax is wrapped by every error about a list's text.
var ErrSyntax = errors.New("invalid fast-class list")

// Error is a list error with its position.
type Error struct {
	File string
	Line int
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("fastclass: %s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("fastclass: %s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// maxCategories bounds the category ids (flow.Record.Category is 16 bits,
// 0 meaning none).
const maxCategories = 0xffff

// Table maps addresses to category ids by longest prefix match.
type Table struct {
	t     bart.Table[uint16]
	names []string // names[id-1]
	ids   map[string]uint16
}

// New returns an empty table.
func New() *Table { return &Table{ids: map[string]uint16{}} }

// Add maps prefix to category (replacing an earlier mapping of the same
// prefix) and returns the category's id.
func (t *Table) Add(prefix netip.Prefix, category string) (uint16, error) {
	if category == "" {
		return 0, errors.New("empty category name")
	}
	if !prefix.IsValid() {
		return 0, fmt.Errorf("invalid prefix %v", prefix)
	}
	id, ok := t.ids[category]
	if !ok {
		if len(t.names) >= maxCategories {
			return 0, fmt.Errorf("more than %d categories", maxCategories)
		}
		t.names = append(t.names, category)
		id = uint16(len(t.names))
		t.ids[category] = id
	}
	t.t.Insert(prefix.Masked(), id)
	return id, nil
}

// Len is the number of prefixes held.
func (t *Table) Len() int { return t.t.Size() }

// Names maps category ids to names.
func (t *Table) Names() map[uint16]string {
	m := make(map[uint16]string, len(t.names))
	for i, n := range t.names {
		m[uint16(i+1)] = n
	}
	return m
}

// Name returns the name of category id, "" if there is none.
func (t *Table) Name(id uint16) string {
	if id == 0 || int(id) > len(t.names) {
		return ""
	}
	return t.names[id-1]
}

// Lookup returns the category id of a (0: not listed).
func (t *Table) Lookup(a netip.Addr) uint16 {
	id, _ := t.t.Lookup(a.Unmap())
	return id
}

// Classify returns the category of a flow: its destination's, else its
// source's; 0 when neither is listed. It is meter.Config.FastClass.
func (t *Table) Classify(k *flow.Key) uint16 {
	if id := t.Lookup(k.Dst); id != 0 {
		return id
	}
	return t.Lookup(k.Src)
}

// Load reads lists into one table: files ending in .csv are CSV, others
// YAML.
func Load(paths ...string) (*Table, error) {
	t := New()
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("fastclass: load: %w", err)
		}
		if strings.EqualFold(filepath.Ext(p), ".csv") {
			err = t.ParseCSV(p, data)
		} else {
			err = t.ParseYAML(p, data)
		}
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

// parsePrefix accepts a prefix or a bare address (a host prefix).
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		if p.Addr().Is4In6() {
			return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96), checkBits(p.Bits() - 96)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func checkBits(b int) error {
	if b < 0 {
		return errors.New("IPv4-mapped prefix shorter than /96")
	}
	return nil
}

// ParseYAML adds a YAML list; name is used in errors.
func (t *Table) ParseYAML(name string, data []byte) error {
	fail := func(line int, format string, a ...any) error {
		return &Error{File: name, Line: line, Err: fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, a...)...)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return &Error{File: name, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	if len(doc.Content) == 0 {
		return fail(0, "empty file")
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return fail(top.Line, "top level is not a mapping")
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "version":
			if v.Value != "1" {
				return fail(v.Line, "unsupported version %q (want 1)", v.Value)
			}
		case "categories":
			if v.Kind != yaml.SequenceNode {
				return fail(v.Line, "categories is not a list")
			}
			for _, c := range v.Content {
				if err := t.yamlCategory(c, fail); err != nil {
					return err
				}
			}
		default:
			return fail(k.Line, "unknown key %q", k.Value)
		}
	}
	return nil
}

func (t *Table) yamlCategory(c *yaml.Node, fail func(int, string, ...any) error) error {
	if c.Kind != yaml.MappingNode {
		return fail(c.Line, "category entry is not a mapping")
	}
	var cat string
	var list *yaml.Node
	for j := 0; j+1 < len(c.Content); j += 2 {
		k, v := c.Content[j], c.Content[j+1]
		switch k.Value {
		case "category":
			cat = strings.TrimSpace(v.Value)
		case "prefixes":
			list = v
		case "description":
		default:
			return fail(k.Line, "unknown key %q", k.Value)
		}
	}
	if cat == "" {
		return fail(c.Line, "entry without a category")
	}
	if list == nil || list.Kind != yaml.SequenceNode {
		return fail(c.Line, "category %s: prefixes is not a list", cat)
	}
	for _, p := range list.Content {
		pfx, err := parsePrefix(p.Value)
		if err != nil {
			return fail(p.Line, "category %s: prefix %q: %v", cat, p.Value, err)
		}
		if _, err := t.Add(pfx, cat); err != nil {
			return fail(p.Line, "category %s: %v", cat, err)
		}
	}
	return nil
}

// ParseCSV adds a CSV list of "prefix,category" lines; name is used in
// errors.
func (t *Table) ParseCSV(name string, data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, c, ok := strings.Cut(s, ",")
		if !ok {
			return &Error{File: name, Line: line, Err: fmt.Errorf("%w: want \"prefix,category\", got %q", ErrSyntax, s)}
		}
		c = strings.TrimSpace(strings.Trim(strings.TrimSpace(c), `"`))
		pfx, err := parsePrefix(strings.Trim(strings.TrimSpace(p), `"`))
		if err != nil {
			return &Error{File: name, Line: line, Err: fmt.Errorf("%w: prefix %q: %v", ErrSyntax, p, err)}
		}
		if _, err := t.Add(pfx, c); err != nil {
			return &Error{File: name, Line: line, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
		}
	}
	if err := sc.Err(); err != nil {
		return &Error{File: name, Line: line + 1, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	return nil
}

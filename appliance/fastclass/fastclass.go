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
	"github.com/mira-project/mira/internal/yamlnode"
)

// ErrSyntax is wrapped by every error about a list's text.
var ErrSyntax = errors.New("invalid fast-class list")

// Error is a list error with its position: file, line and, in YAML
// lists, the key path (categories[1].prefixes[3]).
type Error struct {
	File string
	Line int
	Key  string
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("fastclass: ")
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": key %q", e.Key)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
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
	fail := func(at yamlnode.Node, format string, a ...any) error {
		e := &Error{File: name, Key: at.Path, Err: fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, a...)...)}
		if at.Node != nil {
			e.Line = at.Line
		}
		return e
	}
	top, err := yamlnode.Parse(name, data)
	if err != nil {
		var ye *yamlnode.Error
		if errors.As(err, &ye) {
			return &Error{File: name, Line: ye.Line, Err: fmt.Errorf("%w: %v", ErrSyntax, ye.Err)}
		}
		return &Error{File: name, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	if top.Node == nil {
		return fail(top, "empty file")
	}
	if top.Kind != yaml.MappingNode {
		return fail(top, "top level is not a mapping")
	}
	return top.Map(func(key string, k, v yamlnode.Node) error {
		switch key {
		case "version":
			if v.Value != "1" {
				return fail(v, "unsupported version %q (want 1)", v.Value)
			}
		case "categories":
			if v.Kind != yaml.SequenceNode {
				return fail(v, "categories is not a list")
			}
			return v.Seq(func(_ int, c yamlnode.Node) error { return t.yamlCategory(c, fail) })
		default:
			return fail(k, "unknown key %q", key)
		}
		return nil
	})
}

func (t *Table) yamlCategory(c yamlnode.Node, fail func(yamlnode.Node, string, ...any) error) error {
	if c.Kind != yaml.MappingNode {
		return fail(c, "category entry is not a mapping")
	}
	var cat string
	var list yamlnode.Node
	err := c.Map(func(key string, k, v yamlnode.Node) error {
		switch key {
		case "category":
			cat = strings.TrimSpace(v.Value)
		case "prefixes":
			list = v
		case "description":
		default:
			return fail(k, "unknown key %q", key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if cat == "" {
		return fail(c, "entry without a category")
	}
	if list.Node == nil || list.Kind != yaml.SequenceNode {
		at := list
		if at.Node == nil {
			at = c
		}
		return fail(at, "category %s: prefixes is not a list", cat)
	}
	return list.Seq(func(_ int, p yamlnode.Node) error {
		pfx, err := parsePrefix(p.Value)
		if err != nil {
			return fail(p, "category %s: prefix %q: %v", cat, p.Value, err)
		}
		if _, err := t.Add(pfx, cat); err != nil {
			return fail(p, "category %s: %v", cat, err)
		}
		return nil
	})
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

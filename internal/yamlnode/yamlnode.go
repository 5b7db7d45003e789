// Package yamlnode locates errors in YAML documents. Every error it makes
// names the file, the line and the key path of the value at fault
// ("probe.yaml:3: key \"meter.max_flows\": ..."), for configuration
// decoded into structs (Decode) and for documents walked node by node
// (Parse, Node.Map, Node.Seq, Node.Errorf).
package yamlnode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is an error at a place in a YAML document.
type Error struct {
	File string
	Line int    // 1-based; 0 when unknown
	Key  string // key path: meter.max_flows, export[0].url; "" for the document
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		fmt.Fprintf(&b, "key %q", e.Key)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Node is a node of a document with the file it came from and its key
// path from the document's top.
type Node struct {
	*yaml.Node
	File string
	Path string
}

// Parse parses a document and returns its top node; for an empty
// document the Node's *yaml.Node is nil. A syntax error is an *Error
// with the line yaml reports.
func Parse(file string, data []byte) (Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Node{}, syntaxError(file, data, err)
	}
	n := Node{File: file}
	if len(doc.Content) > 0 {
		n.Node = doc.Content[0]
	}
	return n, nil
}

// Errorf returns an error at n: its line and key path.
func (n Node) Errorf(format string, a ...any) *Error {
	return n.Wrap(fmt.Errorf(format, a...))
}

// Wrap returns err at n: its line and key path.
func (n Node) Wrap(err error) *Error {
	e := &Error{File: n.File, Key: n.Path, Err: err}
	if n.Node != nil {
		e.Line = n.Line
	}
	return e
}

// child is the node v under n at the path element elem.
func (n Node) child(elem string, v *yaml.Node) Node {
	p := elem
	if n.Path != "" && !strings.HasPrefix(elem, "[") {
		p = n.Path + "." + elem
	} else if n.Path != "" {
		p = n.Path + elem
	}
	return Node{Node: v, File: n.File, Path: p}
}

// Map calls fn for each entry of a mapping, in order, with the key's
// name, the key node and the value node (both with the entry's path, so
// that an error about the key names the key's line and an error about
// the value the value's). It stops at fn's first error; a node that is
// not a mapping is an error.
func (n Node) Map(fn func(name string, k, v Node) error) error {
	if n.Node == nil || n.Kind != yaml.MappingNode {
		return n.Errorf("want a mapping")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if err := fn(k.Value, n.child(k.Value, k), n.child(k.Value, v)); err != nil {
			return err
		}
	}
	return nil
}

// Seq calls fn for each item of a sequence, in order; it stops at fn's
// first error. A node that is not a sequence is an error.
func (n Node) Seq(fn func(i int, v Node) error) error {
	if n.Node == nil || n.Kind != yaml.SequenceNode {
		return n.Errorf("want a list")
	}
	for i, c := range n.Content {
		if err := fn(i, n.child(fmt.Sprintf("[%d]", i), c)); err != nil {
			return err
		}
	}
	return nil
}

// Unknown is the error for a key that is not allowed at k.
func Unknown(k Node) *Error { return k.Errorf("unknown key") }

// Find returns the node at path (the syntax of Error.Key) under n, and
// false when there is none. A key is found at its value node; an empty
// path is n itself.
func (n Node) Find(path string) (Node, bool) {
	cur := n
	for path != "" {
		if cur.Node == nil {
			return Node{}, false
		}
		if path[0] == '[' {
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return Node{}, false
			}
			i, err := strconv.Atoi(path[1:end])
			if err != nil || cur.Kind != yaml.SequenceNode || i < 0 || i >= len(cur.Content) {
				return Node{}, false
			}
			cur = cur.child(path[:end+1], cur.Content[i])
			path = strings.TrimPrefix(path[end+1:], ".")
			continue
		}
		end := strings.IndexAny(path, ".[")
		if end < 0 {
			end = len(path)
		}
		name := path[:end]
		if cur.Kind != yaml.MappingNode {
			return Node{}, false
		}
		found := false
		for i := 0; i+1 < len(cur.Content); i += 2 {
			if cur.Content[i].Value == name {
				cur, found = cur.child(name, cur.Content[i+1]), true
				break
			}
		}
		if !found {
			return Node{}, false
		}
		path = strings.TrimPrefix(path[end:], ".")
	}
	return cur, true
}

// At returns an error at key path under n: the line of the deepest node
// of the path the document has (the key may be absent: a value that is
// missing is reported where its parent is).
func (n Node) At(path string, err error) *Error {
	e := &Error{File: n.File, Key: path, Err: err}
	for p := path; ; {
		if f, ok := n.Find(p); ok && f.Node != nil {
			e.Line = f.Line
			if f.Kind == yaml.MappingNode || f.Kind == yaml.SequenceNode {
				// A block collection's node is on the line after its
				// key; name the key's line.
				if k := n.keyLine(p); k > 0 {
					e.Line = k
				}
			}
			return e
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			return e
		}
		p = p[:i]
	}
}

// keyLine is the line of the mapping key that ends path, 0 if path ends
// in a list index or is not found.
func (n Node) keyLine(path string) int {
	i := strings.LastIndexAny(path, ".[")
	parent, name := "", path
	if i >= 0 {
		if path[i] == '[' {
			return 0
		}
		parent, name = path[:i], path[i+1:]
	}
	p, ok := n.Find(parent)
	if !ok || p.Node == nil || p.Kind != yaml.MappingNode {
		return 0
	}
	for j := 0; j+1 < len(p.Content); j += 2 {
		if p.Content[j].Value == name {
			return p.Content[j].Line
		}
	}
	return 0
}

var (
	reLine     = regexp.MustCompile(`^line (\d+): (.*)$`)
	reNotFound = regexp.MustCompile(`^field (\S+) not found in type`)
	reCannot   = regexp.MustCompile(`^cannot unmarshal !!\S+ .(.*). into (\S+)$`)
)

// Decode decodes data into v with unknown keys refused. It reports every
// problem yaml finds, each an *Error with its line and key path, joined
// (errors.Join: one per line of the message; errors.As finds the first).
// An empty document leaves v as it is.
func Decode(file string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	root, err := Parse(file, data)
	if err != nil {
		return err
	}
	d := yaml.NewDecoder(bytes.NewReader(data))
	d.KnownFields(true)
	err = d.Decode(v)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return syntaxError(file, data, err)
	}
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		errs = append(errs, typeError(root, msg))
	}
	return errors.Join(errs...)
}

// typeError locates one of yaml's type errors ("line 3: field bogus not
// found in type config.Meter") by its line and the key yaml names.
func typeError(root Node, msg string) *Error {
	msg = oneLine(msg)
	m := reLine.FindStringSubmatch(msg)
	if m == nil {
		return &Error{File: root.File, Err: errors.New(msg)}
	}
	line, _ := strconv.Atoi(m[1])
	e := &Error{File: root.File, Line: line, Key: root.keyAt(line, nil), Err: errors.New(m[2])}
	if n := reNotFound.FindStringSubmatch(m[2]); n != nil {
		// A flow mapping ({a: 1, b: 2}) puts several keys on one line:
		// name the one yaml refused.
		e.Key = root.keyAt(line, func(k, _ *yaml.Node) bool { return k.Value == n[1] })
		e.Err = errors.New("unknown key")
	} else if n := reCannot.FindStringSubmatch(m[2]); n != nil {
		val := strings.TrimSuffix(n[1], "...") // yaml shortens long values
		e.Key = root.keyAt(line, func(_, v *yaml.Node) bool {
			return v.Kind == yaml.ScalarNode && strings.HasPrefix(v.Value, val)
		})
		e.Err = fmt.Errorf("invalid value %q (want %s)", n[1], n[2])
	}
	return e
}

// oneLine escapes the line breaks yaml quotes from values, so that an
// error stays on its line (a joined error has one line per error).
func oneLine(msg string) string {
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(msg)
}

func syntaxError(file string, data []byte, err error) *Error {
	msg := oneLine(strings.TrimPrefix(err.Error(), "yaml: "))
	if m := reLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Err: errors.New(m[2])}
	}
	return &Error{File: file, Line: firstLineWith(data, err.Error()), Err: errors.New(msg)}
}

// firstLineWith finds the line of a syntax error yaml reported without
// one: yaml leaves the line out when the place it marks is on the
// document's first line (its line 0), and for errors of its reader
// (bad UTF-8, control characters). It is the number of lines of the
// shortest prefix of the document that fails with the same message; 0
// when none does or the document is long.
func firstLineWith(data []byte, msg string) int {
	const maxLines = 10000
	line := 0
	for off := 0; off < len(data) && line < maxLines; {
		next := bytes.IndexByte(data[off:], '\n')
		if next < 0 {
			next = len(data)
		} else {
			next += off + 1
		}
		line++
		var v any
		if err := yaml.Unmarshal(data[:next], &v); err != nil && err.Error() == msg {
			return line
		}
		off = next
	}
	return 0
}

// keyAt returns the path of the mapping key (or scalar list item) on the
// given line; when several share the line (a flow mapping), the first
// that match accepts (key and value nodes), or the first if none does.
func (n Node) keyAt(line int, match func(k, v *yaml.Node) bool) string {
	var first, matched string
	var walk func(c Node)
	walk = func(c Node) {
		switch c.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(c.Content); i += 2 {
				k, v := c.Content[i], c.Content[i+1]
				ch := c.child(k.Value, v)
				if k.Line == line {
					if first == "" {
						first = ch.Path
					}
					if matched == "" && match != nil && match(k, v) {
						matched = ch.Path
					}
				}
				walk(ch)
			}
		case yaml.SequenceNode:
			for i, it := range c.Content {
				ch := c.child(fmt.Sprintf("[%d]", i), it)
				if it.Line == line && it.Kind == yaml.ScalarNode && first == "" {
					first = ch.Path
				}
				walk(ch)
			}
		}
	}
	if n.Node != nil {
		walk(n)
	}
	if matched != "" {
		return matched
	}
	return first
}

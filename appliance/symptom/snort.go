package symptom

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// SnortIssue is a rule option that a symptom pattern cannot express.
// With Syntax set it is a rule that does not parse, skipped whole.
type SnortIssue struct {
	Line   int
	SID    string
	Option string // the option as written
	Reason string
	Syntax bool
}

func (i SnortIssue) String() string {
	if i.Syntax {
		return fmt.Sprintf("line %d: syntax error: %s: rule skipped", i.Line, i.Reason)
	}
	return fmt.Sprintf("line %d sid %s: %s: %s", i.Line, i.SID, i.Option, i.Reason)
}

// ImportSnort converts Snort/Suricata rules into a database spec: one
// symptom per classtype (named after it in upper case, "SNORT" for rules
// without one), each content option becoming one pattern with its nocase,
// offset and depth. A rule's contents become independent patterns: the AND
// between them is not kept, and is listed as an issue. Options that change
// what matches but cannot be expressed (negated content, distance, within,
// pcre, byte_test, flow, HTTP buffers, ...) are listed per rule; options
// without effect on matching (msg, sid, rev, classtype, reference,
// metadata, priority, gid, fast_pattern) are consumed silently. Rules with
// no usable content are skipped and listed, as are rules with a syntax
// error (SnortIssue.Syntax): one bad rule in a rules file does not stop
// the import of the others. A line ending with a backslash continues on
// the next; a rule's issues name the line it starts on.
func ImportSnort(name string, data []byte) (*Spec, []SnortIssue, error) {
	spec := &Spec{File: name}
	byClass := map[string]int{}
	var issues []SnortIssue
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lineNo, next := 0, 0
	for sc.Scan() {
		next++
		lineNo = next // the line the rule starts on
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// A rule continues on the next line when a line ends with a
		// backslash (after trailing blanks), as Snort and Suricata read
		// rules files: the backslash is dropped and the next line
		// appended as it is (one starting with '#' too: a comment is a
		// line that starts a rule's place).
		for strings.HasSuffix(line, "\\") {
			line = line[:len(line)-1]
			if !sc.Scan() {
				break
			}
			next++
			line = strings.TrimSpace(line + strings.TrimRight(sc.Text(), " \t\r"))
		}
		open := strings.IndexByte(line, '(')
		if open < 0 || !strings.HasSuffix(line, ")") {
			issues = append(issues, SnortIssue{Line: lineNo, SID: "?", Option: "(rule)", Reason: "rule without an option list", Syntax: true})
			continue
		}
		opts, err := splitSnortOptions(line[open+1 : len(line)-1])
		if err != nil {
			issues = append(issues, SnortIssue{Line: lineNo, SID: "?", Option: "(rule)", Reason: err.Error(), Syntax: true})
			continue
		}
		sid, class := "?", ""
		for _, o := range opts {
			switch o.key {
			case "sid":
				sid = o.val
			case "classtype":
				class = o.val
			}
		}
		var pats []PatternSpec
		var cur *PatternSpec
		issue := func(opt, reason string) {
			issues = append(issues, SnortIssue{Line: lineNo, SID: sid, Option: opt, Reason: reason})
		}
		for _, o := range opts {
			raw := o.key
			if o.val != "" {
				raw += ":" + o.val
			}
			switch o.key {
			case "msg", "sid", "rev", "classtype", "reference", "metadata", "priority", "gid", "fast_pattern":
			case "content":
				cur = nil
				v := strings.TrimSpace(o.val)
				if strings.HasPrefix(v, "!") {
					issue(raw, "negated content cannot be expressed")
					continue
				}
				if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
					issue(raw, "content is not quoted")
					continue
				}
				text := v[1 : len(v)-1] // ParseContent handles \" \; \\
				b, err := ParseContent(text)
				if err != nil {
					issue(raw, err.Error())
					continue
				}
				pats = append(pats, PatternSpec{Kind: KindLiteral, Text: text, Bytes: b, Line: lineNo})
				cur = &pats[len(pats)-1]
			case "nocase":
				if cur == nil {
					issue(raw, "no content to apply to")
					continue
				}
				cur.NoCase = true
			case "offset", "depth":
				n, err := strconv.ParseUint(strings.TrimSpace(o.val), 10, 64)
				if cur == nil || err != nil {
					issue(raw, "not a number or no content to apply to")
					continue
				}
				if o.key == "offset" {
					cur.Offset = n
				} else {
					cur.Depth = n
				}
			default:
				issue(raw, "not expressible as a symptom pattern")
			}
		}
		if len(pats) == 0 {
			issue("(rule)", "no usable content: rule skipped")
			continue
		}
		if len(pats) > 1 {
			issue("(rule)", fmt.Sprintf("%d contents become independent patterns (their AND is not kept)", len(pats)))
		}
		for i := range pats {
			if p := &pats[i]; p.Depth > 0 && p.Depth < uint64(len(p.Bytes)) {
				issue("depth:"+strconv.FormatUint(p.Depth, 10), "shorter than its content: widened to the content")
				p.Depth = uint64(len(p.Bytes))
			}
		}
		sym := "SNORT"
		if class != "" {
			sym = strings.ToUpper(strings.ReplaceAll(class, "-", "_"))
		}
		idx, ok := byClass[sym]
		if !ok {
			idx = len(spec.Symptoms)
			byClass[sym] = idx
			desc := "Snort/Suricata rules"
			if class != "" {
				desc += " of classtype " + class
			}
			spec.Symptoms = append(spec.Symptoms, SymptomSpec{Name: sym, Description: desc, Line: lineNo})
		}
		spec.Symptoms[idx].Patterns = append(spec.Symptoms[idx].Patterns, pats...)
	}
	if err := sc.Err(); err != nil {
		return nil, issues, fmt.Errorf("symptom: import %s: %w", name, err)
	}
	if len(spec.Symptoms) == 0 {
		return nil, issues, &Error{File: name, Err: fmt.Errorf("%w: no rule with a usable content", ErrSyntax)}
	}
	return spec, issues, nil
}

type snortOpt struct{ key, val string }

// splitSnortOptions splits "k:v; k2; k3:"a;b";" honouring quotes and
// backslash escapes.
func splitSnortOptions(s string) ([]snortOpt, error) {
	var out []snortOpt
	var cur strings.Builder
	inQ := false
	flush := func() {
		t := strings.TrimSpace(cur.String())
		cur.Reset()
		if t == "" {
			return
		}
		k, v, _ := strings.Cut(t, ":")
		out = append(out, snortOpt{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(c)
			cur.WriteByte(s[i+1])
			i++
		case c == '"':
			inQ = !inQ
			cur.WriteByte(c)
		case c == ';' && !inQ:
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	if inQ {
		return nil, fmt.Errorf("unterminated quote in options %q", s)
	}
	flush()
	return out, nil
}

// FormatSpec renders a spec as database YAML that Parse accepts.
func FormatSpec(spec *Spec) []byte {
	var b bytes.Buffer
	b.WriteString("version: 1\n")
	if spec.ScanLimit > 0 {
		fmt.Fprintf(&b, "scan_limit: %d\n", spec.ScanLimit)
	}
	b.WriteString("symptoms:\n")
	for _, s := range spec.Symptoms {
		fmt.Fprintf(&b, "  - name: %s\n", strconv.Quote(s.Name))
		if s.Description != "" {
			fmt.Fprintf(&b, "    description: %s\n", strconv.Quote(s.Description))
		}
		b.WriteString("    patterns:\n")
		for _, p := range s.Patterns {
			b.WriteString("      - {")
			switch p.Kind {
			case KindLiteral:
				fmt.Fprintf(&b, "content: %s", yamlQuote(quoteBytes(p.Bytes)))
			case KindMask:
				fmt.Fprintf(&b, "value: %q, mask: %q", fmt.Sprintf("% X", p.Bytes), fmt.Sprintf("% X", p.Mask))
			case KindValidate:
				fmt.Fprintf(&b, "validate: %s", p.Validate)
			case KindRegex:
				fmt.Fprintf(&b, "regex: %s", strconv.Quote(p.Regex))
			}
			if p.NoCase {
				b.WriteString(", nocase: true")
			}
			switch p.Anchor {
			case AnchorStart:
				b.WriteString(", anchor: start")
			case AnchorLine:
				b.WriteString(", anchor: line")
			}
			if p.Offset > 0 {
				fmt.Fprintf(&b, ", offset: %d", p.Offset)
			}
			if p.Depth > 0 {
				fmt.Fprintf(&b, ", depth: %d", p.Depth)
			}
			b.WriteString("}\n")
		}
	}
	return b.Bytes()
}

// yamlQuote makes a YAML double-quoted scalar (quoteBytes output is
// printable ASCII, so escaping '\' and '"' suffices).
func yamlQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

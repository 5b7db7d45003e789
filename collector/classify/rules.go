package classify

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/mira-project/mira/internal/yamlnode"
)

// ErrSyntax is wrapped by every error about the text of a rules file.
var ErrSyntax = errors.New("invalid classification rules")

// Error is a rules file error with its position.
type Error struct {
	File     string
	Line     int    // 0 when unknown
	Key      string // key path: rules[2].when
	Rule     int    // 1-based rule number, 0 when not about one rule
	Category string // the rule's category, when known
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("classify: ")
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": key %q", e.Key)
	}
	if e.Rule > 0 {
		fmt.Fprintf(&b, ": rule %d", e.Rule)
		if e.Category != "" {
			fmt.Fprintf(&b, " (%s)", e.Category)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Rule is one compiled rule.
type Rule struct {
	Category string
	When     string // the expression as written
	Line     int
	prog     *vm.Program
	// fn is the compiled expression (compile.go); nil: prog runs on
	// the VM. req is its requirement (compiler.req).
	fn  boolFn
	req uint64
}

// Rules is a compiled, ordered rule set: immutable, safe for concurrent use.
type Rules struct {
	file    string
	rules   []Rule
	symVars []string       // identifiers that name symptoms
	symIdx  map[string]int // symVars' index by name (fenv.sym)
	// proto is the environment with every name at its zero value;
	// each evaluation starts from a copy (cheaper than building it).
	proto   map[string]any
	usePair bool
	// pairNames are the symptoms compiled rules read in the pair
	// context (pair.X); pairAny: a rule on the VM reads pair, so any
	// symptom may be read (Rules.NewIndex).
	pairNames []string
	pairAny   bool
	// envs and fenvs hold evaluation environments for reuse (*evalEnv,
	// *fenv).
	envs, fenvs sync.Pool
}

// reserved are the names that are not symptoms.
var reserved = map[string]bool{
	"proto": true, "sport": true, "dport": true, "packets": true, "octets": true,
	"rpackets": true, "roctets": true, "bytes": true, "duration": true, "total": true,
	"symptoms": true, "pair": true, "aggregate": true, "ftp_data": true,
	"sum": true, "max": true, "share": true, "majority": true,
}

// Load reads and compiles a rules file.
func Load(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("classify: load: %w", err)
	}
	return Parse(path, data)
}

//go:embed default.yaml
var defaultYAML []byte

var defaultRules = sync.OnceValue(func() *Rules {
	r, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic("classify: embedded default rules: " + err.Error())
	}
	return r
})

// Default returns the embedded default rule set.
func Default() *Rules { return defaultRules() }

// DefaultYAML returns the text of the embedded default rules.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Rules lists the rules in order.
func (r *Rules) Rules() []Rule { return append([]Rule(nil), r.rules...) }

// Categories lists the categories the rules can give, in rule order,
// without repetition.
func (r *Rules) Categories() []string {
	var out []string
	seen := map[string]bool{}
	for _, ru := range r.rules {
		if !seen[ru.Category] {
			seen[ru.Category] = true
			out = append(out, ru.Category)
		}
	}
	return out
}

// UsesPair reports whether a rule refers to pair or ftp_data (and so
// needs the whole report's biflows; see Build).
func (r *Rules) UsesPair() bool { return r.usePair }

// Parse compiles a rules file; name is used in error messages.
func Parse(name string, data []byte) (*Rules, error) { return parse(name, data, true) }

// parse is Parse; with compile false, every rule runs on expr's VM (the
// tests compare the two).
func parse(name string, data []byte, compile bool) (*Rules, error) {
	fail := func(at yamlnode.Node, rule int, cat string, format string, a ...any) error {
		e := &Error{File: name, Key: at.Path, Rule: rule, Category: cat, Err: fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, a...)...)}
		if at.Node != nil {
			e.Line = at.Line
		}
		return e
	}
	top, err := yamlnode.Parse(name, data)
	if err != nil {
		var ye *yamlnode.Error
		if errors.As(err, &ye) {
			return nil, &Error{File: name, Line: ye.Line, Err: fmt.Errorf("%w: %v", ErrSyntax, ye.Err)}
		}
		return nil, &Error{File: name, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	if top.Node == nil {
		return nil, fail(top, 0, "", "empty file")
	}
	if top.Kind != yaml.MappingNode {
		return nil, fail(top, 0, "", "top level is not a mapping")
	}
	r := &Rules{file: name}
	var list yamlnode.Node
	err = top.Map(func(key string, k, v yamlnode.Node) error {
		switch key {
		case "version":
			if v.Value != "1" {
				return fail(v, 0, "", "unsupported version %q (want 1)", v.Value)
			}
		case "rules":
			list = v
		default:
			return fail(k, 0, "", "unknown key %q", key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if list.Node == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		at := list
		if at.Node == nil {
			at = top
		}
		return nil, fail(at, 0, "", "no rules (want a non-empty list under \"rules\")")
	}
	syms := map[string]bool{}
	type pending struct {
		cat, when string
		line      int
		at        yamlnode.Node // the when expression (the rule if none)
		tree      *parser.Tree
	}
	var ps []pending
	err = list.Seq(func(i int, n yamlnode.Node) error {
		num := i + 1
		if n.Kind != yaml.MappingNode {
			return fail(n, num, "", "rule is not a mapping")
		}
		p := pending{line: n.Line, at: n}
		err := n.Map(func(key string, k, v yamlnode.Node) error {
			if v.Kind != yaml.ScalarNode {
				return fail(v, num, p.cat, "%s is not a scalar", key)
			}
			switch key {
			case "category":
				p.cat = strings.TrimSpace(v.Value)
			case "when":
				p.when, p.at = v.Value, v
			case "description", "name":
			default:
				return fail(k, num, p.cat, "unknown key %q", key)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if p.cat == "" {
			return fail(n, num, "", "rule without a category")
		}
		if strings.TrimSpace(p.when) == "" {
			return fail(n, num, p.cat, "rule without a \"when\" expression")
		}
		p.line = p.at.Line
		tree, err := parser.ParseWithConfig(p.when, parseConf)
		if err != nil {
			return fail(p.at, num, p.cat, "when: %v", oneLine(err))
		}
		p.tree = tree
		c := &collector{syms: syms}
		ast.Walk(&tree.Node, c)
		if c.pair {
			r.usePair = true
		}
		ps = append(ps, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.symIdx = map[string]int{}
	for s := range syms {
		r.symIdx[s] = len(r.symVars)
		r.symVars = append(r.symVars, s)
	}
	cc := &compiler{symIdx: r.symIdx, pairNames: map[string]bool{}}
	proto := r.newEnv()
	r.proto = r.newEnv()
	for i, p := range ps {
		prog, err := expr.Compile(p.when, r.options(proto)...)
		if err != nil {
			return nil, fail(p.at, i+1, p.cat, "when: %v", oneLine(err))
		}
		var fn boolFn
		var req uint64
		if compile {
			if fn = cc.compileRule(p.tree.Node); fn != nil {
				req = cc.req(p.tree.Node)
			}
		}
		if fn == nil && readsPair(&p.tree.Node) {
			r.pairAny = true
		}
		r.rules = append(r.rules, Rule{Category: p.cat, When: p.when, Line: p.line, prog: prog, fn: fn, req: req})
	}
	for name := range cc.pairNames {
		r.pairNames = append(r.pairNames, name)
	}
	slices.Sort(r.pairNames)
	return r, nil
}

// readsPair reports whether an expression names pair.
func readsPair(n *ast.Node) bool {
	v := &pairVisitor{}
	ast.Walk(n, v)
	return v.found
}

type pairVisitor struct{ found bool }

func (v *pairVisitor) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok && id.Value == "pair" {
		v.found = true
	}
}

// parseConf is the parser configuration: it knows that sum and max are
// ours (variadic), not expr's builtins of the same names.
var parseConf = func() *conf.Config {
	c := conf.CreateNew()
	for _, o := range (&Rules{}).options(map[string]any{}) {
		o(c)
	}
	return c
}()

// oneLine keeps the first line of expr's multi-line error messages (the
// rest is a source snippet with a caret).
func oneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// collector gathers the symptom identifiers of an expression.
type collector struct {
	syms map[string]bool
	pair bool
}

func (c *collector) Visit(n *ast.Node) {
	switch v := (*n).(type) {
	case *ast.IdentifierNode:
		if v.Value == "pair" || v.Value == "ftp_data" {
			c.pair = true // both need the report's other biflows
		}
		if !reserved[v.Value] && !isBuiltin(v.Value) {
			c.syms[v.Value] = true
		}
	case *ast.CallNode:
		// Callees are functions, not symptoms: drop what Walk added.
		if id, ok := v.Callee.(*ast.IdentifierNode); ok && !reserved[id.Value] {
			delete(c.syms, id.Value)
		}
	}
}

// totalArg makes share(...) and majority(...) into share(total, ...) and
// majority(total, ...), so that the functions see the biflow's total. expr
// runs such a patch once per compilation.
type totalArg struct{}

func (totalArg) Visit(n *ast.Node) {
	c, ok := (*n).(*ast.CallNode)
	if !ok {
		return
	}
	id, ok := c.Callee.(*ast.IdentifierNode)
	if !ok || (id.Value != "share" && id.Value != "majority") {
		return
	}
	c.Arguments = append([]ast.Node{&ast.IdentifierNode{Value: "total"}}, c.Arguments...)
}

func isBuiltin(name string) bool {
	_, ok := builtin.Index[name]
	return ok
}

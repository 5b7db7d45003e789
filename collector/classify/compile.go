package classify

import (
	"math/bits"

	"github.com/expr-lang/expr/ast"
)

// Compiled rules: a rule's expression turned into Go closures over a
// fixed environment (fenv) instead of expr's VM over a map of every name
// per biflow, which was the largest cost of classifying at ingest
// (BENCHMARKS.md, "Compiled rules"). Only constructs whose result cannot
// differ from the VM's and cannot fail are compiled: numbers, names,
// symptoms["X"] and pair.X lookups, arithmetic (+ - * /), comparisons,
// && || !, `in` over a list of integers, the functions sum, max, share
// and majority; a rule with anything else is evaluated by the VM
// (Rules.MatchContext), over the map environment as before. The
// equivalence is tested against the VM (compile_test.go).

// Numeric names of the environment, by slot in fenv.num.
const (
	nProto = iota
	nSport
	nDport
	nPackets
	nOctets
	nRPackets
	nROctets
	nBytes
	nTotal
	nNums
)

var numSlot = map[string]int{
	"proto": nProto, "sport": nSport, "dport": nDport, "packets": nPackets, "octets": nOctets,
	"rpackets": nRPackets, "roctets": nROctets, "bytes": nBytes, "total": nTotal,
}

// fenv is one evaluation's environment for compiled rules.
type fenv struct {
	num       [nNums]int
	duration  float64
	aggregate string
	sym       []int  // symptom variables, by Rules.symIdx
	nz        uint64 // bit i: sym[i] is not 0 (i < 64; Rule.req)
	// syms and sp are the biflow's symptoms and span (not the Input:
	// keeping a pointer to it made every classified biflow escape to
	// the heap).
	syms symCounts
	sp   span
	// The pair context: given (ctx) or found in ix when a rule asks
	// for it (lazily: most biflows are classified by a rule that does
	// not read it). near caches the indexed biflows of the context.
	ctx     Context
	ix      *Index
	near    []*indexed
	nearSet bool
	ftp     int8 // ftp_data from ix: 0 not asked yet, 1 no, 2 yes
}

// pairCount is pair[name]: the occurrences of name in the other biflows
// of the context (Index.Pair's sum, without building its map).
func (e *fenv) pairCount(name string) int {
	if e.ix == nil {
		return e.ctx.Pair[name]
	}
	if !e.nearSet {
		e.near = e.ix.appendNear(e.near[:0], &e.sp)
		e.nearSet = true
	}
	n := 0
	for _, o := range e.near {
		n += clampInt(o.symptoms.get(name))
	}
	return n
}

// ftpData is ftp_data.
func (e *fenv) ftpData() int {
	if e.ix == nil {
		if e.ctx.FTPData {
			return 1
		}
		return 0
	}
	if e.ftp == 0 {
		e.ftp = 1
		if e.ix.ftpData(&e.sp) {
			e.ftp = 2
		}
	}
	return int(e.ftp - 1)
}

type (
	intFn   func(*fenv) int
	floatFn func(*fenv) float64
	boolFn  func(*fenv) bool
	strFn   func(*fenv) string
)

// kind is a compiled value's type.
type kind uint8

const (
	kNone kind = iota // not compiled
	kInt
	kFloat
	kBool
	kString
)

// cval is a compiled expression: one of its functions is set, by k.
type cval struct {
	k kind
	i intFn
	f floatFn
	b boolFn
	s strFn
	// constant values of literals (for `in` lists)
	isConst bool
	ci      int
}

// asFloat returns v (int or float) as a float function, converting as
// the VM does (float64 of the int).
func (v cval) asFloat() floatFn {
	if v.k == kFloat {
		return v.f
	}
	i := v.i
	return func(e *fenv) float64 { return float64(i(e)) }
}

func (v cval) numeric() bool { return v.k == kInt || v.k == kFloat }

// compiler turns a parsed rule into closures.
type compiler struct {
	symIdx map[string]int
	// pairNames gathers the names of pair.X (Rules.pairNames).
	pairNames map[string]bool
}

// compileRule returns the rule's closure, or nil when the expression
// holds anything the compiler does not handle.
func (c *compiler) compileRule(n ast.Node) boolFn {
	v := c.compile(n)
	if v.k != kBool {
		return nil
	}
	return v.b
}

func (c *compiler) compile(n ast.Node) cval {
	switch n := n.(type) {
	case *ast.IntegerNode:
		x := n.Value
		return cval{k: kInt, i: func(*fenv) int { return x }, isConst: true, ci: x}
	case *ast.FloatNode:
		x := n.Value
		return cval{k: kFloat, f: func(*fenv) float64 { return x }}
	case *ast.BoolNode:
		x := n.Value
		return cval{k: kBool, b: func(*fenv) bool { return x }}
	case *ast.StringNode:
		x := n.Value
		return cval{k: kString, s: func(*fenv) string { return x }}
	case *ast.IdentifierNode:
		return c.ident(n.Value)
	case *ast.MemberNode:
		return c.member(n)
	case *ast.UnaryNode:
		return c.unary(n)
	case *ast.BinaryNode:
		return c.binary(n)
	case *ast.CallNode:
		return c.call(n)
	}
	return cval{}
}

func (c *compiler) ident(name string) cval {
	if name == "ftp_data" {
		return cval{k: kInt, i: func(e *fenv) int { return e.ftpData() }}
	}
	if s, ok := numSlot[name]; ok {
		return cval{k: kInt, i: func(e *fenv) int { return e.num[s] }}
	}
	switch name {
	case "duration":
		return cval{k: kFloat, f: func(e *fenv) float64 { return e.duration }}
	case "aggregate":
		return cval{k: kString, s: func(e *fenv) string { return e.aggregate }}
	}
	if reserved[name] {
		return cval{} // symptoms, pair (whole maps), function names
	}
	if i, ok := c.symIdx[name]; ok {
		return cval{k: kInt, i: func(e *fenv) int { return e.sym[i] }}
	}
	return cval{}
}

// member compiles symptoms["X"], symptoms.X, pair["X"] and pair.X.
func (c *compiler) member(n *ast.MemberNode) cval {
	id, ok := n.Node.(*ast.IdentifierNode)
	if !ok || n.Optional || n.Method {
		return cval{}
	}
	prop, ok := n.Property.(*ast.StringNode)
	if !ok {
		return cval{}
	}
	name := prop.Value
	switch id.Value {
	case "symptoms":
		return cval{k: kInt, i: func(e *fenv) int { return clampInt(e.syms.get(name)) }}
	case "pair":
		c.pairNames[name] = true
		return cval{k: kInt, i: func(e *fenv) int { return e.pairCount(name) }}
	}
	return cval{}
}

func (c *compiler) unary(n *ast.UnaryNode) cval {
	x := c.compile(n.Node)
	switch n.Operator {
	case "!", "not":
		if x.k == kBool {
			f := x.b
			return cval{k: kBool, b: func(e *fenv) bool { return !f(e) }}
		}
	case "-":
		switch x.k {
		case kInt:
			f := x.i
			return cval{k: kInt, i: func(e *fenv) int { return -f(e) }}
		case kFloat:
			f := x.f
			return cval{k: kFloat, f: func(e *fenv) float64 { return -f(e) }}
		}
	case "+":
		if x.numeric() {
			x.isConst = false
			return x
		}
	}
	return cval{}
}

func (c *compiler) binary(n *ast.BinaryNode) cval {
	if n.Operator == "in" {
		return c.in(n)
	}
	l, r := c.compile(n.Left), c.compile(n.Right)
	if l.k == kNone || r.k == kNone {
		return cval{}
	}
	switch n.Operator {
	case "&&", "and":
		if l.k == kBool && r.k == kBool {
			a, b := l.b, r.b
			return cval{k: kBool, b: func(e *fenv) bool { return a(e) && b(e) }}
		}
	case "||", "or":
		if l.k == kBool && r.k == kBool {
			a, b := l.b, r.b
			return cval{k: kBool, b: func(e *fenv) bool { return a(e) || b(e) }}
		}
	case "==", "!=":
		eq := equal(l, r)
		if eq == nil {
			return cval{}
		}
		if n.Operator == "!=" {
			return cval{k: kBool, b: func(e *fenv) bool { return !eq(e) }}
		}
		return cval{k: kBool, b: eq}
	case "<", "<=", ">", ">=":
		return compare(n.Operator, l, r)
	case "+", "-", "*":
		return arith(n.Operator, l, r)
	case "/":
		if l.numeric() && r.numeric() {
			a, b := l.asFloat(), r.asFloat()
			return cval{k: kFloat, f: func(e *fenv) float64 { return a(e) / b(e) }}
		}
	}
	return cval{}
}

// equal compiles l == r for two numbers (compared as floats when either
// is one, as the VM does), two strings or two booleans.
func equal(l, r cval) boolFn {
	switch {
	case l.k == kInt && r.k == kInt:
		a, b := l.i, r.i
		return func(e *fenv) bool { return a(e) == b(e) }
	case l.numeric() && r.numeric():
		a, b := l.asFloat(), r.asFloat()
		return func(e *fenv) bool { return a(e) == b(e) }
	case l.k == kString && r.k == kString:
		a, b := l.s, r.s
		return func(e *fenv) bool { return a(e) == b(e) }
	case l.k == kBool && r.k == kBool:
		a, b := l.b, r.b
		return func(e *fenv) bool { return a(e) == b(e) }
	}
	return nil
}

func compare(op string, l, r cval) cval {
	if !l.numeric() || !r.numeric() {
		return cval{}
	}
	if l.k == kInt && r.k == kInt {
		return cval{k: kBool, b: compareFn(op, l.i, r.i)}
	}
	return cval{k: kBool, b: compareFn(op, l.asFloat(), r.asFloat())}
}

// compareFn returns a(e) op b(e) for an ordering operator op.
func compareFn[T int | float64](op string, a, b func(*fenv) T) boolFn {
	switch op {
	case "<":
		return func(e *fenv) bool { return a(e) < b(e) }
	case "<=":
		return func(e *fenv) bool { return a(e) <= b(e) }
	case ">":
		return func(e *fenv) bool { return a(e) > b(e) }
	}
	return func(e *fenv) bool { return a(e) >= b(e) }
}

// arith compiles + - * on numbers: int when both are (wrapping as Go's
// and the VM's ints do), else float.
func arith(op string, l, r cval) cval {
	if !l.numeric() || !r.numeric() {
		return cval{}
	}
	if l.k == kInt && r.k == kInt {
		a, b := l.i, r.i
		var f intFn
		switch op {
		case "+":
			f = func(e *fenv) int { return a(e) + b(e) }
		case "-":
			f = func(e *fenv) int { return a(e) - b(e) }
		default:
			f = func(e *fenv) int { return a(e) * b(e) }
		}
		return cval{k: kInt, i: f}
	}
	a, b := l.asFloat(), r.asFloat()
	var f floatFn
	switch op {
	case "+":
		f = func(e *fenv) float64 { return a(e) + b(e) }
	case "-":
		f = func(e *fenv) float64 { return a(e) - b(e) }
	default:
		// The conversion keeps the product rounded on its own (no fused
		// multiply-add with a sum around it), as the VM's is.
		f = func(e *fenv) float64 { return float64(a(e) * b(e)) }
	}
	return cval{k: kFloat, f: f}
}

// in compiles x in [n, ...] for an integer x and integer literals.
func (c *compiler) in(n *ast.BinaryNode) cval {
	x := c.compile(n.Left)
	arr, ok := n.Right.(*ast.ArrayNode)
	if x.k != kInt || !ok {
		return cval{}
	}
	set := make([]int, 0, len(arr.Nodes))
	for _, m := range arr.Nodes {
		v := c.compile(m)
		if v.k != kInt || !v.isConst {
			return cval{}
		}
		set = append(set, v.ci)
	}
	f := x.i
	return cval{k: kBool, b: func(e *fenv) bool {
		v := f(e)
		for _, s := range set {
			if s == v {
				return true
			}
		}
		return false
	}}
}

// call compiles sum, max, share and majority over integer arguments.
func (c *compiler) call(n *ast.CallNode) cval {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return cval{}
	}
	args := make([]intFn, 0, len(n.Arguments))
	for _, a := range n.Arguments {
		v := c.compile(a)
		if v.k != kInt {
			return cval{}
		}
		args = append(args, v.i)
	}
	sum := func(e *fenv) int {
		s := 0
		for _, a := range args {
			s += a(e)
		}
		return s
	}
	switch id.Value {
	case "sum":
		return cval{k: kInt, i: sum}
	case "max":
		return cval{k: kInt, i: func(e *fenv) int {
			m := 0
			for i, a := range args {
				if v := a(e); i == 0 || v > m {
					m = v
				}
			}
			return m
		}}
	case "share":
		return cval{k: kFloat, f: func(e *fenv) float64 {
			total := e.num[nTotal]
			if total <= 0 {
				return 0
			}
			return float64(sum(e)) / float64(total)
		}}
	case "majority":
		return cval{k: kBool, b: func(e *fenv) bool {
			total := e.num[nTotal]
			return total > 0 && 2*sum(e) > total
		}}
	}
	return cval{}
}

// A rule's requirement (Rule.req) is a set of symptom variables (bit i:
// Rules.symVars[i], for the first 64) one of which is not 0 in every
// biflow the rule holds for; 0 means none is known. A biflow without
// any of them is not evaluated by the rule (Rules.match): most rules
// test a symptom that most biflows lack.

// req returns n's requirement: for a && b either's, for a || b both's,
// for comparisons X > c, X >= c' (and c < X, c' <= X) where c ≥ 0 and
// c' > 0 are constants or c a symptom variable, the variables X reads
// when X is a symptom variable or sum, max or share of them; for
// majority of symptom variables, those. Symptom counts are never
// negative, so X > c ≥ 0 needs one of them not 0.
func (c *compiler) req(n ast.Node) uint64 {
	switch n := n.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and":
			a, b := c.req(n.Left), c.req(n.Right)
			if a == 0 || (b != 0 && bits.OnesCount64(b) < bits.OnesCount64(a)) {
				return b
			}
			return a
		case "||", "or":
			a, b := c.req(n.Left), c.req(n.Right)
			if a == 0 || b == 0 {
				return 0
			}
			return a | b
		case ">", ">=":
			return c.reqCompare(n.Operator == ">=", n.Left, n.Right)
		case "<", "<=":
			return c.reqCompare(n.Operator == "<=", n.Right, n.Left)
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && id.Value == "majority" {
			return c.symArgs(n.Arguments)
		}
	}
	return 0
}

// reqCompare is req of x > y (x >= y when orEqual).
func (c *compiler) reqCompare(orEqual bool, x, y ast.Node) uint64 {
	if !c.positiveBound(orEqual, y) {
		return 0
	}
	switch x := x.(type) {
	case *ast.IdentifierNode:
		return c.symBit(x.Value)
	case *ast.CallNode:
		if id, ok := x.Callee.(*ast.IdentifierNode); ok {
			switch id.Value {
			case "sum", "max", "share":
				return c.symArgs(x.Arguments)
			}
		}
	}
	return 0
}

// positiveBound reports whether v > y (v >= y when orEqual) implies
// v > 0 for any v ≥ 0.
func (c *compiler) positiveBound(orEqual bool, y ast.Node) bool {
	switch y := y.(type) {
	case *ast.IntegerNode:
		return y.Value > 0 || (!orEqual && y.Value == 0)
	case *ast.FloatNode:
		return y.Value > 0 || (!orEqual && y.Value == 0)
	case *ast.IdentifierNode:
		return !orEqual && c.symBit(y.Value) != 0 // v > a count ≥ 0
	}
	return false
}

// symBit is the requirement bit of a symptom variable (0: none).
func (c *compiler) symBit(name string) uint64 {
	if reserved[name] {
		return 0
	}
	if i, ok := c.symIdx[name]; ok && i < 64 {
		return 1 << i
	}
	return 0
}

// symArgs is the union of the bits of args, 0 unless every one is a
// symptom variable with a bit.
func (c *compiler) symArgs(args []ast.Node) uint64 {
	var m uint64
	for _, a := range args {
		id, ok := a.(*ast.IdentifierNode)
		if !ok {
			return 0
		}
		b := c.symBit(id.Value)
		if b == 0 {
			return 0
		}
		m |= b
	}
	return m
}

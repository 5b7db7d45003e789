package classify

import (
	"fmt"
	"maps"
	"math"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// newEnv returns an environment with every name bound to its zero value
// (the compile-time prototype, and the start of each evaluation's env).
func (r *Rules) newEnv() map[string]any {
	env := map[string]any{
		"proto": 0, "sport": 0, "dport": 0, "packets": 0, "octets": 0,
		"rpackets": 0, "roctets": 0, "bytes": 0, "duration": 0.0, "total": 0,
		"symptoms": map[string]int{}, "pair": map[string]int{}, "aggregate": "", "ftp_data": 0,
	}
	for _, s := range r.symVars {
		env[s] = 0
	}
	return env
}

func (r *Rules) options(env map[string]any) []expr.Option {
	return []expr.Option{
		expr.Env(env),
		expr.AsBool(),
		expr.Patch(totalArg{}),
		expr.Function("sum", func(p ...any) (any, error) { return sumOf(p), nil }, new(func(...int) int)),
		expr.Function("max", func(p ...any) (any, error) {
			m := 0
			for i, v := range p {
				if n := asInt(v); i == 0 || n > m {
					m = n
				}
			}
			return m, nil
		}, new(func(...int) int)),
		expr.Function("share", func(p ...any) (any, error) {
			total := asInt(p[0])
			if total <= 0 {
				return 0.0, nil
			}
			return float64(sumOf(p[1:])) / float64(total), nil
		}, new(func(int, ...int) float64)),
		expr.Function("majority", func(p ...any) (any, error) {
			total := asInt(p[0])
			return total > 0 && 2*sumOf(p[1:]) > total, nil
		}, new(func(int, ...int) bool)),
	}
}

func sumOf(p []any) int {
	s := 0
	for _, v := range p {
		s += asInt(v)
	}
	return s
}

func asInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case uint64:
		return clampInt(n)
	case float64:
		return int(n)
	}
	return 0
}

func clampInt(v uint64) int {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int(v)
}

// evalEnv is one evaluation's environment, reused through Rules.envs:
// building a map of every name per biflow (and the symptoms map in it)
// was most of the cost of classifying at ingest (BENCHMARKS.md).
type evalEnv struct {
	env   map[string]any
	syms  map[string]int // the "symptoms" map
	empty map[string]int // "pair" when there is no context (stays empty: expr cannot assign)
	set   []string       // symptom variables set to a count, back to 0 after
	vm    vm.VM          // its stack is reused
}

// env fills an evaluation environment for b; put gives it back once
// the rules have run.
func (r *Rules) env(b *Input, ctx Context) *evalEnv {
	e, _ := r.envs.Get().(*evalEnv)
	if e == nil {
		e = &evalEnv{env: maps.Clone(r.proto), syms: map[string]int{}, empty: map[string]int{}}
		if e.env == nil {
			e.env = r.newEnv()
		}
	}
	env := e.env
	total := 0
	for name, n := range b.Symptoms {
		total += e.symptom(env, name, n)
	}
	if b.Symptoms == nil {
		for _, c := range b.Counts {
			total += e.symptom(env, c.Name, c.Count)
		}
	}
	pair := ctx.Pair
	if pair == nil {
		pair = e.empty
	}
	env["proto"] = int(b.Proto)
	env["sport"] = int(b.Sport)
	env["dport"] = int(b.Dport)
	env["packets"] = clampInt(b.Packets)
	env["octets"] = clampInt(b.Octets)
	env["rpackets"] = clampInt(b.RPackets)
	env["roctets"] = clampInt(b.ROctets)
	env["bytes"] = clampInt(b.Octets + b.ROctets)
	env["duration"] = float64(b.Last-b.First) / 1e9
	env["total"] = total
	env["symptoms"] = e.syms
	env["pair"] = pair
	env["aggregate"] = b.Aggregate
	if ctx.FTPData {
		env["ftp_data"] = 1
	}
	return e
}

// symptom sets one symptom's occurrences in e and returns them as an
// int.
func (e *evalEnv) symptom(env map[string]any, name string, n uint64) int {
	c := clampInt(n)
	e.syms[name] = c
	if _, ok := env[name]; ok && !reserved[name] {
		env[name] = c
		e.set = append(e.set, name)
	}
	return c
}

// put resets what env set for one biflow (every other name is set by
// each evaluation) and keeps e for the next.
func (r *Rules) put(e *evalEnv) {
	for _, name := range e.set {
		e.env[name] = 0
	}
	e.set = e.set[:0]
	clear(e.syms)
	e.env["ftp_data"] = 0
	e.env["pair"] = e.empty
	r.envs.Put(e)
}

// Context is what the other biflows of a report say of one (Index):
// the pair.* symptom counts and whether an FTP control connection
// announced it (ftp_data).
type Context struct {
	Pair    map[string]int
	FTPData bool
}

// Match returns the category of the first rule that holds for b, and
// false when none does. pair is the pair.* context (nil: empty). A rule
// whose evaluation fails (it cannot on a compiled boolean expression over
// this environment, but expr's builtins may, e.g. on an index out of
// range) does not match, and the error is returned with the rule number.
func (r *Rules) Match(b *Input, pair map[string]int) (string, bool, error) {
	return r.MatchContext(b, Context{Pair: pair})
}

// MatchContext is Match with the whole context of the other biflows.
func (r *Rules) MatchContext(b *Input, ctx Context) (string, bool, error) {
	return r.match(b, ctx, nil)
}

// match evaluates the rules in order: the compiled ones (Rule.fn) over a
// fenv, the others by the VM over the map environment, made when the
// first of them runs. The pair context is ctx, or, when ix is set, the
// one ix gives b (asked of ix only when a rule reads it).
func (r *Rules) match(b *Input, ctx Context, ix *Index) (string, bool, error) {
	fe := r.fenv(b, ctx, ix)
	defer r.putFenv(fe)
	var e *evalEnv
	var first error
	for i := range r.rules {
		ru := &r.rules[i]
		if ru.fn != nil {
			if ru.req&fe.nz == 0 && ru.req != 0 {
				continue // none of the symptoms it needs
			}
			if ru.fn(fe) {
				return ru.Category, true, first
			}
			continue
		}
		if e == nil {
			if ix != nil {
				ctx = Context{Pair: ix.Pair(b), FTPData: ix.FTPData(b)}
			}
			e = r.env(b, ctx)
			defer r.put(e)
		}
		v, err := e.vm.Run(ru.prog, e.env)
		if err != nil {
			if first == nil {
				first = &Error{File: r.file, Line: ru.Line, Rule: i + 1, Category: ru.Category, Err: fmt.Errorf("evaluate: %v", oneLine(err))}
			}
			continue
		}
		if ok, _ := v.(bool); ok {
			return ru.Category, true, first
		}
	}
	return "", false, first
}

// fenv fills a compiled rules' environment for b; putFenv gives it back.
func (r *Rules) fenv(b *Input, ctx Context, ix *Index) *fenv {
	e, _ := r.fenvs.Get().(*fenv)
	if e == nil {
		e = &fenv{sym: make([]int, len(r.symVars))}
	}
	total := 0
	for name, n := range b.Symptoms {
		total += r.fenvSymptom(e, name, n)
	}
	if b.Symptoms == nil {
		for _, c := range b.Counts {
			total += r.fenvSymptom(e, c.Name, c.Count)
		}
	}
	e.num = [nNums]int{
		nProto: int(b.Proto), nSport: int(b.Sport), nDport: int(b.Dport),
		nPackets: clampInt(b.Packets), nOctets: clampInt(b.Octets),
		nRPackets: clampInt(b.RPackets), nROctets: clampInt(b.ROctets),
		nBytes: clampInt(b.Octets + b.ROctets), nTotal: total,
	}
	e.duration = float64(b.Last-b.First) / 1e9
	e.aggregate = b.Aggregate
	e.syms, e.sp, e.ctx, e.ix = countsOf(b), spanOf(b), ctx, ix
	return e
}

// fenvSymptom sets one symptom's occurrences in e and returns them as
// an int.
func (r *Rules) fenvSymptom(e *fenv, name string, n uint64) int {
	c := clampInt(n)
	if i, ok := r.symIdx[name]; ok {
		e.sym[i] = c
		if c != 0 && i < 64 {
			e.nz |= 1 << i
		}
	}
	return c
}

func (r *Rules) putFenv(e *fenv) {
	clear(e.sym)
	e.nz = 0
	clear(e.near)
	e.syms, e.ctx, e.ix, e.near, e.nearSet, e.ftp = symCounts{}, Context{}, nil, e.near[:0], false, 0
	r.fenvs.Put(e)
}

// Func returns Classify without pair context (pair evaluates as empty).
func (r *Rules) Func() func(*Input) string {
	return func(b *Input) string {
		c, _, _ := r.Match(b, nil)
		return c
	}
}

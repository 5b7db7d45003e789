package classify

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mira-project/mira/flow"
)

// ruleSets are the rule files the compiled rules are compared with expr's
// VM on: the default rules and those in testdata.
func ruleSets(t testing.TB) map[string][]byte {
	sets := map[string][]byte{"default.yaml": DefaultYAML()}
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rules in testdata: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sets[f] = data
	}
	return sets
}

// pairedRules is one rule set parsed twice: compiled where it can be,
// and every rule on the VM.
type pairedRules struct {
	name   string
	c, vm  *Rules
	extras []string // symptom names beyond the identifiers
}

func parseBoth(t testing.TB, name string, data []byte) pairedRules {
	c, err := parse(name, data, true)
	if err != nil {
		t.Fatal(err)
	}
	v, err := parse(name, data, false)
	if err != nil {
		t.Fatal(err)
	}
	return pairedRules{name: name, c: c, vm: v, extras: []string{"ODD-NAME", "SNORT-1", "OTHER", "total", "proto"}}
}

// inputGen makes biflows and contexts from a source of numbers: random
// ones (the test) or the fuzzer's bytes.
type inputGen struct {
	next func() uint64
}

// interesting are values at the edges of the conversions (clampInt,
// int wrap, float rounding).
var interesting = []uint64{0, 1, 2, 3, 4, 5, 7, 8, 10, 16, 100, 1000, 10000, 1 << 31, 1<<53 + 1, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64}

func (g inputGen) count() uint64 {
	v := g.next()
	switch v % 4 {
	case 0:
		return 0
	case 1:
		return (v >> 2) % 12
	case 2:
		return interesting[(v>>2)%uint64(len(interesting))]
	}
	return v >> 2
}

func (g inputGen) port() uint16 {
	ports := []uint16{0, 21, 22, 25, 53, 80, 110, 123, 143, 443, 465, 587, 993, 995, 3128, 5060, 8080, 8443, 40001}
	v := g.next()
	if v%3 == 0 {
		return uint16(v >> 2)
	}
	return ports[(v>>2)%uint64(len(ports))]
}

func (g inputGen) names(p *pairedRules) []string {
	return append(append([]string(nil), p.c.symVars...), p.extras...)
}

func (g inputGen) symptoms(names []string) map[string]uint64 {
	var m map[string]uint64
	if g.next()%8 == 0 {
		return nil
	}
	for _, n := range names {
		if g.next()%3 == 0 {
			if m == nil {
				m = map[string]uint64{}
			}
			m[n] = g.count()
		}
	}
	return m
}

var hosts = []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::1")}

func (g inputGen) input(names []string) *Input {
	protos := []uint8{1, 6, 17, 58, 0, 47}
	first := int64(g.next()%(300e9)) - 10e9
	last := first + int64(g.next()%(200e9))
	if g.next()%16 == 0 {
		last = first - 1 // a negative duration
	}
	src, dst := hosts[g.next()%3], hosts[g.next()%3]
	aggs := []string{"", "campus", "guest", "lab-1", "dorm"}
	in := &Input{Biflow: &flow.Biflow{
		Key:     flow.Key{Src: src, Dst: dst, Sport: g.port(), Dport: g.port(), Proto: protos[g.next()%uint64(len(protos))]},
		Packets: g.count(), Octets: g.count(), RPackets: g.count(), ROctets: g.count(), First: first, Last: last},
		Symptoms: g.symptoms(names), Aggregate: aggs[g.next()%uint64(len(aggs))]}
	if g.next()%4 == 0 {
		in.App = &flow.App{FTPData: strconv.Itoa(int(g.port())) + "," + strconv.Itoa(int(g.port()))}
	}
	return in
}

func (g inputGen) context(names []string) Context {
	var ctx Context
	if g.next()%3 != 0 {
		ctx.Pair = map[string]int{}
		for _, n := range names {
			if g.next()%3 == 0 {
				ctx.Pair[n] = clampInt(g.count())
			}
		}
	}
	ctx.FTPData = g.next()%4 == 0
	return ctx
}

// check compares the compiled and the VM rules on in with ctx: rule by
// rule (a compiled rule must give the VM's value, and the VM must not
// fail on it), then the category Match gives.
func (p *pairedRules) check(t testing.TB, in *Input, ctx Context) {
	t.Helper()
	fe := p.c.fenv(in, ctx, nil)
	e := p.vm.env(in, ctx)
	for i := range p.c.rules {
		ru := &p.c.rules[i]
		if ru.fn == nil {
			continue
		}
		v, err := e.vm.Run(p.vm.rules[i].prog, e.env)
		if err != nil {
			t.Fatalf("%s rule %d (%s) on %s: the VM fails (%v) on a compiled rule", p.name, i+1, ru.When, describe(in, ctx), err)
		}
		if got := ru.fn(fe); got != v.(bool) {
			t.Fatalf("%s rule %d (%s) on %s: compiled %v, VM %v", p.name, i+1, ru.When, describe(in, ctx), got, v)
		}
		if ru.req != 0 && ru.req&fe.nz == 0 && v.(bool) {
			t.Fatalf("%s rule %d (%s) on %s: holds without any of the symptoms it requires (%b)", p.name, i+1, ru.When, describe(in, ctx), ru.req)
		}
	}
	p.vm.put(e)
	p.c.putFenv(fe)
	c1, ok1, err1 := p.c.MatchContext(in, ctx)
	c2, ok2, err2 := p.vm.MatchContext(in, ctx)
	if c1 != c2 || ok1 != ok2 || fmt.Sprint(err1) != fmt.Sprint(err2) {
		t.Fatalf("%s on %s: compiled %q %v %v, VM %q %v %v", p.name, describe(in, ctx), c1, ok1, err1, c2, ok2, err2)
	}
	// The symptoms as a list (Input.Counts): the same, compiled and on
	// the VM.
	l := asList(in)
	for _, r := range []*Rules{p.c, p.vm} {
		c3, ok3, err3 := r.MatchContext(l, ctx)
		if c3 != c2 || ok3 != ok2 || fmt.Sprint(err3) != fmt.Sprint(err2) {
			t.Fatalf("%s on %s as a list: %q %v %v, VM on the map %q %v %v", p.name, describe(in, ctx), c3, ok3, err3, c2, ok2, err2)
		}
	}
}

// asList returns in with its symptoms as Counts instead of a map.
func asList(in *Input) *Input {
	l := *in
	l.Symptoms, l.Counts = nil, nil
	for name, n := range in.Symptoms {
		l.Counts = append(l.Counts, NamedCount{name, n})
	}
	return &l
}

// checkIndex compares Classify with an index (the pair context asked of
// it lazily by the compiled rules) with the VM's.
func (p *pairedRules) checkIndex(t testing.TB, ins []*Input) {
	t.Helper()
	ix := NewIndex()
	for _, in := range ins {
		ix.Add(in)
	}
	// The same biflows with their symptoms as lists, in an index made
	// for the compiled rules (which keeps only what they read).
	lists := make([]*Input, len(ins))
	lix := p.c.NewIndex()
	for i, in := range ins {
		lists[i] = asList(in)
		lix.Add(lists[i])
	}
	for i, in := range ins {
		c2 := p.vm.Classify(in, ix)
		if c1 := p.c.Classify(in, ix); c1 != c2 {
			t.Fatalf("%s with index on %s (pair %v, ftp_data %v): compiled %q, VM %q", p.name, describe(in, Context{}), ix.Pair(in), ix.FTPData(in), c1, c2)
		}
		if c3 := p.c.Classify(lists[i], lix); c3 != c2 {
			t.Fatalf("%s with the rules' index of lists on %s: compiled %q, VM %q", p.name, describe(in, Context{}), c3, c2)
		}
	}
}

func describe(in *Input, ctx Context) string {
	return fmt.Sprintf("%v %d-%d packets %d/%d octets %d/%d agg %q symptoms %v pair %v ftp_data %v app %v",
		in.Key, in.First, in.Last, in.Packets, in.RPackets, in.Octets, in.ROctets, in.Aggregate, in.Symptoms, ctx.Pair, ctx.FTPData, in.App)
}

// TestCompiledMatchesVM: on random biflows and pair contexts, every
// compiled rule of the default rules and of testdata's gives what expr's
// VM gives, and the categories are the same, with a context given and
// with one from an index.
func TestCompiledMatchesVM(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	g := inputGen{next: rng.Uint64}
	for name, data := range ruleSets(t) {
		p := parseBoth(t, name, data)
		names := g.names(&p)
		for i := 0; i < 20000; i++ {
			p.check(t, g.input(names), g.context(names))
		}
		for i := 0; i < 300; i++ {
			ins := make([]*Input, 1+rng.IntN(12))
			for j := range ins {
				ins[j] = g.input(names)
			}
			p.checkIndex(t, ins)
		}
	}
}

// TestDefaultRulesCompiled: every default rule is compiled (none pays
// for the VM and its map environment), and testdata's VM-only rules are
// not.
func TestDefaultRulesCompiled(t *testing.T) {
	for _, ru := range Default().rules {
		if ru.fn == nil {
			t.Errorf("default rule %q (%s) is not compiled", ru.When, ru.Category)
		}
	}
	data, err := os.ReadFile("testdata/constructs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := mustParse(t, string(data))
	vm := 0
	for _, ru := range r.rules {
		if want := len(ru.Category) < 2 || ru.Category[:2] != "VM"; (ru.fn != nil) != want {
			t.Errorf("rule %q (%s): compiled %v, want %v", ru.When, ru.Category, ru.fn != nil, want)
		}
		if ru.fn == nil {
			vm++
		}
	}
	if vm == 0 {
		t.Error("no rule left to the VM in testdata/constructs.yaml")
	}
	// Requirements: the symptoms one of which a biflow needs for the
	// rule to hold, by rule (by symptom name; none: every biflow is
	// evaluated).
	d := Default()
	want := map[string]string{
		"MAIL > 0": "MAIL", "ftp_data > 0 && proto == 6": "",
		"VPN > 0 && VPN > DNS":                          "VPN",
		"majority(MP3, AUDIO, VIDEO, SPORTS)":           "AUDIO MP3 SPORTS VIDEO",
		"WEB > 0 && sum(MP3, AUDIO, VIDEO, SPORTS) > 0": "WEB",
		"TLS > 0 || SSH > 0 || QUIC > 0":                "QUIC SSH TLS",
		"sum(MP3, AUDIO, VIDEO, SPORTS) > 0":            "AUDIO MP3 SPORTS VIDEO",
		"proto == 1 || proto == 58":                     "",
	}
	seen := 0
	for _, ru := range d.rules {
		w, ok := want[strings.TrimSpace(ru.When)]
		if !ok {
			continue
		}
		seen++
		var names []string
		for i, s := range d.symVars {
			if ru.req&(1<<i) != 0 {
				names = append(names, s)
			}
		}
		slices.Sort(names)
		if got := strings.Join(names, " "); got != w {
			t.Errorf("rule %q requires %q, want %q", ru.When, got, w)
		}
	}
	if seen != len(want) {
		t.Errorf("%d of the %d rules to check found in the default rules", seen, len(want))
	}
}

// fuzzGen reads the numbers of an input from the fuzzer's bytes (zeros
// once they run out).
func fuzzGen(data []byte) inputGen {
	return inputGen{next: func() uint64 {
		var b [8]byte
		n := copy(b[:], data)
		data = data[n:]
		return binary.LittleEndian.Uint64(b[:])
	}}
}

// FuzzCompiledMatchesVM: biflows and pair contexts made of the fuzzer's
// bytes, through the compiled rules and the VM, for each rule set.
func FuzzCompiledMatchesVM(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"))
	var sets []pairedRules
	for name, data := range ruleSets(f) {
		sets = append(sets, parseBoth(f, name, data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for i := range sets {
			p := &sets[i]
			g := fuzzGen(data)
			names := g.names(p)
			p.check(t, g.input(names), g.context(names))
			g = fuzzGen(data)
			p.checkIndex(t, []*Input{g.input(names), g.input(names), g.input(names)})
		}
	})
}

// FuzzCompileExpr: any expression the parser accepts as a rule gives,
// where it is compiled, the VM's results on a few biflows.
func FuzzCompileExpr(f *testing.F) {
	for name, data := range ruleSets(f) {
		p := parseBoth(f, name, data)
		for _, ru := range p.c.rules {
			f.Add(ru.When, []byte(name))
		}
	}
	f.Add("-9223372036854775807 - 2 < packets * 4611686018427387904", []byte{7})
	f.Add("duration / 0 == duration / 0 || 0.1 + 0.2 == 0.3", []byte{9})
	f.Fuzz(func(t *testing.T, when string, data []byte) {
		src := "version: 1\nrules:\n  - category: A\n    when: " + strconv.Quote(when) + "\n"
		c, err := parse("fuzz.yaml", []byte(src), true)
		if err != nil {
			return
		}
		v, err := parse("fuzz.yaml", []byte(src), false)
		if err != nil {
			t.Fatalf("parsed compiled but not for the VM: %v", err)
		}
		p := pairedRules{name: "fuzz", c: c, vm: v, extras: []string{"X", "A-B"}}
		g := fuzzGen(data)
		rng := rand.New(rand.NewPCG(uint64(len(data)), 3))
		mixed := inputGen{next: func() uint64 { return g.next() ^ rng.Uint64() }}
		names := g.names(&p)
		for i := 0; i < 8; i++ {
			p.check(t, mixed.input(names), mixed.context(names))
		}
	})
}

package report

import (
	"context"
	"flag"
	"net/netip"
	"testing"

	"github.com/mira-project/mira/collector/report/reporttest"
	"github.com/mira-project/mira/collector/store"
)

// paramsReport builds the fixture's report with the given flags.
func paramsReport(t *testing.T, st *store.Store, args ...string) *Report {
	t.Helper()
	var p Params
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	p.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	rep, err := FromStoreQuery(context.Background(), st, p.Query, p.Options())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestFilters checks that --host, --port, --proto, --aggregate,
// --category and --symptom keep exactly the biflows of the unfiltered
// report that match, with totals over them, and that the host and
// symptom groupings count what the biflows carry.
func TestFilters(t *testing.T) {
	st, err := store.Open(reporttest.DB(t), &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all := paramsReport(t, st)
	if len(all.Biflows) < 3 {
		t.Fatalf("fixture has %d biflows", len(all.Biflows))
	}
	ref := all.Biflows[0]
	sym := ""
	for _, b := range all.Biflows {
		for name := range b.Symptoms {
			sym = name
		}
	}
	cases := []struct {
		args []string
		keep func(*Biflow) bool
	}{
		{[]string{"--host", ref.Src.String()}, func(b *Biflow) bool { return b.Src == ref.Src || b.Dst == ref.Src }},
		{[]string{"--host", netip.PrefixFrom(ref.Dst, 8).Masked().String()}, func(b *Biflow) bool {
			p := netip.PrefixFrom(ref.Dst, 8).Masked()
			return p.Contains(b.Src) || p.Contains(b.Dst)
		}},
		{[]string{"--port", "80"}, func(b *Biflow) bool { return b.Sport == 80 || b.Dport == 80 }},
		{[]string{"--proto", "udp"}, func(b *Biflow) bool { return b.Proto == 17 }},
		{[]string{"--category", ref.Category}, func(b *Biflow) bool { return b.Category == ref.Category }},
		{[]string{"--aggregate", "-"}, func(b *Biflow) bool { return b.Aggregate == "" }},
		{[]string{"--symptom", sym}, func(b *Biflow) bool { return b.Symptoms[sym] > 0 }},
	}
	for _, c := range cases {
		rep := paramsReport(t, st, c.args...)
		var want []Biflow
		var pk, oc uint64
		flows := 0
		for i := range all.Biflows {
			if b := &all.Biflows[i]; c.keep(b) {
				want = append(want, *b)
				pk += b.Packets + b.RPackets
				oc += b.Octets + b.ROctets
				flows += b.Flows
			}
		}
		if len(want) == 0 || len(want) == len(all.Biflows) {
			t.Errorf("%v: %d of %d biflows match: not a useful case", c.args, len(want), len(all.Biflows))
		}
		if len(rep.Biflows) != len(want) {
			t.Errorf("%v: %d biflows, want %d", c.args, len(rep.Biflows), len(want))
			continue
		}
		for i := range want {
			if rep.Biflows[i].Key != want[i].Key || rep.Biflows[i].Octets != want[i].Octets || rep.Biflows[i].Category != want[i].Category {
				t.Errorf("%v: biflow %d = %v, want %v", c.args, i, rep.Biflows[i].Key, want[i].Key)
			}
		}
		s := rep.Summary
		if s.Biflows != len(want) || s.Packets != pk || s.Octets != oc || s.Flows != flows {
			t.Errorf("%v: summary %d biflows %d packets %d octets %d flows, want %d %d %d %d",
				c.args, s.Biflows, s.Packets, s.Octets, s.Flows, len(want), pk, oc, flows)
		}
	}

	hosts := paramsReport(t, st, "--by", "host")
	var hostOctets uint64
	for _, r := range hosts.Usage {
		hostOctets += r.Octets
		if r.Host == "" {
			t.Errorf("host row without host: %+v", r)
		}
	}
	selfPairs := uint64(0)
	for _, b := range all.Biflows {
		if b.Src == b.Dst {
			selfPairs += b.Octets + b.ROctets
		}
	}
	if hostOctets != 2*all.Summary.Octets-selfPairs {
		t.Errorf("host rows sum to %d octets, want twice the total %d", hostOctets, all.Summary.Octets)
	}
	syms := paramsReport(t, st, "--by", "symptom")
	if len(syms.Usage) == 0 {
		t.Fatal("no symptom rows")
	}
	for _, r := range syms.Usage {
		var hits uint64
		n := 0
		for _, b := range all.Biflows {
			if b.Symptoms[r.Symptom] > 0 {
				n++
				hits += b.Symptoms[r.Symptom]
			}
		}
		if r.Biflows != n || r.Hits != hits || n == 0 {
			t.Errorf("symptom %q: %d biflows %d hits, want %d %d", r.Symptom, r.Biflows, r.Hits, n, hits)
		}
	}
	for _, bad := range [][]string{{"--host", "nowhere"}, {"--port", "70000"}, {"--proto", "carrier-pigeon"}} {
		var p Params
		fs := flag.NewFlagSet("report", flag.ContinueOnError)
		p.Register(fs)
		if err := fs.Parse(bad); err != nil {
			t.Fatal(err)
		}
		if err := p.Check(); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

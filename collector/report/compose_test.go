package report

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
)

// TestComposedEqualsRecords: over random stores (one probe, two probes'
// duplicates, sampled probes; connections with chains of active-timeout
// records, FIN ends, port reuse and the pair context of the default
// rules) and random ranges (bounds on whole minutes, inside minutes to
// the nanosecond, across records, with edges holding no record), auto
// answers exactly what the records answer, for every grouping, with
// --bucket and with the filters (--aggregate, --category, --symptom). Most of those ranges have a record across a bound, where
// auto read the records before; they are now composed (the rollups of
// the whole minutes inside, corrected by the records around the
// bounds): the test fails unless most of the ranges of each store were.
// By start (--started), where bounds inside minutes kept auto on the
// records, the usage and totals equal the records' too, composed from
// the cells and the biflows that start in the minutes' parts.
func TestComposedEqualsRecords(t *testing.T) {
	rules := classify.Default()
	src := RollupSource{RulesID: DefaultRulesFingerprint()}
	groupings := [][]string{{"--by", "category"}, {}, {"--by", "aggregate"}, {"--by", "probe"}, {"--by", "symptom"},
		{"--by", "category", "--bucket", "10m"}, {"--bucket", "1h"},
		{"--category", "Web"}, {"--aggregate", "lab", "--by", "category"}, {"--symptom", "WEB", "--by", "probe"}, {"--aggregate", "-"}}
	for _, d := range rollupStores {
		for seed := uint64(1); seed <= 2; seed++ {
			d := d
			d.conns = 1500
			t.Run(d.name, func(t *testing.T) {
				s, _ := writeRollupStore(t, d, 20+seed)
				if _, err := Rebuild(context.Background(), s, RollupConfig{Rules: rules, RulesID: src.RulesID}); err != nil {
					t.Fatal(err)
				}
				report := defaultReporter(t, s)
				rng := rand.New(rand.NewPCG(seed, 31))
				composed, crossed, n, startedComposed := 0, 0, 0, 0
				for i := 0; i < 33; i++ {
					// From before the first record to after the last.
					from := rollupT0 - int64(10*time.Minute) + rng.Int64N(int64(d.span))
					switch i % 4 {
					case 0: // whole minutes
						from -= mod(from, int64(time.Minute))
					case 1: // whole seconds
						from -= mod(from, int64(time.Second))
					}
					to := from + int64(35*time.Minute) + rng.Int64N(int64(d.span))
					if i%4 == 0 {
						to -= mod(to, int64(time.Minute))
					}
					args := []string{"--from", Timestamp(from).Time().Format(time.RFC3339Nano), "--to", Timestamp(to).Time().Format(time.RFC3339Nano)}
					args = append(args, groupings[i%len(groupings)]...)
					records := report(args...)
					auto := report(append(args, "--source", "auto")...)
					p := rollupParams(t, args...)
					if c, err := p.BoundsCrossed(s); err != nil {
						t.Fatal(err)
					} else if c {
						crossed++
					}
					n++
					if ri := auto.Summary.Rollup; ri != nil && ri.Edges != nil {
						composed++
						if ri.Edges.Records == 0 && ri.Edges.Biflows > 0 {
							t.Errorf("%v: edges %+v", args, ri.Edges)
						}
					}
					if ri := auto.Summary.Rollup; ri == nil || ri.Edges == nil {
						p := rollupParams(t, append(args, "--source", "auto")...)
						p.RollupsOnly = true
						opts := p.Options()
						opts.Rules = rules
						_, err := p.Report(context.Background(), s, opts, src)
						t.Logf("not composed: %v", err)
					}
					if got, want := comparableOf(t, auto), comparableOf(t, records); got != want {
						t.Errorf("%v: auto (%+v) answers\n%s\nthe records\n%s", args, auto.Summary.Rollup, got, want)
					}
					// By start (--started): the usage, totals and span are
					// the records' (whose duplicates and records of unknown
					// sampling are those of every record they read, from a
					// margin before the range to the end).
					sargs := append(args, "--started")
					sr, sa := report(sargs...), report(append(sargs, "--source", "auto")...)
					if ri := sa.Summary.Rollup; ri != nil && ri.Edges != nil {
						startedComposed++
					}
					if got, want := startedOf(t, sa), startedOf(t, sr); got != want {
						t.Errorf("%v: auto (%+v) answers\n%s\nthe records\n%s", sargs, sa.Summary.Rollup, got, want)
					}
				}
				t.Logf("%d ranges, %d with a record across a bound, %d composed; by start %d composed", n, crossed, composed, startedComposed)
				if composed < n/2 || startedComposed < n/2 {
					t.Errorf("only %d of %d ranges composed, %d by start", composed, n, startedComposed)
				}
			})
		}
	}
}

// startedOf is what a report by start from the records and one
// composed agree on: the usage table, the totals of the biflows, their
// records and span.
func startedOf(t *testing.T, r *Report) string {
	t.Helper()
	s := r.Summary
	x := struct {
		Usage                               []UsageRow
		Biflows, Flows                      int
		Packets, Octets, EstOctets, EstPkts uint64
		First, Last                         *Timestamp
		Estimate                            *Estimate
	}{r.Usage, s.Biflows, s.Flows, s.Packets, s.Octets, s.EstimatedOctets, s.EstimatedPackets, s.First, s.Last, s.Estimate}
	b, err := json.MarshalIndent(x, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

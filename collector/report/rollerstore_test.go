package report

import (
	"cmp"
	"encoding/json"
	"flag"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/store"
)

var (
	rollerDB   = flag.String("roller-db", "", "BenchmarkRollerStore: feed the records of this store (e.g. tools/bench/rollups.sh's on.db) to a Roller")
	rollerDump = flag.String("roller-dump", "", "BenchmarkRollerStore: write the cells of the last run to this file as JSON (to compare two builds)")
)

// dumpCells writes cells in a stable order, every field, floats as
// encoding/json writes them (the shortest text that reads back to the
// same bits).
func dumpCells(path string, cells map[time.Duration]map[store.RollupKey]*store.RollupCell) error {
	type entry struct {
		Res  time.Duration
		Key  store.RollupKey
		Cell *store.RollupCell
	}
	var out []entry
	for res, m := range cells {
		for k, c := range m {
			out = append(out, entry{res, k, c})
		}
	}
	slices.SortFunc(out, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.Res, b.Res), cmp.Compare(a.Key.Bucket, b.Key.Bucket), cmp.Compare(a.Key.Kind, b.Key.Kind),
			cmp.Compare(a.Key.Aggregate, b.Key.Aggregate), cmp.Compare(a.Key.Category, b.Key.Category),
			cmp.Compare(a.Key.Probe, b.Key.Probe), cmp.Compare(a.Key.SrcAS, b.Key.SrcAS), cmp.Compare(a.Key.DstAS, b.Key.DstAS))
	})
	data, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// BenchmarkRollerStore measures the Roller's CPU per record on the
// records of a real store (-roller-db, opened read only): held in the
// store's encoding, fed in batches of 4096 in the store's order (end
// time, as a collector commits them) with an Advance after each, as
// mira-collector does, with the default rules; then flushed. Reading the
// store is outside the timing.
func BenchmarkRollerStore(b *testing.B) {
	if *rollerDB == "" {
		b.Skip("-roller-db not given")
	}
	s, err := store.Open(*rollerDB, &store.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	names, err := s.NameIndex()
	if err != nil {
		b.Fatal(err)
	}
	anns, err := s.Announcements()
	if err != nil {
		b.Fatal(err)
	}
	maxDur, err := s.MaxDuration()
	if err != nil {
		b.Fatal(err)
	}
	type rec struct {
		o           store.Origin
		first, last int64
		enc         []byte
	}
	var recs []rec
	err = s.Flows(store.Query{}, func(f store.StoredFlow) error {
		recs = append(recs, rec{f.Origin, f.Record.First, f.Record.Last, store.AppendRecord(nil, &f.Record)})
		return nil
	})
	s.Close()
	if err != nil {
		b.Fatal(err)
	}
	cfg := RollupConfig{Rules: classify.Default(), RulesID: DefaultRulesFingerprint(), MaxDuration: maxDur}
	b.ResetTimer()
	for b.Loop() {
		ro := NewRoller(cfg, names, anns, nil)
		for i, r := range recs {
			if err := ro.AddEncoded(r.o, r.first, r.last, r.enc); err != nil {
				b.Fatal(err)
			}
			if i%4096 == 4095 {
				ro.Advance()
			}
		}
		ro.Advance()
		ro.Flush()
		d := ro.Take()
		if *rollerDump != "" {
			b.StopTimer()
			if err := dumpCells(*rollerDump, d.Cells); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(recs)), "ns/record")
}

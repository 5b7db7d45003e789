package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
)

// Retired rollups (see Retention in doc.go): before a worker deletes
// records, the cluster's rollup cells of the buckets those records may
// have touched are made from every holder's records, as a report from
// rollups makes them, and the retiring worker keeps that slice of cells
// (bucket "retired", key: the slice's first bucket); RetiredBucket's key
// "chain" lists the slices, contiguous, so that reports take those
// buckets' cells from the slices and the rest from the records.

// RetiredBucket holds the chain of retired rollup slices (JSON
// retiredChain under the key "chain").
const RetiredBucket = "mira_retired"

var bucketRetired = []byte("retired")

// retiredSlice is a span of rollup buckets [From, To) whose cells Worker
// keeps, made with pairing window Window and the rules of fingerprint
// Rules.
type retiredSlice struct {
	From, To int64
	Worker   string
	Window   time.Duration
	Rules    string
}

// retiredChain: the slices, each starting where the previous ended,
// the first at Start (math.MinInt64 when no record had been deleted
// before the first slice was made).
type retiredChain struct {
	Start  int64
	Slices []retiredSlice
}

func (c *retiredChain) end() int64 {
	if len(c.Slices) == 0 {
		return c.Start
	}
	return c.Slices[len(c.Slices)-1].To
}

// trim drops the slices (but the last) whose every cell rollup
// retention at limits deleted, both resolutions: the chain then starts
// after them.
func (c *retiredChain) trim(limits map[string]int64) {
	lm, okm := limits["1m"]
	lh, okh := limits["1h"]
	if !okm || !okh {
		return
	}
	for len(c.Slices) > 1 && c.Slices[0].To <= min(lm, lh) {
		c.Start = c.Slices[0].To
		c.Slices = c.Slices[1:]
	}
}

// usable says whether the chain's slices hold the cells of a report with
// window and rules fingerprint rulesID, for every bucket before end.
func (c *retiredChain) usable(window time.Duration, rulesID string) bool {
	if c == nil || len(c.Slices) == 0 {
		return false
	}
	for _, s := range c.Slices {
		if s.Window != window || s.Rules != rulesID {
			return false
		}
	}
	return true
}

// loadChain reads the chain and its revision (nil, 0 when there is
// none).
func loadChain(ctx context.Context, js jetstream.JetStream) (*retiredChain, uint64, error) {
	kv, err := js.KeyValue(ctx, RetiredBucket)
	if err != nil {
		return nil, 0, err
	}
	e, err := kv.Get(ctx, "chain")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var c retiredChain
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return nil, 0, fmt.Errorf("cluster: %s chain: %w", RetiredBucket, err)
	}
	return &c, e.Revision(), nil
}

func normWindow(w time.Duration) time.Duration {
	if w <= 0 {
		return report.DefaultWindow
	}
	return w
}

// retire makes sure the chain covers the buckets records ending before
// cutoff may have touched (prunedLimits) before w deletes them: if not,
// it has the cluster's cells made (with w.Rules, the default window and
// the announcements on the options stream, as a report from rollups
// with those rules), keeps the slice from the chain's end to that bound
// and appends it to the chain.
func (w *Worker) retire(ctx context.Context, cutoff int64) error {
	if w.nc == nil || w.js == nil {
		return nil
	}
	// Another worker may append to the chain meanwhile: read it again.
	var err error
	for range 3 {
		if err = w.retireOnce(ctx, cutoff); !errors.Is(err, errChainMoved) {
			return err
		}
	}
	return err
}

// errChainMoved: the chain changed between reading and writing it.
var errChainMoved = errors.New("the chain of retired rollups changed meanwhile")

// retireOnce is one attempt of retire.
func (w *Worker) retireOnce(ctx context.Context, cutoff int64) error {
	window := report.DefaultWindow
	want := prunedLimits(cutoff, window)["1h"]
	if now := time.Now().UnixNano(); want > now-mod(now, int64(time.Hour)) {
		// Cells of this hour are still being made: records deleted
		// this young (max_size too small for the rate) leave their
		// hours to the records.
		return fmt.Errorf("records of the current hour deleted (retention max_size too small for the rate?): not retiring the rollups of %s", time.Unix(0, want).UTC().Format(time.RFC3339))
	}
	chain, rev, err := loadChain(ctx, w.js)
	if err != nil {
		return err
	}
	if chain != nil && chain.end() >= want {
		return nil
	}
	dir, err := os.MkdirTemp("", "mira-retire-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, done, err := tempStore(ctx, w.js, dir)
	if err != nil {
		return err
	}
	defer done()
	spec := report.PartSpec{Window: window, Rules: w.Rules, Port: -1, Domain: -1}
	if spec.Names, err = st.NameIndex(); err != nil {
		return err
	}
	if spec.Announcements, err = st.Announcements(); err != nil {
		return err
	}
	cfg, err := rollupConfig(&spec)
	if err != nil {
		return err
	}
	rs := ReportStats{}
	if rs.Workers, err = workerNames(ctx, w.js); err != nil {
		return err
	}
	cc, err := rollupCells(ctx, w.nc, w.js, spec, cfg, &rs, false)
	if err != nil {
		return err
	}
	// Where the cells are whole: after the chain, or after what was
	// deleted before it (a chain whose slices do not hold these rules'
	// cells, or a gap, starts again).
	from := int64(math.MinInt64)
	if chain != nil && chain.usable(window, cfg.RulesID) && chain.end() >= cc.recordBound {
		from = chain.end()
	} else {
		from = cc.recordBound
		chain = &retiredChain{Start: from}
	}
	if chain.Slices == nil {
		chain.Start = from
	}
	if from >= want {
		return nil
	}
	slice := cellsIn(cc.cells, from, want)
	// A slice of this worker's that ends here is extended (the chain
	// grows by one entry per change of the retiring worker); the cells
	// a reporter adds are those of [From, To) only, so a slice written
	// here whose chain update fails adds nothing.
	at := from
	if n := len(chain.Slices); n > 0 && chain.Slices[n-1].Worker == w.Name && chain.Slices[n-1].To == from {
		at = chain.Slices[n-1].From
	}
	err = w.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucketRetired)
		if err != nil {
			return err
		}
		key := binary.BigEndian.AppendUint64(nil, uint64(at)^(1<<63))
		if at != from {
			if v := bk.Get(key); v != nil {
				var prev Cells
				if err := gob.NewDecoder(bytes.NewReader(v)).Decode(&prev); err != nil {
					return err
				}
				addCells(slice, cellsIn(prev, at, from))
			}
		}
		var b bytes.Buffer
		if err := gob.NewEncoder(&b).Encode(slice); err != nil {
			return err
		}
		return bk.Put(key, b.Bytes())
	})
	if err != nil {
		return err
	}
	if at != from {
		chain.Slices[len(chain.Slices)-1].To = want
	} else {
		chain.Slices = append(chain.Slices, retiredSlice{From: from, To: want, Worker: w.Name, Window: window, Rules: cfg.RulesID})
	}
	chain.trim(w.retentionLimits(time.Now()))
	v, err := json.Marshal(chain)
	if err != nil {
		return err
	}
	kv, err := w.js.KeyValue(ctx, RetiredBucket)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = kv.Create(ctx, "chain", v)
	} else {
		_, err = kv.Update(ctx, "chain", v, rev)
	}
	if err != nil {
		return fmt.Errorf("cluster: %s chain: %w (%w)", RetiredBucket, err, errChainMoved)
	}
	w.log.Info("rollups retired", "from", time.Unix(0, from).UTC(), "to", time.Unix(0, want).UTC())
	return nil
}

// retiredCells returns the cells of w's slices starting at froms (a
// slice missing is left out: the reporter then does not use the chain).
func (w *Worker) retiredCells(froms []int64) (map[int64]Cells, error) {
	if len(froms) == 0 {
		return nil, nil
	}
	out := map[int64]Cells{}
	err := w.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketRetired)
		if bk == nil {
			return nil
		}
		for _, f := range froms {
			v := bk.Get(binary.BigEndian.AppendUint64(nil, uint64(f)^(1<<63)))
			if v == nil {
				continue
			}
			var c Cells
			if err := gob.NewDecoder(bytes.NewReader(v)).Decode(&c); err != nil {
				return err
			}
			out[f] = c
		}
		return nil
	})
	return out, err
}

// mergeRetired replaces the cells of total before the chain's end with
// its slices (got: the slices' cells by their first bucket), when every
// slice came; it returns the chain's start as the bound before which
// cells are missing, and false when a slice did not come.
func mergeRetired(total Cells, chain *retiredChain, got map[int64]Cells) (int64, bool) {
	for _, s := range chain.Slices {
		if got[s.From] == nil {
			return 0, false
		}
	}
	end := chain.end()
	dropCells(total, map[string]int64{"1m": end, "1h": end})
	for _, s := range chain.Slices {
		addCells(total, cellsIn(got[s.From], s.From, s.To))
	}
	return chain.Start, true
}

// cellsIn returns c's cells of buckets in [from, to) (shared, not
// copied).
func cellsIn(c Cells, from, to int64) Cells {
	out := newCells()
	for res, m := range c {
		if out[res] == nil {
			out[res] = map[store.RollupKey]*store.RollupCell{}
		}
		for k, x := range m {
			if k.Bucket >= from && k.Bucket < to {
				out[res][k] = x
			}
		}
	}
	return out
}

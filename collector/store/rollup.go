package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/internal/sum"
)

// Rollups are usage totals kept per time bucket at two resolutions
// (RollupMinute, RollupHour), maintained as records arrive by
// collector/report's Roller (the consolidation path: biflows paired,
// deduplicated, scaled, named and classified as a report over the
// records would), so that usage reports over long ranges read a few
// thousand cells instead of every record. Each resolution is a bbolt
// bucket ("rollup1m", "rollup1h"); a cell is keyed by its bucket start
// and its dimensions (RollupKey) and holds the totals of the biflows
// that started in the bucket (RollupCell). Each resolution has its own
// retention (PruneRollups). The meta key "rollup" holds RollupMeta: the
// parameters the rollups were made with (a report with other ones
// cannot use them) and how far they are complete.

// Rollup resolutions.
const (
	RollupMinute = time.Minute
	RollupHour   = time.Hour
)

// RollupResolutions are the resolutions kept, finest first.
var RollupResolutions = []time.Duration{RollupMinute, RollupHour}

// RollupVersion is the version byte of every rollup value: a reader
// refuses (counts and skips) cells of a newer version. Version 2 keeps
// the estimator sums exactly (sum.Exact); a version 1 cell's float64
// sums are read as they are.
const RollupVersion = 2

var (
	bucketRollup1m = []byte("rollup1m")
	bucketRollup1h = []byte("rollup1h")
	keyRollupMeta  = []byte("rollup")
)

func rollupBucket(res time.Duration) ([]byte, error) {
	switch res {
	case RollupMinute:
		return bucketRollup1m, nil
	case RollupHour:
		return bucketRollup1h, nil
	}
	return nil, fmt.Errorf("store: no rollups of resolution %v (want 1m or 1h)", res)
}

// Rollup cell kinds (RollupKey.Kind).
const (
	// RollupBiflows cells total the biflows that started in the bucket.
	RollupBiflows uint8 = 0
	// RollupRecords cells count the records (all observations, the
	// duplicates included) that started in the bucket: only Biflows
	// (here: records), Unscaled, First and Last are used.
	RollupRecords uint8 = 1
)

// RollupKey names one rollup cell.
type RollupKey struct {
	Bucket    int64 // bucket start, ns since the Unix epoch
	Kind      uint8
	Aggregate string
	Category  string
	// Probe names the probes whose observations were kept
	// (exporter/domain, ";"-joined, as report's --by probe).
	Probe        string
	SrcAS, DstAS uint32
}

// RollupUsage totals a set of biflows (report.UsageRow and Summary are
// made from it).
type RollupUsage struct {
	Biflows uint64
	Flows   uint64 // records of the kept observations (report.Biflow.Flows)
	Packets uint64
	Octets  uint64
	Hits    uint64 // symptom occurrences (RollupSymptom only)
	Merged  uint64
	// Unscaled counts records of unknown sampling, Late those that
	// reached the rollups after their horizon (RollupRecords cells).
	Unscaled, Late uint64
	// Sampled: some biflow was sampled; PacketSampled: packet-sampled.
	Sampled, PacketSampled bool
	// The estimator sums and variances (consolidate.Estimate), added
	// exactly: a cell, or the sum of cells, holds the same bits as the
	// biflows' estimates added one by one in any order.
	EstBiflows, EstPackets, EstOctets sum.Exact
	VarBiflows, VarPackets, VarOctets sum.Exact
	First, Last                       int64 // earliest start, latest end
}

// Add adds o to u.
func (u *RollupUsage) Add(o *RollupUsage) {
	if o.Biflows == 0 && o.Flows == 0 {
		return
	}
	if u.Biflows == 0 && u.Flows == 0 {
		u.First, u.Last = o.First, o.Last
	} else {
		u.First, u.Last = min(u.First, o.First), max(u.Last, o.Last)
	}
	u.Biflows = satAddU(u.Biflows, o.Biflows)
	u.Flows = satAddU(u.Flows, o.Flows)
	u.Packets = satAddU(u.Packets, o.Packets)
	u.Octets = satAddU(u.Octets, o.Octets)
	u.Hits = satAddU(u.Hits, o.Hits)
	u.Merged = satAddU(u.Merged, o.Merged)
	u.Unscaled = satAddU(u.Unscaled, o.Unscaled)
	u.Late = satAddU(u.Late, o.Late)
	u.Sampled = u.Sampled || o.Sampled
	u.PacketSampled = u.PacketSampled || o.PacketSampled
	u.EstBiflows.Merge(&o.EstBiflows)
	u.EstPackets.Merge(&o.EstPackets)
	u.EstOctets.Merge(&o.EstOctets)
	u.VarBiflows.Merge(&o.VarBiflows)
	u.VarPackets.Merge(&o.VarPackets)
	u.VarOctets.Merge(&o.VarOctets)
}

func satAddU(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint64
}

// RollupSymptom totals the biflows of a cell that carry one symptom.
type RollupSymptom struct {
	Name string
	RollupUsage
}

// RollupCell is one cell: the totals of its biflows and, per symptom, of
// those that carry it (sorted by name).
type RollupCell struct {
	RollupUsage
	Symptoms []RollupSymptom
}

// Add adds o to c.
func (c *RollupCell) Add(o *RollupCell) {
	c.RollupUsage.Add(&o.RollupUsage)
	for i := range o.Symptoms {
		s := &o.Symptoms[i]
		j, found := slices.BinarySearchFunc(c.Symptoms, s.Name, func(x RollupSymptom, n string) int {
			return cmpString(x.Name, n)
		})
		if !found {
			c.Symptoms = slices.Insert(c.Symptoms, j, RollupSymptom{Name: s.Name})
		}
		c.Symptoms[j].Add(&s.RollupUsage)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// RollupMeta describes the rollups of a store.
type RollupMeta struct {
	Version int `json:"version"`
	// Window is the pairing window, Rules and AS identify the
	// classification rules and the prefix to AS table the rollups were
	// made with (report.Fingerprint); a report with others cannot use
	// them.
	Window time.Duration `json:"window"`
	Rules  string        `json:"rules"`
	AS     string        `json:"as,omitempty"`
	// CompleteBefore: every biflow that started before it is in the
	// rollups (math.MaxInt64 when every stored record is). Biflows that
	// started later may still be pending in the collector.
	CompleteBefore int64 `json:"complete_before"`
	// Fed: every stored record that started before it was fed to the
	// rollups in start order (the rollups' horizon).
	Fed int64 `json:"fed"`
	// Records fed in all; Late: records that arrived after the horizon
	// had passed their start (their biflows may differ from a report's).
	Records uint64 `json:"records"`
	Late    uint64 `json:"late"`
	// Clean is false while a collector maintains the rollups and true
	// once it stopped and wrote everything: a store found unclean at
	// start (a crash) has its rollups rebuilt from the records.
	Clean bool `json:"clean"`
	// PrunedBefore, per resolution (its name, "1m" or "1h"): the cells
	// before this bucket start were deleted by retention.
	PrunedBefore map[string]int64 `json:"pruned_before,omitempty"`
}

func resName(res time.Duration) string {
	if res == RollupHour {
		return "1h"
	}
	return "1m"
}

// PrunedBefore returns the start of the oldest bucket of res that
// retention kept (math.MinInt64 when none was pruned).
func (m *RollupMeta) PrunedBeforeAt(res time.Duration) int64 {
	if v, ok := m.PrunedBefore[resName(res)]; ok {
		return v
	}
	return math.MinInt64
}

// ErrNoRollups: the store keeps no rollups (written before they existed,
// or never fed).
var ErrNoRollups = errors.New("store: no rollups (a store written before rollups: rebuild with mira rollup --db FILE)")

// RollupMeta returns the store's rollup description, ErrNoRollups when
// it has none.
func (s *Store) RollupMeta() (RollupMeta, error) {
	var m RollupMeta
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyRollupMeta)
		if v == nil {
			return ErrNoRollups
		}
		return json.Unmarshal(v, &m)
	})
	if err == nil && m.Version > RollupVersion {
		return m, fmt.Errorf("store: rollups of version %d, this build reads up to %d", m.Version, RollupVersion)
	}
	return m, err
}

// RollupDelta is what a Roller adds to the rollups in one write.
type RollupDelta struct {
	Cells map[time.Duration]map[RollupKey]*RollupCell
	Meta  RollupMeta
}

// PutRollups adds d's cells to the stored ones and replaces the meta, in
// one transaction.
func (s *Store) PutRollups(d *RollupDelta) error {
	err := s.update(func(tx *bolt.Tx) error {
		// Retention (PruneRollups) may have pruned since the writer
		// read the meta: the later bound stays.
		m := d.Meta
		m.PrunedBefore = maps.Clone(d.Meta.PrunedBefore)
		if v := tx.Bucket(bucketMeta).Get(keyRollupMeta); v != nil {
			var old RollupMeta
			if err := json.Unmarshal(v, &old); err == nil {
				for res, t := range old.PrunedBefore {
					if m.PrunedBefore == nil {
						m.PrunedBefore = map[string]int64{}
					}
					if cur, ok := m.PrunedBefore[res]; !ok || t > cur {
						m.PrunedBefore[res] = t
					}
				}
			}
		}
		meta, err := json.Marshal(&m)
		if err != nil {
			return err
		}
		for res, cells := range d.Cells {
			name, err := rollupBucket(res)
			if err != nil {
				return err
			}
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			keys := make([]RollupKey, 0, len(cells))
			for k := range cells {
				keys = append(keys, k)
			}
			// Key order: bbolt writes sequential keys cheaply.
			enc := make(map[RollupKey][]byte, len(keys))
			for _, k := range keys {
				enc[k] = appendRollupKey(nil, &k)
			}
			slices.SortFunc(keys, func(a, b RollupKey) int { return bytes.Compare(enc[a], enc[b]) })
			for _, k := range keys {
				c := *cells[k]
				c.Symptoms = slices.Clone(c.Symptoms)
				if v := b.Get(enc[k]); v != nil {
					var old RollupCell
					if err := decodeRollupCell(v, &old); err != nil {
						return fmt.Errorf("rollup cell %x: %w", enc[k], err)
					}
					old.Add(&c)
					c = old
				}
				// bbolt keeps the value until the commit: one buffer each.
				if err := b.Put(enc[k], appendRollupCell(nil, &c)); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketMeta).Put(keyRollupMeta, meta)
	})
	if err != nil {
		return fmt.Errorf("store: put rollups: %w", err)
	}
	return nil
}

// ResetRollups deletes every rollup cell whose bucket starts at or after
// from, and the meta (a rebuild follows).
func (s *Store) ResetRollups(from int64) error {
	return s.update(func(tx *bolt.Tx) error {
		for _, res := range RollupResolutions {
			name, _ := rollupBucket(res)
			b := tx.Bucket(name)
			if b == nil {
				continue
			}
			lo := timeKey(nil, from)
			var keys [][]byte
			c := b.Cursor()
			for k, _ := c.Seek(lo); k != nil; k, _ = c.Next() {
				keys = append(keys, append([]byte(nil), k...))
			}
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketMeta).Delete(keyRollupMeta)
	})
}

// Rollups calls fn with every cell of resolution res whose bucket starts
// in [from, to) (to <= from: no upper bound). Cells that fail to decode
// are counted (DecodeErrors, "rollup: ...") and skipped.
func (s *Store) Rollups(res time.Duration, from, to int64, fn func(k *RollupKey, c *RollupCell) error) error {
	name, err := rollupBucket(res)
	if err != nil {
		return err
	}
	return s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		cur := b.Cursor()
		var k RollupKey
		var cell RollupCell
		for kb, v := cur.Seek(timeKey(nil, from)); kb != nil; kb, v = cur.Next() {
			if err := decodeRollupKey(kb, &k); err != nil {
				s.countDecodeError("rollup: " + err.Error())
				continue
			}
			if to > from && k.Bucket >= to {
				break
			}
			cell.Symptoms = cell.Symptoms[:0]
			if err := decodeRollupCell(v, &cell); err != nil {
				s.countDecodeError("rollup: " + err.Error())
				continue
			}
			if err := fn(&k, &cell); err != nil {
				if errors.Is(err, ErrStop) {
					return nil
				}
				return err
			}
		}
		return nil
	})
}

// PruneRollups deletes the cells of res whose bucket ends before cutoff
// and notes it in the meta (a report then cannot answer from them).
func (s *Store) PruneRollups(res time.Duration, cutoff time.Time) (int, error) {
	name, err := rollupBucket(res)
	if err != nil {
		return 0, err
	}
	limit := cutoff.UnixNano()
	limit -= mod64(limit, int64(res)) // whole buckets only
	n := 0
	err = s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		var keys [][]byte
		c := b.Cursor()
		lk := timeKey(nil, limit)
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], lk) < 0; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keyRollupMeta)
		if v == nil {
			return nil
		}
		var m RollupMeta
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if m.PrunedBefore == nil {
			m.PrunedBefore = map[string]int64{}
		}
		if limit > m.PrunedBefore[resName(res)] || m.PrunedBefore[resName(res)] == 0 {
			m.PrunedBefore[resName(res)] = limit
		}
		out, err := json.Marshal(&m)
		if err != nil {
			return err
		}
		return meta.Put(keyRollupMeta, out)
	})
	if err != nil {
		return n, fmt.Errorf("store: prune %s rollups: %w", resName(res), err)
	}
	return n, nil
}

func mod64(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}

// Key: bucket start (8 bytes, time order), kind, then the dimensions
// (uvarint-length strings, uvarint AS numbers).
func appendRollupKey(dst []byte, k *RollupKey) []byte {
	dst = timeKey(dst, k.Bucket)
	dst = append(dst, k.Kind)
	dst = appendString(dst, k.Aggregate)
	dst = appendString(dst, k.Category)
	dst = appendString(dst, k.Probe)
	dst = binary.AppendUvarint(dst, uint64(k.SrcAS))
	return binary.AppendUvarint(dst, uint64(k.DstAS))
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

type rollupReader struct {
	b   []byte
	err error
}

func (r *rollupReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rollupReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rollupReader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errors.New("string beyond the end")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *rollupReader) float() float64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.err = errors.New("float beyond the end")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *rollupReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.err = errors.New("byte beyond the end")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func decodeRollupKey(b []byte, k *RollupKey) error {
	if len(b) < 9 {
		return errors.New("short key")
	}
	k.Bucket = keyTime(b)
	k.Kind = b[8]
	r := rollupReader{b: b[9:]}
	k.Aggregate = r.string()
	k.Category = r.string()
	k.Probe = r.string()
	k.SrcAS = uint32(min(r.uvarint(), math.MaxUint32))
	k.DstAS = uint32(min(r.uvarint(), math.MaxUint32))
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes in key")
	}
	return r.err
}

func appendUsage(dst []byte, u *RollupUsage) []byte {
	var flags byte
	if u.Sampled {
		flags |= 1
	}
	if u.PacketSampled {
		flags |= 2
	}
	dst = append(dst, flags)
	for _, v := range [...]uint64{u.Biflows, u.Flows, u.Packets, u.Octets, u.Hits, u.Merged, u.Unscaled, u.Late} {
		dst = binary.AppendUvarint(dst, v)
	}
	dst = binary.AppendVarint(dst, u.First)
	dst = binary.AppendVarint(dst, u.Last-u.First)
	if flags&1 != 0 {
		// Each sum: its fixed point (high, low), then what it holds
		// apart (sum.Exact.Over), 0 but for absurd inputs.
		for _, e := range [...]*sum.Exact{&u.EstBiflows, &u.EstPackets, &u.EstOctets, &u.VarBiflows, &u.VarPackets, &u.VarOctets} {
			dst = binary.AppendUvarint(dst, e.Hi)
			dst = binary.AppendUvarint(dst, e.Lo)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.Over))
		}
	}
	return dst
}

// usage reads a RollupUsage of cell version v: version 1 kept the
// estimator sums as float64 (added in the order the biflows came).
func (r *rollupReader) usage(u *RollupUsage, v byte) {
	flags := r.byte()
	u.Sampled, u.PacketSampled = flags&1 != 0, flags&2 != 0
	u.Biflows, u.Flows, u.Packets, u.Octets = r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
	u.Hits, u.Merged, u.Unscaled, u.Late = r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
	u.First = r.varint()
	u.Last = u.First + r.varint()
	sums := [...]*sum.Exact{&u.EstBiflows, &u.EstPackets, &u.EstOctets, &u.VarBiflows, &u.VarPackets, &u.VarOctets}
	switch {
	case !u.Sampled:
		// Unsampled, the estimates are the observed counts.
		u.EstBiflows, u.EstPackets, u.EstOctets = sum.OfUint(u.Biflows), sum.OfUint(u.Packets), sum.OfUint(u.Octets)
		u.VarBiflows, u.VarPackets, u.VarOctets = sum.Exact{}, sum.Exact{}, sum.Exact{}
	case v == 1:
		for _, e := range sums {
			*e = sum.Of(r.float())
		}
	default:
		for _, e := range sums {
			*e = sum.Exact{Hi: r.uvarint(), Lo: r.uvarint(), Over: r.float()}
		}
	}
}

// Value: version, usage, symptom count, then name and usage per symptom.
func appendRollupCell(dst []byte, c *RollupCell) []byte {
	dst = append(dst, RollupVersion)
	dst = appendUsage(dst, &c.RollupUsage)
	dst = binary.AppendUvarint(dst, uint64(len(c.Symptoms)))
	for i := range c.Symptoms {
		dst = appendString(dst, c.Symptoms[i].Name)
		dst = appendUsage(dst, &c.Symptoms[i].RollupUsage)
	}
	return dst
}

// maxRollupSymptoms bounds the symptoms a decoded cell may claim.
const maxRollupSymptoms = 1 << 16

func decodeRollupCell(b []byte, c *RollupCell) error {
	r := rollupReader{b: b}
	v := r.byte()
	if r.err == nil && (v < 1 || v > RollupVersion) {
		return fmt.Errorf("cell version %d (this build reads 1 to %d)", v, RollupVersion)
	}
	r.usage(&c.RollupUsage, v)
	n := r.uvarint()
	if n > maxRollupSymptoms {
		return fmt.Errorf("%d symptoms in a cell", n)
	}
	c.Symptoms = c.Symptoms[:0]
	for i := uint64(0); i < n && r.err == nil; i++ {
		var s RollupSymptom
		s.Name = r.string()
		r.usage(&s.RollupUsage, v)
		c.Symptoms = append(c.Symptoms, s)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes in cell")
	}
	return r.err
}

// MaxDuration returns the longest flow duration stored so far (ns): a
// record that ends at t started at or after t minus it.
func (s *Store) MaxDuration() (int64, error) {
	var d int64
	err := s.view(func(tx *bolt.Tx) error {
		d = storedInt(tx.Bucket(bucketMeta), keyMaxDur)
		return nil
	})
	return d, err
}

// RollupSize returns the cells kept at resolution res and the bytes
// their pages hold (bbolt's in-use leaf and branch bytes).
func (s *Store) RollupSize(res time.Duration) (cells int, bytes int64, err error) {
	name, err := rollupBucket(res)
	if err != nil {
		return 0, 0, err
	}
	err = s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(name); b != nil {
			st := b.Stats()
			cells = st.KeyN
			bytes = int64(st.LeafInuse + st.BranchInuse)
		}
		return nil
	})
	return cells, bytes, err
}

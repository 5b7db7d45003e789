package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/mira-project/mira/flow"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketSampling holds each origin's sampling announcements: key =
// originKey, value = JSON list of Announcement in arrival order. The
// bucket is created by the first PutAnnouncements, so stores written
// before it existed read as "no announcements" (no schema change).
var bucketSampling = []byte("sampling")

// maxAnnouncements bounds the history kept per origin: the first
// announcement (which applies retroactively to records that came before
// it) and the latest ones.
const maxAnnouncements = 64

// Announcement is a sampling configuration an exporter announced for an
// observation domain in its options records, kept so that reports can
// scale records that carry no sampling of their own, including records
// that arrived before the announcement (see collector/report).
type Announcement struct {
	// At is when the collector received it.
	At time.Time `json:"at"`
	// Since is a record time (ns since the Unix epoch): the latest end
	// of the origin's records the collector had received before the
	// announcement, or At when it had none. Records ending after it were
	// (mostly) exported under this announcement.
	Since int64 `json:"since"`
	// Interval is N of 1-in-N selection (0 or 1: unsampled); Flow says
	// whole flows are selected by hash rather than single packets.
	Interval uint32 `json:"interval"`
	Flow     bool   `json:"flow,omitempty"`
}

// Sampled says the announcement is of a sampling configuration.
func (a Announcement) Sampled() bool { return a.Interval > 1 }

// PutAnnouncements appends announcements to their origins' histories.
func (s *Store) PutAnnouncements(m map[Origin][]Announcement) error {
	if len(m) == 0 {
		return nil
	}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSampling)
		if err != nil {
			return err
		}
		for o, add := range m {
			k := originKey(o)
			cur, err := decodeAnnouncements(b.Get(k))
			if err != nil {
				return err
			}
			cur = append(cur, add...)
			if n := len(cur); n > maxAnnouncements {
				cur = append(cur[:1], cur[n-maxAnnouncements+1:]...)
			}
			v, err := json.Marshal(cur)
			if err != nil {
				return err
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: put sampling announcements: %w", err)
	}
	return nil
}

func decodeAnnouncements(v []byte) ([]Announcement, error) {
	if v == nil {
		return nil, nil
	}
	var a []Announcement
	if err := json.Unmarshal(v, &a); err != nil {
		return nil, fmt.Errorf("decode sampling announcements: %w", err)
	}
	return a, nil
}

// Announcements returns every origin's sampling announcements in
// arrival order.
func (s *Store) Announcements() (map[Origin][]Announcement, error) {
	out := map[Origin][]Announcement{}
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSampling)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) < 4 {
				return fmt.Errorf("bad sampling key %x", k)
			}
			a, err := decodeAnnouncements(v)
			if err != nil {
				return err
			}
			out[Origin{Domain: binary.BigEndian.Uint32(k), Exporter: string(k[4:])}] = a
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: sampling announcements: %w", err)
	}
	return out, nil
}

// maxTracked bounds the origins an AnnouncementTracker follows.
const maxTracked = 1 << 16

// AnnouncementTracker makes a collector's sampling announcements: per
// origin (K: whatever the caller keys exporters by) it follows the latest
// record end received and the sampling last announced, and says when a
// domain's sampling is new or changed. Not safe for concurrent use.
type AnnouncementTracker[K comparable] struct {
	m map[K]*tracked
}

type tracked struct {
	haveNames bool // a name announcement was made
	names     Names
	namesAt   int64  // its Since
	namesRecs uint64 // recs when it was made
	recs      uint64 // records noted
	have      bool   // an announcement was made
	cur       Announcement
	lastEnd   int64 // latest record end received
	haveRecs  bool
}

func (t *AnnouncementTracker[K]) get(k K) *tracked {
	st := t.m[k]
	if st == nil {
		if t.m == nil {
			t.m = map[K]*tracked{}
		}
		if len(t.m) >= maxTracked {
			// Bounded against floods of origins (random observation
			// domains): forget one at random. Forgetting costs at most
			// a repeated announcement.
			for x := range t.m {
				delete(t.m, x)
				break
			}
		}
		st = &tracked{}
		t.m[k] = st
	}
	return st
}

// Records notes origin k's records (for Announcement.Since and
// NameAnnouncement.Since): the latest end of every record counts, so
// that each record received before an announcement ends no later than
// its Since (records come roughly, not exactly, in end order: a probe
// that ends every flow at once hands them over by start).
func (t *AnnouncementTracker[K]) Records(k K, recs []flow.Record) {
	if len(recs) == 0 {
		return
	}
	last := recs[0].Last
	for i := range recs {
		last = max(last, recs[i].Last)
	}
	t.RecordsEnding(k, len(recs), last)
}

// RecordsEnding is Records for n records (n > 0) whose latest end is
// last.
func (t *AnnouncementTracker[K]) RecordsEnding(k K, n int, last int64) {
	st := t.get(k)
	st.recs += uint64(n)
	if !st.haveRecs {
		st.lastEnd, st.haveRecs = last, true
	}
	st.lastEnd = max(st.lastEnd, last)
}

// Sampling notes that origin k announced 1-in-interval sampling (flow:
// of whole flows) at time at, and returns the announcement to store when
// that is new for k or differs from the last one.
func (t *AnnouncementTracker[K]) Sampling(k K, interval uint32, flow bool, at time.Time) (Announcement, bool) {
	st := t.get(k)
	if st.have && st.cur.Interval == interval && st.cur.Flow == flow {
		return Announcement{}, false
	}
	a := Announcement{At: at.UTC(), Interval: interval, Flow: flow, Since: at.UnixNano()}
	if st.haveRecs {
		a.Since = st.lastEnd
	}
	st.have, st.cur = true, a
	return a, true
}

// HasRecords says origin k's records were noted (Records).
func (t *AnnouncementTracker[K]) HasRecords(k K) bool {
	st := t.m[k]
	return st != nil && st.haveRecs
}

// Names notes that origin k announced names n (its whole set, whose maps
// the caller does not change afterwards) at time at, and returns the
// name announcement to store when n differs from what k announced last.
// When no records of k came since the last one, the new announcement has
// the same Since, and the store replaces the last one with it.
func (t *AnnouncementTracker[K]) Names(k K, n Names, at time.Time) (NameAnnouncement, bool) {
	st := t.get(k)
	if n.Empty() && !st.haveNames || st.haveNames && st.names.Equal(n) {
		return NameAnnouncement{}, false
	}
	a := NameAnnouncement{At: at.UTC(), Since: at.UnixNano(), Names: n}
	switch {
	case st.haveNames && st.recs == st.namesRecs:
		// No records since the last one (names arrive one options
		// record at a time): it is replaced (PutNameAnnouncements).
		a.Since = st.namesAt
	case st.haveRecs:
		a.Since = st.lastEnd
	}
	st.haveNames, st.names, st.namesAt, st.namesRecs = true, n, a.Since, st.recs
	return a, true
}

package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	bolt "go.etcd.io/bbolt"
)

// keyNames (meta bucket) holds the one merged set of names that stores
// of schema version 1 kept for every origin. Reports use it only for
// origins that have no names of their own (bucketNames): the names of
// an old file read as before.
var keyNames = []byte("names")

// bucketNames holds each origin's name announcements: key = originKey,
// value = JSON list of NameAnnouncement in arrival order.
var bucketNames = []byte("names")

// maxNameAnnouncements bounds the history kept per origin, like
// maxAnnouncements: the first and the latest ones.
const maxNameAnnouncements = 16

// Names map the ids in flow records to names, as the probes announce them
// in IPFIX options records. Ids mean something only for their origin
// (exporter and observation domain): two probes may have different
// symptom databases. See NameAnnouncement.
type Names struct {
	Symptoms   map[uint16]string `json:"symptoms,omitempty"`
	Categories map[uint16]string `json:"categories,omitempty"`
	Aggregates map[uint32]string `json:"aggregates,omitempty"`
}

func mergeNames[K comparable](dst, src map[K]string) map[K]string {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[K]string, len(src))
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

// Equal says n and o name the same ids alike.
func (n Names) Equal(o Names) bool {
	return maps.Equal(n.Symptoms, o.Symptoms) && maps.Equal(n.Categories, o.Categories) &&
		maps.Equal(n.Aggregates, o.Aggregates)
}

// Empty says n names nothing.
func (n Names) Empty() bool {
	return len(n.Symptoms)+len(n.Categories)+len(n.Aggregates) == 0
}

// NameAnnouncement is the whole set of names an origin announced in its
// options records, as the collector held it after a change, with when
// it arrived. Like a sampling Announcement it applies to the origin's
// records that end at or after Since, until the next one; the first
// applies to the records that came before it too.
type NameAnnouncement struct {
	// At is when the collector received it.
	At time.Time `json:"at"`
	// Since is a record time (ns since the Unix epoch): the latest end
	// of the origin's records received before the announcement, or At
	// when there were none.
	Since int64 `json:"since"`
	Names
}

// NameIndex resolves the ids of a record of an origin at a time to
// names: the origin's announcement in force at that time, else the
// Fallback names (the merged names of a version 1 store).
type NameIndex struct {
	Origins  map[Origin][]NameAnnouncement
	Fallback Names
}

// At returns the names in force for origin o's records ending at t:
// the last announcement whose Since is before t (a record that ends at
// Since was received before the announcement).
func (x *NameIndex) At(o Origin, t int64) *Names {
	list := x.Origins[o]
	if len(list) == 0 {
		return &x.Fallback
	}
	a := &list[0]
	for i := range list[1:] {
		if list[1+i].Since < t {
			a = &list[1+i]
		}
	}
	return &a.Names
}

// PutNameAnnouncements appends name announcements to their origins'
// histories; one with the Since of the origin's last one replaces it
// (AnnouncementTracker.Names).
func (s *Store) PutNameAnnouncements(m map[Origin][]NameAnnouncement) error {
	if len(m) == 0 {
		return nil
	}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketNames)
		if err != nil {
			return err
		}
		for o, add := range m {
			k := originKey(o)
			var cur []NameAnnouncement
			if v := b.Get(k); v != nil {
				if err := json.Unmarshal(v, &cur); err != nil {
					return fmt.Errorf("decode names of %s/%d: %w", o.Exporter, o.Domain, err)
				}
			}
			for _, a := range add {
				if n := len(cur); n > 0 && cur[n-1].Since == a.Since {
					// Completes the last one (no records in between).
					cur[n-1] = a
					continue
				}
				cur = append(cur, a)
			}
			if n := len(cur); n > maxNameAnnouncements {
				cur = append(cur[:1], cur[n-maxNameAnnouncements+1:]...)
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
		return fmt.Errorf("store: put names: %w", err)
	}
	return nil
}

// NameIndex returns every origin's name announcements, with the merged
// names of a version 1 store as the fallback.
func (s *Store) NameIndex() (*NameIndex, error) {
	x := &NameIndex{Origins: map[Origin][]NameAnnouncement{}}
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		if x.Fallback, err = decodeNames(tx.Bucket(bucketMeta).Get(keyNames)); err != nil {
			return err
		}
		b := tx.Bucket(bucketNames)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) < 4 {
				return fmt.Errorf("bad names key %x", k)
			}
			var l []NameAnnouncement
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("decode names: %w", err)
			}
			x.Origins[Origin{Domain: binary.BigEndian.Uint32(k), Exporter: string(k[4:])}] = l
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: names: %w", err)
	}
	return x, nil
}

// PutNames merges n into the merged names of version 1 stores, which
// apply to origins without names of their own; a name given for an id
// that already has one replaces it. Collectors store names per origin
// (PutNameAnnouncements).
func (s *Store) PutNames(n Names) error {
	err := s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		cur, err := decodeNames(meta.Get(keyNames))
		if err != nil {
			return err
		}
		cur.Symptoms = mergeNames(cur.Symptoms, n.Symptoms)
		cur.Categories = mergeNames(cur.Categories, n.Categories)
		cur.Aggregates = mergeNames(cur.Aggregates, n.Aggregates)
		v, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		return meta.Put(keyNames, v)
	})
	if err != nil {
		return fmt.Errorf("store: put names: %w", err)
	}
	return nil
}

func decodeNames(v []byte) (Names, error) {
	var n Names
	if v == nil {
		return n, nil
	}
	if err := json.Unmarshal(v, &n); err != nil {
		return n, fmt.Errorf("decode names: %w", err)
	}
	return n, nil
}

// Names returns the merged names of version 1 stores (empty maps are
// nil); see NameIndex for the names of each origin.
func (s *Store) Names() (Names, error) {
	var n Names
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = decodeNames(tx.Bucket(bucketMeta).Get(keyNames))
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: names: %w", err)
	}
	return n, nil
}

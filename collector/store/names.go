package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var keyNames = []byte("names")

// Names map the ids in flow records to names, as the probes announce them
// in IPFIX options records. The store keeps one merged set: ids are
// assumed to mean the same on every probe (one symptom database and one
// aggregate configuration per deployment).
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

// PutNames merges n into the stored names; a name given for an id that
// already has one replaces it.
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

// Names returns the stored names (empty maps are nil).
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

package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/flow"
)

var bucketLedgers = []byte("ledgers")

// Ledger is the latest loss ledger an exporting process sent
// (ipfix.LedgerOptionsTemplate): its totals since it started
// (SystemInit), so the ledgers of one origin's successive processes add
// up.
type Ledger struct {
	Origin     Origin    `json:"origin"`
	SystemInit int64     `json:"system_init"` // Unix ms
	Messages   uint64    `json:"messages"`
	Records    uint64    `json:"records"`
	Loss       flow.Loss `json:"loss"`
	// RegulationChanges counts the process's self-regulation changes
	// (ipfix.Ledger.RegulationChanges; 0 from exporters that do not say).
	RegulationChanges uint64 `json:"regulation_changes,omitempty"`
	// QueueScaled is the queue stage as packets of the wire
	// (ipfix.Ledger.QueueScaled; 0 from exporters that do not say).
	QueueScaled uint64    `json:"queue_scaled,omitempty"`
	Updated     time.Time `json:"updated"`
}

func ledgerKey(l *Ledger) []byte {
	return binary.BigEndian.AppendUint64(originKey(l.Origin), uint64(l.SystemInit))
}

// PutLedgers stores ledgers, each replacing the one of the same origin
// and process unless that one counts more messages (a resent older
// ledger, after a reconnect, does not replace a newer one).
func (s *Store) PutLedgers(ls []Ledger) error {
	if len(ls) == 0 {
		return nil
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketLedgers)
		if err != nil {
			return err
		}
		for i := range ls {
			k := ledgerKey(&ls[i])
			if old := b.Get(k); old != nil {
				var o Ledger
				if json.Unmarshal(old, &o) == nil && o.Messages > ls[i].Messages {
					continue
				}
			}
			v, err := json.Marshal(&ls[i])
			if err != nil {
				return err
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Ledgers returns every stored ledger, by origin and process start.
func (s *Store) Ledgers() ([]Ledger, error) {
	var out []Ledger
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLedgers)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var l Ledger
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("store: ledger %x: %w", k, err)
			}
			out = append(out, l)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b Ledger) int {
		if a.Origin != b.Origin {
			if a.Origin.Exporter != b.Origin.Exporter {
				if a.Origin.Exporter < b.Origin.Exporter {
					return -1
				}
				return 1
			}
			return int(int64(a.Origin.Domain) - int64(b.Origin.Domain))
		}
		return int(max(min(a.SystemInit-b.SystemInit, 1), -1))
	})
	return out, err
}

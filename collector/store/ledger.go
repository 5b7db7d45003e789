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

// MaxLedgers bounds the exporting processes whose ledgers a
// LedgerTracker follows (garbage with random process start times would
// otherwise grow it without end).
const MaxLedgers = 4096

// LedgerTracker follows the latest ledger of every exporting process a
// collecting process heard from since it started: what mira-collector
// and a cluster's ingest node take (and store or publish) and what their
// /metrics add up (mira_collector_loss_total). The zero value is ready.
type LedgerTracker struct {
	seen map[ledgerTrackKey]Ledger
	// Stale counts ledgers older than one already taken (resent after a
	// reconnect: ignored); Backwards those whose message count grew
	// while another total shrank, and Full those of new processes
	// beyond MaxLedgers (both dropped as malformed: "ledger-backwards",
	// "ledger-overflow").
	Stale, Backwards, Full uint64
}

type ledgerTrackKey struct {
	o    Origin
	init int64
}

// Take says whether l is to be taken: it is newer than the last ledger
// of its process and no total went backwards. Else it counts why not.
func (t *LedgerTracker) Take(l Ledger) bool {
	k := ledgerTrackKey{l.Origin, l.SystemInit}
	prev, seen := t.seen[k]
	switch {
	case seen && l.Messages < prev.Messages:
		t.Stale++
		return false
	case seen && LedgerBackwards(&prev, &l):
		t.Backwards++
		return false
	case !seen && len(t.seen) >= MaxLedgers:
		t.Full++
		return false
	}
	if t.seen == nil {
		t.seen = map[ledgerTrackKey]Ledger{}
	}
	t.seen[k] = l
	return true
}

// Loss sums the loss of the ledgers taken (the latest of each process).
func (t *LedgerTracker) Loss() flow.Loss {
	var sum flow.Loss
	for _, l := range t.seen {
		sum.Add(l.Loss)
	}
	return sum
}

// LedgerBackwards says a total of b is below a's: one process's totals
// never shrink.
func LedgerBackwards(a, b *Ledger) bool {
	if b.Records < a.Records || b.RegulationChanges < a.RegulationChanges || b.QueueScaled < a.QueueScaled {
		return true
	}
	ac, bc := a.Loss.Counts(), b.Loss.Counts()
	for i := range ac {
		if bc[i] < ac[i] {
			return true
		}
	}
	return false
}

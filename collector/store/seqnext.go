package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Sequence positions across transport sessions. IPFIX numbers records
// per (transport session, observation domain); a collector that keeps
// only a session's numbers cannot tell what was lost between two
// sessions of one exporter (a TCP reconnect after a collector restart).
// The store keeps, per exporter position (SeqPos), the sequence number
// expected next as of the records committed with it, and the sequence
// loss counted with those records (Stats.Lost), in the records'
// transaction: after a crash the positions, the loss and the records
// agree, and a restarted collector counts what the crash lost as the
// gap between the stored position and the exporter's next message.
// Stores without the bucket (older collectors) simply have no positions.

var bucketSeqNext = []byte("seqnext")

// SeqPos names one exporter's sequence space across transport sessions:
// its address and observation domain, and for UDP its source port (an
// exporter keeps its socket, and exporters behind one address are told
// apart by it); Port is 0 for TCP and TLS, whose reconnects come from a
// new port.
type SeqPos struct {
	Origin
	Port uint16
}

// SeqNext is the sequence number a SeqPos expects next, and when it was
// last changed.
type SeqNext struct {
	Next    uint32
	Updated time.Time
}

// SeqCommit is the sequence state committed with a batch of records.
type SeqCommit struct {
	// Sets replaces the stored sequence sets of its origins (seq.go).
	Sets map[SeqOrigin]*SeqSet
	// Next replaces the stored positions of its keys; a nil value
	// deletes one.
	Next map[SeqPos]*SeqNext
	// Lost is added to the stored Stats.Lost: records the committed
	// messages' sequence numbers show missing.
	Lost uint64
}

func (c *SeqCommit) empty() bool {
	return c == nil || (len(c.Sets) == 0 && len(c.Next) == 0 && c.Lost == 0)
}

func seqPosKey(p SeqPos) []byte {
	k := binary.BigEndian.AppendUint16(make([]byte, 0, 6+len(p.Exporter)), p.Port)
	return append(k, originKey(p.Origin)...)
}

// SeqNexts returns every stored sequence position.
func (s *Store) SeqNexts() (map[SeqPos]SeqNext, error) {
	out := map[SeqPos]SeqNext{}
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSeqNext)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) < 6 || len(v) != 12 {
				return fmt.Errorf("store: bad sequence position %x", k)
			}
			p := SeqPos{Port: binary.BigEndian.Uint16(k),
				Origin: Origin{Domain: binary.BigEndian.Uint32(k[2:]), Exporter: string(k[6:])}}
			out[p] = SeqNext{Next: binary.BigEndian.Uint32(v),
				Updated: time.UnixMilli(int64(binary.BigEndian.Uint64(v[4:]))).UTC()}
			return nil
		})
	})
	return out, err
}

func putSeqCommit(tx *bolt.Tx, c *SeqCommit) error {
	if c == nil {
		return nil
	}
	if err := putSeqSets(tx, c.Sets); err != nil {
		return err
	}
	if len(c.Next) > 0 {
		b, err := tx.CreateBucketIfNotExists(bucketSeqNext)
		if err != nil {
			return err
		}
		for p, n := range c.Next {
			if n == nil {
				if err := b.Delete(seqPosKey(p)); err != nil {
					return err
				}
				continue
			}
			v := binary.BigEndian.AppendUint32(make([]byte, 0, 12), n.Next)
			v = binary.BigEndian.AppendUint64(v, uint64(n.Updated.UnixMilli()))
			if err := b.Put(seqPosKey(p), v); err != nil {
				return err
			}
		}
	}
	if c.Lost == 0 {
		return nil
	}
	meta := tx.Bucket(bucketMeta)
	st, err := decodeStats(meta.Get(keyStats))
	if err != nil {
		return err
	}
	st.Lost += c.Lost
	if st.Updated.IsZero() {
		st.Updated = time.Now().UTC()
	}
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return meta.Put(keyStats, v)
}

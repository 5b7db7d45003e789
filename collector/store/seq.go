package store

import (
	"encoding/binary"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Exactly-once storage of spooled exports. A spooling exporter
// (ipfix.SpoolOptionsTemplate) resends recent messages after every
// reconnect, and IPFIX has no acknowledgement, so the store keeps, per
// (origin, instance), the sequence numbers whose records it holds; the
// collector drops records it finds there. The set is written in the same
// transaction as the records (PutEncodedSeq), so after a crash both or
// neither are there.

var bucketSeq = []byte("sequences")

// SeqOrigin is one spooling exporting process's sequence space.
type SeqOrigin struct {
	Origin
	Instance uint64
}

// maxSeqRanges bounds a SeqSet; beyond it the lowest ranges are
// forgotten (a replay reaches back seconds, not gaps ago).
const maxSeqRanges = 4096

// SeqSet is a set of 32-bit sequence numbers kept as sorted, disjoint,
// non-adjacent inclusive ranges. Numbers wrap: a run that passes 2^32-1
// continues at 0.
type SeqSet struct {
	r [][2]uint32 // [first, last], sorted by first
}

// Add adds the n numbers from first on.
func (s *SeqSet) Add(first, n uint32) { eachRange(first, n, s.add) }

// eachRange calls f with the inclusive ranges of the n numbers from
// first on: one, or two where they wrap past 2^32-1.
func eachRange(first, n uint32, f func(a, b uint32)) {
	if n == 0 {
		return
	}
	last := first + n - 1
	if last < first { // wraps
		f(first, ^uint32(0))
		f(0, last)
		return
	}
	f(first, last)
}

func (s *SeqSet) add(a, b uint32) {
	i, _ := slices.BinarySearchFunc(s.r, a, func(r [2]uint32, a uint32) int {
		switch {
		case r[0] < a:
			return -1
		case r[0] > a:
			return 1
		}
		return 0
	})
	// Merge with the range before when it touches.
	if i > 0 && uint64(s.r[i-1][1])+1 >= uint64(a) {
		i--
		a = s.r[i][0]
		b = max(b, s.r[i][1])
	}
	j := i
	for j < len(s.r) && uint64(s.r[j][0]) <= uint64(b)+1 {
		b = max(b, s.r[j][1])
		j++
	}
	s.r = slices.Replace(s.r, i, j, [2]uint32{a, b})
	if len(s.r) > maxSeqRanges {
		s.r = slices.Delete(s.r, 0, len(s.r)-maxSeqRanges)
	}
}

// Contains says whether x is in the set.
func (s *SeqSet) Contains(x uint32) bool {
	i, found := slices.BinarySearchFunc(s.r, x, func(r [2]uint32, x uint32) int {
		switch {
		case r[0] < x:
			return -1
		case r[0] > x:
			return 1
		}
		return 0
	})
	if found {
		return true
	}
	return i > 0 && s.r[i-1][1] >= x
}

// Overlaps says whether any of the n numbers from first on is in the set.
func (s *SeqSet) Overlaps(first, n uint32) bool {
	if n == 0 || len(s.r) == 0 {
		return false
	}
	last := first + n - 1
	if last < first {
		return s.overlaps(first, ^uint32(0)) || s.overlaps(0, last)
	}
	return s.overlaps(first, last)
}

func (s *SeqSet) overlaps(a, b uint32) bool {
	for _, r := range s.r { // usually one range
		if r[0] <= b && r[1] >= a {
			return true
		}
	}
	return false
}

// Remove takes the n numbers from first on out of the set.
func (s *SeqSet) Remove(first, n uint32) { eachRange(first, n, s.remove) }

func (s *SeqSet) remove(a, b uint32) {
	out := s.r[:0:0]
	for _, r := range s.r {
		if r[1] < a || r[0] > b {
			out = append(out, r)
			continue
		}
		if r[0] < a {
			out = append(out, [2]uint32{r[0], a - 1})
		}
		if r[1] > b {
			out = append(out, [2]uint32{b + 1, r[1]})
		}
	}
	s.r = out
}

// RemoveSorted takes the numbers of nums, sorted in increasing order,
// out of the set, in one pass over both.
func (s *SeqSet) RemoveSorted(nums []uint32) {
	if len(nums) == 0 || len(s.r) == 0 {
		return
	}
	out := make([][2]uint32, 0, len(s.r)+1)
	j := 0
	for _, r := range s.r {
		a := uint64(r[0])
		for j < len(nums) && uint64(nums[j]) < a {
			j++
		}
		for j < len(nums) && uint64(nums[j]) <= uint64(r[1]) {
			if x := uint64(nums[j]); x > a {
				out = append(out, [2]uint32{uint32(a), uint32(x - 1)})
			}
			a = uint64(nums[j]) + 1
			j++
		}
		if a <= uint64(r[1]) {
			out = append(out, [2]uint32{uint32(a), r[1]})
		}
	}
	s.r = out
}

// Ranges returns the set's ranges (inclusive), sorted.
func (s *SeqSet) Ranges() [][2]uint32 { return slices.Clone(s.r) }

// Clone returns a copy of s.
func (s *SeqSet) Clone() *SeqSet { return &SeqSet{r: slices.Clone(s.r)} }

func seqKey(o SeqOrigin) []byte {
	k := binary.BigEndian.AppendUint64(nil, o.Instance)
	return append(k, originKey(o.Origin)...)
}

func (s *SeqSet) marshal() []byte {
	b := make([]byte, 0, 8*len(s.r))
	for _, r := range s.r {
		b = binary.BigEndian.AppendUint32(b, r[0])
		b = binary.BigEndian.AppendUint32(b, r[1])
	}
	return b
}

// SeqSets returns every stored sequence set.
func (s *Store) SeqSets() (map[SeqOrigin]*SeqSet, error) {
	out := map[SeqOrigin]*SeqSet{}
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSeq)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) < 12 || len(v)%8 != 0 {
				return fmt.Errorf("store: bad sequence entry %x", k)
			}
			o := SeqOrigin{Instance: binary.BigEndian.Uint64(k),
				Origin: Origin{Domain: binary.BigEndian.Uint32(k[8:]), Exporter: string(k[12:])}}
			set := &SeqSet{}
			for i := 0; i < len(v); i += 8 {
				set.r = append(set.r, [2]uint32{binary.BigEndian.Uint32(v[i:]), binary.BigEndian.Uint32(v[i+4:])})
			}
			out[o] = set
			return nil
		})
	})
	return out, err
}

func putSeqSets(tx *bolt.Tx, sets map[SeqOrigin]*SeqSet) error {
	if len(sets) == 0 {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketSeq)
	if err != nil {
		return err
	}
	for o, set := range sets {
		if err := b.Put(seqKey(o), set.marshal()); err != nil {
			return err
		}
	}
	return nil
}

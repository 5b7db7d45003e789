package store

import (
	"bytes"
	"encoding/binary"
	"math"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/mira-project/mira/internal/sum"
)

func sampleCell() RollupCell {
	u := RollupUsage{Biflows: 3, Flows: 7, Packets: 1000, Octets: 123456, Merged: 1, Sampled: true, PacketSampled: true,
		EstBiflows: sum.Of(3), EstPackets: sum.Of(10000), EstOctets: sum.Of(1234560.3), VarPackets: sum.Of(9.5e4), VarOctets: sum.Of(1.25e9),
		First: 1e18, Last: 1e18 + 5e9}
	u.VarOctets.Add(1e40) // held apart (Over)
	s := u
	s.Hits = 4
	return RollupCell{RollupUsage: u, Symptoms: []RollupSymptom{{Name: "FTP", RollupUsage: s}, {Name: "MAIL", RollupUsage: s}}}
}

// TestRollupCellRoundTrip checks the cell and key encodings, that an
// unsampled cell's estimates are its observed counts, and that adding
// cells merges their symptoms by name.
func TestRollupCellRoundTrip(t *testing.T) {
	c := sampleCell()
	var got RollupCell
	if err := decodeRollupCell(appendRollupCell(nil, &c), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip:\n%+v\nwant\n%+v", got, c)
	}
	u := RollupCell{RollupUsage: RollupUsage{Biflows: 2, Flows: 3, Packets: 10, Octets: 900, First: -5, Last: 7}}
	if err := decodeRollupCell(appendRollupCell(nil, &u), &got); err != nil {
		t.Fatal(err)
	}
	if got.EstPackets != sum.OfUint(10) || got.EstOctets != sum.OfUint(900) || got.EstBiflows != sum.OfUint(2) || got.Last != 7 {
		t.Fatalf("unsampled cell decoded as %+v", got.RollupUsage)
	}
	k := RollupKey{Bucket: -int64(time.Hour), Kind: RollupRecords, Aggregate: "campus", Category: "Web", Probe: "a/1;b/2", SrcAS: 64500, DstAS: 1}
	var gk RollupKey
	if err := decodeRollupKey(appendRollupKey(nil, &k), &gk); err != nil || gk != k {
		t.Fatalf("key round trip: %+v, %v", gk, err)
	}
	o := RollupCell{Symptoms: []RollupSymptom{{Name: "AAA", RollupUsage: RollupUsage{Biflows: 1, Hits: 2}}, {Name: "FTP", RollupUsage: RollupUsage{Biflows: 1, Hits: 1}}}}
	c.Add(&o)
	if len(c.Symptoms) != 3 || c.Symptoms[0].Name != "AAA" || c.Symptoms[1].Hits != 5 {
		t.Fatalf("merged symptoms %+v", c.Symptoms)
	}
}

// TestRollupCellVersion1 reads a cell of version 1, whose estimator
// sums were float64, as the sums of those values.
func TestRollupCellVersion1(t *testing.T) {
	b := []byte{1, 1} // version 1; flags: sampled
	for _, v := range [...]uint64{2, 2, 20, 2000, 0, 0, 0, 0} {
		b = binary.AppendUvarint(b, v)
	}
	b = binary.AppendVarint(b, 100)
	b = binary.AppendVarint(b, 5)
	fs := [...]float64{2, 200.00000000000003, 20000, 2, 1800, 1.8e6}
	for _, f := range fs {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	b = append(b, 0) // no symptoms
	var c RollupCell
	if err := decodeRollupCell(b, &c); err != nil {
		t.Fatal(err)
	}
	u := &c.RollupUsage
	for i, e := range [...]*sum.Exact{&u.EstBiflows, &u.EstPackets, &u.EstOctets, &u.VarBiflows, &u.VarPackets, &u.VarOctets} {
		if *e != sum.Of(fs[i]) {
			t.Errorf("sum %d: %+v, want %v", i, *e, fs[i])
		}
	}
	if u.Biflows != 2 || u.Octets != 2000 || u.First != 100 || u.Last != 105 || !u.Sampled {
		t.Fatalf("version 1 cell: %+v", u)
	}
	b[0] = RollupVersion + 1
	if err := decodeRollupCell(b, &c); err == nil {
		t.Fatal("a cell of a newer version decoded")
	}
}

// TestRollupsStore checks that PutRollups adds to stored cells, Rollups
// reads a bucket range, and PruneRollups deletes whole old buckets and
// records it in the meta, which a later PutRollups keeps.
func TestRollupsStore(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.RollupMeta(); err != ErrNoRollups {
		t.Fatalf("new store: %v", err)
	}
	h := int64(time.Hour)
	mk := func() *RollupDelta {
		d := &RollupDelta{Cells: map[time.Duration]map[RollupKey]*RollupCell{RollupMinute: {}, RollupHour: {}}, Meta: RollupMeta{Version: RollupVersion, Records: 1}}
		for i := int64(0); i < 3; i++ {
			c := sampleCell()
			d.Cells[RollupHour][RollupKey{Bucket: i * h, Aggregate: "a"}] = &c
		}
		return d
	}
	for i := 0; i < 2; i++ {
		if err := s.PutRollups(mk()); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	var packets uint64
	err = s.Rollups(RollupHour, h, 3*h, func(k *RollupKey, c *RollupCell) error {
		n++
		packets += c.Packets
		return nil
	})
	if err != nil || n != 2 || packets != 4000 {
		t.Fatalf("read %d cells, %d packets (%v); want 2 cells of 2000", n, packets, err)
	}
	if m, err := s.PruneRollups(RollupHour, time.Unix(0, h+h/2)); err != nil || m != 1 {
		t.Fatalf("pruned %d, %v", m, err)
	}
	if err := s.PutRollups(&RollupDelta{Meta: RollupMeta{Version: RollupVersion}}); err != nil {
		t.Fatal(err)
	}
	meta, err := s.RollupMeta()
	if err != nil || meta.PrunedBeforeAt(RollupHour) != h || meta.PrunedBeforeAt(RollupMinute) != -1<<63 {
		t.Fatalf("meta after pruning %+v, %v", meta, err)
	}
}

// FuzzRollupCell: any bytes either fail to decode with an error or
// decode to a cell that encodes back to the same bytes.
func FuzzRollupCell(f *testing.F) {
	c := sampleCell()
	f.Add(appendRollupCell(nil, &c))
	f.Add(appendRollupCell(nil, &RollupCell{}))
	f.Add([]byte{RollupVersion, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var c RollupCell
		if err := decodeRollupCell(b, &c); err != nil {
			return
		}
		var again RollupCell
		enc := appendRollupCell(nil, &c)
		if err := decodeRollupCell(enc, &again); err != nil {
			t.Fatalf("re-encoded cell does not decode: %v", err)
		}
		if !bytes.Equal(appendRollupCell(nil, &again), enc) {
			t.Fatal("encoding is not stable")
		}
		var k RollupKey
		if decodeRollupKey(b, &k) == nil {
			if !bytes.Equal(appendRollupKey(nil, &k), b) && len(b) < 9 {
				t.Fatal("short key decoded")
			}
		}
	})
}

package cluster

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

func testRecords() []flow.Record {
	k := flow.Key{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("2001:db8::7"), Sport: 40001, Dport: 25, Proto: 6}
	return []flow.Record{
		{Key: k, Packets: 12, Octets: 2301, First: 1e18, Last: 1e18 + 5e9, Symptoms: []flow.SymptomCount{{ID: 3, Count: 2}}},
		{Key: k.Reverse(), Packets: 9, Octets: 811, First: 1e18 + 1, Last: 1e18 + 6e9},
	}
}

func TestPartitionBothDirections(t *testing.T) {
	for _, r := range testRecords() {
		k := r.Key
		p := Partition(k, Partitions)
		if q := Partition(k.Reverse(), Partitions); q != p {
			t.Errorf("%v: partition %d, reverse %d", k, p, q)
		}
		k.VLAN = 7
		if q := Partition(k, Partitions); q != p {
			t.Errorf("%v: partition %d with a VLAN tag, %d without", k, q, p)
		}
		// Every connection between the two hosts: other ports, protocol.
		k.Sport, k.Dport, k.Proto = 20, 50000, 17
		if q := Partition(k, Partitions); q != p {
			t.Errorf("%v: partition %d, another connection between the same hosts %d", k, q, p)
		}
		if a4 := k.Src; a4.Is4() {
			k.Src = netip.AddrFrom16(a4.As16())
			if q := Partition(k, Partitions); q != p {
				t.Errorf("%v: partition %d with the IPv4 address mapped, %d", k, q, p)
			}
		}
	}
}

func encodeBatch(id ID, recs []flow.Record) []byte {
	var b, scratch []byte
	for i := range recs {
		x := id
		x.Seq += uint32(i)
		b, scratch = appendBatchRecord(b, x, &recs[i], scratch)
	}
	return b
}

func TestBatchRoundTrip(t *testing.T) {
	id := ID{Exporter: netip.MustParseAddr("198.51.100.9"), Domain: 12, Instance: 1<<63 | 5, Seq: 4294967295}
	recs := testRecords()
	i := 0
	err := decodeBatch(encodeBatch(id, recs), func(got ID, enc []byte) error {
		want := id
		want.Seq += uint32(i)
		if got != want {
			t.Errorf("record %d: id %+v, want %+v", i, got, want)
		}
		k, err := parseID(got.key(nil))
		if err != nil || k != got {
			t.Errorf("record %d: key parses to %+v, %v", i, k, err)
		}
		if !bytes.Equal(enc, store.AppendRecord(nil, &recs[i])) {
			t.Errorf("record %d: encoding changed", i)
		}
		i++
		return nil
	})
	if err != nil || i != len(recs) {
		t.Fatalf("%d records, %v", i, err)
	}
}

// FuzzDecodeBatch: any input decodes or fails with errBatch, never
// panics; what decodes encodes back to the same bytes.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(ID{Exporter: netip.MustParseAddr("192.0.2.1"), Domain: 1, Instance: 2, Seq: 3}, testRecords()))
	f.Add([]byte{batchVersion})
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var out []byte
		var scratch []byte
		var r flow.Record
		err := decodeBatch(b, func(id ID, enc []byte) error {
			if err := store.DecodeRecord(enc, &r); err != nil {
				t.Fatalf("handed an undecodable record: %v", err)
			}
			out, scratch = appendBatchRecord(out, id, &r, scratch)
			return nil
		})
		if err != nil {
			return
		}
		// Re-decoding the re-encoding gives the same records.
		var again []byte
		if out != nil {
			if err := decodeBatch(out, func(id ID, enc []byte) error {
				store.DecodeRecord(enc, &r)
				again, scratch = appendBatchRecord(again, id, &r, scratch)
				return nil
			}); err != nil {
				t.Fatalf("re-encoded batch does not decode: %v", err)
			}
			if !bytes.Equal(out, again) {
				t.Fatal("round trip not stable")
			}
		}
	})
}

package flow

import (
	"net/netip"
	"slices"
	"testing"
)

func TestKeyCompare(t *testing.T) {
	a4, b4 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	a6 := netip.MustParseAddr("2001:db8::1")
	keys := []Key{
		{Src: a6, Dst: a4, Proto: 17},
		{Src: a4, Dst: b4, Sport: 1, Dport: 2, Proto: 6, VLAN: 2},
		{Src: a4, Dst: b4, Sport: 1, Dport: 2, Proto: 6, VLAN: 1},
		{Src: a4, Dst: b4, Sport: 1, Dport: 2, Proto: 17},
		{Src: a4, Dst: b4, Sport: 1, Dport: 1, Proto: 6},
		{Src: a4, Dst: b4, Sport: 0, Dport: 9, Proto: 6},
		{Src: a4, Dst: a4, Sport: 5, Dport: 5, Proto: 6},
	}
	slices.SortFunc(keys, Key.Compare)
	want := []Key{
		{Src: a4, Dst: a4, Sport: 5, Dport: 5, Proto: 6},
		{Src: a4, Dst: b4, Sport: 0, Dport: 9, Proto: 6},
		{Src: a4, Dst: b4, Sport: 1, Dport: 1, Proto: 6},
		{Src: a4, Dst: b4, Sport: 1, Dport: 2, Proto: 6, VLAN: 1},
		{Src: a4, Dst: b4, Sport: 1, Dport: 2, Proto: 6, VLAN: 2},
		{Src: a4, Dst: b4, Sport: 1, Dport: 2, Proto: 17},
		{Src: a6, Dst: a4, Proto: 17},
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("sorted %v\nwant %v", keys, want)
	}
	for i, k := range keys {
		if k.Compare(k) != 0 {
			t.Errorf("%v does not compare equal to itself", k)
		}
		if i > 0 && (keys[i-1].Compare(k) >= 0 || k.Compare(keys[i-1]) <= 0) {
			t.Errorf("%v and %v: not antisymmetric", keys[i-1], k)
		}
	}
}

func TestBiflowForwardAndReverse(t *testing.T) {
	k := Key{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.7"), Sport: 40001, Dport: 25, Proto: 6, VLAN: 7}
	b := Biflow{Key: k, Packets: 12, Octets: 2301, RPackets: 9, ROctets: 811, TCPFlags: 0x02, RTCPFlags: 0x12, First: 1e9, Last: 9e9,
		ScannedOctets: 1500, RScannedOctets: 300}
	r := b.Forward()
	if r.Key != k || r.Packets != 12 || r.Octets != 2301 || r.TCPFlags != 0x12 || r.First != 1e9 || r.Last != 9e9 || r.ScannedOctets != 1500 {
		t.Errorf("Forward: %+v", r)
	}
	rk := k.Reverse()
	if rk.Src != k.Dst || rk.Dst != k.Src || rk.Sport != 25 || rk.Dport != 40001 || rk.Proto != 6 || rk.VLAN != 7 || rk.Reverse() != k {
		t.Errorf("Reverse: %+v", rk)
	}
}

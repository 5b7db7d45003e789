package atm

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/mira-project/mira/drivers"
)

func TestHECKnownAnswers(t *testing.T) {
	// Values from ITU-T I.432.1 practice as computed in the project notes
	// (idle cell 00000001 -> 52).
	for _, tc := range []struct {
		h   uint32
		hec uint8
	}{
		{0x00000000, 0x55},
		{0x00000001, 0x52},
		{0x01234567, 0x95},
		{0x00100200, 0xdd},
	} {
		if got := HEC(tc.h); got != tc.hec {
			t.Errorf("HEC(%08x) = %02x, want %02x", tc.h, got, tc.hec)
		}
	}
}

func TestHECCorrection(t *testing.T) {
	seen := map[uint8]int{}
	for _, h := range []uint32{0, 1, 0x00a00670, 0x0fffffff, 0xdeadbeef} {
		cell := make([]byte, CellSize)
		PutCell(cell, h, nil)
		if got, st := CheckHEC(cell); st != HECOK || got != h {
			t.Fatalf("clean %08x: got %08x %v", h, got, st)
		}
		for bit := range 40 {
			c := bytes.Clone(cell)
			c[bit/8] ^= 0x80 >> (bit % 8)
			got, st := CheckHEC(c)
			if st != HECCorrected || got != h {
				t.Errorf("h %08x bit %d: got %08x status %v, want corrected", h, bit, got, st)
			}
			if h == 0 {
				s := crc8(binary.BigEndian.Uint32(c)) ^ hecCoset ^ c[4]
				seen[s]++
			}
		}
		// Two-bit errors within the header are never mistaken for a clean
		// cell; most are detected as uncorrectable.
		bad := 0
		for b1 := range 32 {
			for b2 := b1 + 1; b2 < 32; b2++ {
				c := bytes.Clone(cell)
				c[b1/8] ^= 0x80 >> (b1 % 8)
				c[b2/8] ^= 0x80 >> (b2 % 8)
				got, st := CheckHEC(c)
				if st == HECOK {
					t.Fatalf("h %08x bits %d,%d: double error passed as clean", h, b1, b2)
				}
				if st == HECCorrected && got == h {
					t.Fatalf("h %08x bits %d,%d: double error 'corrected' to the original", h, b1, b2)
				}
				if st == HECBad {
					bad++
				}
			}
		}
		if bad == 0 {
			t.Errorf("h %08x: no double error detected as uncorrectable", h)
		}
	}
	if len(seen) != 40 {
		t.Errorf("single-bit syndromes not distinct: %d of 40", len(seen))
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{VPI: 10, VCI: 103},
		{GFC: 5, VPI: 255, VCI: 65535, PTI: 7, CLP: true},
		{VPI: 0, VCI: 5, PTI: 1},
	} {
		if got := ParseUNI(h.UNI()); got != h {
			t.Errorf("UNI round trip: %+v -> %+v", h, got)
		}
	}
	n := Header{VPI: 0xabc, VCI: 0x1234, PTI: 3}
	if got := ParseNNI(n.NNI()); got != n {
		t.Errorf("NNI round trip: %+v -> %+v", n, got)
	}
	// From the Auckland trace: 00 a0 06 70 is VPI 10 VCI 103 PTI 0.
	if got := ParseUNI(0x00a00670); got.VPI != 10 || got.VCI != 103 || got.PTI != 0 {
		t.Errorf("ParseUNI(00a00670) = %+v", got)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		h    uint32
		want Kind
	}{
		{0x00000001, KindIdle},
		{0x00000000, KindUnassigned},
		{Header{VPI: 1, VCI: 3}.UNI(), KindOAMF4},
		{Header{VPI: 1, VCI: 4, PTI: 0}.UNI(), KindOAMF4},
		{Header{VPI: 1, VCI: 100, PTI: 4}.UNI(), KindOAMF5},
		{Header{VPI: 1, VCI: 100, PTI: 5}.UNI(), KindOAMF5},
		{Header{VPI: 1, VCI: 100, PTI: 6}.UNI(), KindRM},
		{Header{VPI: 1, VCI: 100, PTI: 7}.UNI(), KindReserved},
		{Header{VPI: 1, VCI: 100, PTI: 1}.UNI(), KindUser},
		{Header{VPI: 0, VCI: 5, PTI: 3}.UNI(), KindUser},
	} {
		if got := Classify(tc.h); got != tc.want {
			t.Errorf("Classify(%08x) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestCRC32KnownAnswers(t *testing.T) {
	seq := make([]byte, 40)
	for i := range seq {
		seq[i] = byte(i + 1)
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		uu, cpi byte
		want    uint32
	}{
		{"zeros", make([]byte, 40), 0, 0, 0x864d7f99},
		{"ones", bytes.Repeat([]byte{0xff}, 40), 0, 0, 0xc55e457a},
		{"seq", seq, 0, 0, 0xbf671ed0},
		{"seq-uu-cpi", seq, 0x11, 0x22, 0xacba602a},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pdu := append(bytes.Clone(tc.data), tc.uu, tc.cpi, 0x00, 0x28)
			if got := CRC32(pdu); got != tc.want {
				t.Fatalf("CRC32 = %08x, want %08x", got, tc.want)
			}
			full := binary.BigEndian.AppendUint32(pdu, tc.want)
			if got := crcUpdate(0xffffffff, full); got != CRCResidue {
				t.Fatalf("residue = %08x, want %08x", got, CRCResidue)
			}
			// The segmenter produces the same single cell.
			cells := AppendRecords(nil, Header{VPI: 1, VCI: 32}.UNI(), tc.data, tc.uu, tc.cpi)
			if len(cells) != RecordSize || !bytes.Equal(cells[4:], full) {
				t.Fatalf("segmented cell %x, want payload %x", cells, full)
			}
		})
	}
}

func TestDecap(t *testing.T) {
	ip4 := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	ip6 := append([]byte{0x60}, make([]byte, 39)...)
	eth := append(make([]byte, 12), 0x08, 0x00)
	eth = append(eth, ip4...)
	for _, tc := range []struct {
		name   string
		sdu    []byte
		e      Encap
		data   []byte
		link   drivers.LinkType
		reason Reason
	}{
		{"llc-ipv4", append([]byte{0xaa, 0xaa, 3, 0, 0, 0, 8, 0}, ip4...), EncapLLC, ip4, drivers.LinkRaw, ReasonNone},
		{"llc-ipv6", append([]byte{0xaa, 0xaa, 3, 0, 0, 0, 0x86, 0xdd}, ip6...), EncapLLC, ip6, drivers.LinkRaw, ReasonNone},
		{"nlpid-ipv4", append([]byte{0xfe, 0xfe, 3, 0xcc}, ip4...), EncapLLC, ip4, drivers.LinkRaw, ReasonNone},
		{"llc-arp", append([]byte{0xaa, 0xaa, 3, 0, 0, 0, 8, 6}, ip4...), EncapLLC, nil, 0, ReasonNonIP},
		{"llc-bridged", append([]byte{0xaa, 0xaa, 3, 0, 0x80, 0xc2, 0, 7, 0, 0}, eth...), EncapLLC, eth, drivers.LinkEthernet, ReasonNone},
		{"llc-bridged-fcs", append(append([]byte{0xaa, 0xaa, 3, 0, 0x80, 0xc2, 0, 1, 0, 0}, eth...), 1, 2, 3, 4), EncapLLC, eth, drivers.LinkEthernet, ReasonNone},
		{"no-llc", ip4, EncapLLC, nil, 0, ReasonNoLLC},
		{"short", []byte{0xaa, 0xaa}, EncapLLC, nil, 0, ReasonShortPDU},
		{"vcmux-ip", ip6, EncapVCMuxIP, ip6, drivers.LinkRaw, ReasonNone},
		{"vcmux-ip-bad", []byte{0x12, 0}, EncapVCMuxIP, nil, 0, ReasonNonIP},
		{"vcmux-eth", append([]byte{0, 0}, eth...), EncapVCMuxEthernet, eth, drivers.LinkEthernet, ReasonNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, link, reason := Decap(tc.sdu, tc.e)
			if reason != tc.reason || link != tc.link || !bytes.Equal(data, tc.data) {
				t.Fatalf("Decap = %x %v %v, want %x %v %v", data, link, reason, tc.data, tc.link, tc.reason)
			}
		})
	}
}

func TestEncapRoundTrip(t *testing.T) {
	ip4 := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	eth := append(append(make([]byte, 12), 0x08, 0x00), ip4...)
	for _, e := range []Encap{EncapLLC, EncapVCMuxIP, EncapVCMuxIPv4, EncapVCMuxEthernet, EncapVCMuxEthernetFCS} {
		link, pkt := drivers.LinkRaw, ip4
		if e == EncapVCMuxEthernet || e == EncapVCMuxEthernetFCS {
			link, pkt = drivers.LinkEthernet, eth
		}
		sdu := AppendEncap(nil, e, link, pkt)
		data, gl, r := Decap(sdu, e)
		if r != ReasonNone || gl != link || !bytes.Equal(data, pkt) {
			t.Errorf("%v: round trip gave %x %v %v", e, data, gl, r)
		}
		if pe, err := ParseEncap(e.String()); err != nil || pe != e {
			t.Errorf("ParseEncap(%q) = %v, %v", e.String(), pe, err)
		}
	}
	if _, err := ParseEncap("bogus"); err == nil {
		t.Error("ParseEncap(bogus) succeeded")
	}
}

func TestFilter(t *testing.T) {
	f := Filter{VPI: 10, VCI: 0x100, VPIMask: 0xff, VCIMask: 0xff00}
	if !f.Match(10, 0x1ff) || f.Match(11, 0x100) || f.Match(10, 0x200) {
		t.Fatal("masked filter matched wrongly")
	}
	if !(Filter{}).Match(1, 2) {
		t.Fatal("zero filter should match everything")
	}
	if !Exact(1, 2).Match(1, 2) || Exact(1, 2).Match(1, 3) {
		t.Fatal("exact filter wrong")
	}
}

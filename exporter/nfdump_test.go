package exporter

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/flow"
	"github.com/mira-project/mira/exporter/ipfix/ipfixtest"
)

// nfFlow is the part of an nfdump -o json record we check.
type nfFlow struct {
	First, Last string
	InPackets   uint64 `json:"in_packets"`
	InBytes     uint64 `json:"in_bytes"`
	Proto       uint8
	TCPFlags    string `json:"tcp_flags"`
	SrcPort     uint16 `json:"src_port"`
	DstPort     uint16 `json:"dst_port"`
	ICMPType    uint8  `json:"icmp_type"`
	ICMPCode    uint8  `json:"icmp_code"`
	Src4        string `json:"src4_addr"`
	Dst4        string `json:"dst4_addr"`
	Src6        string `json:"src6_addr"`
	Dst6        string `json:"dst6_addr"`
	Input       uint32 `json:"input_snmp"`
	Direction   uint8
	SrcVLAN     uint16 `json:"src_vlan"`
	InSrcMAC    string `json:"in_src_mac"`
	InDstMAC    string `json:"in_dst_mac"`
	OutPackets  uint64 `json:"out_packets"`
	OutBytes    uint64 `json:"out_bytes"`
}

func (f *nfFlow) key(t *testing.T) flow.Key {
	src, dst := f.Src4+f.Src6, f.Dst4+f.Dst6
	k := flow.Key{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: f.Proto, Sport: f.SrcPort, Dport: f.DstPort}
	if f.Proto == 1 || f.Proto == 58 {
		k.Sport, k.Dport = 0, uint16(f.ICMPType)<<8|uint16(f.ICMPCode)
	}
	return k
}

// nfFlags renders TCP flags as nfdump does (CWR ECE URG ACK PSH RST SYN FIN).
func nfFlags(v uint8) string {
	const names = "CEUAPRSF"
	b := []byte("........")
	for i := 0; i < 8; i++ {
		if v&(0x80>>i) != 0 {
			b[i] = names[i]
		}
	}
	return string(b)
}

func nfTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000")
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// TestNfcapd exports every record shape (IPv4, IPv6, ICMP, ICMPv6,
// tunnelled, with symptoms, ATM) plus random records over UDP into a
// real nfcapd and checks that nfdump shows exactly the same flows,
// packets, bytes and times, and that nfcapd saw no sequence errors.
func TestNfcapd(t *testing.T) {
	n := startNfcapd(t)
	recs := append(ipfixtest.Samples(), ipfixtest.Random(5, 300)...)
	e, err := New(fmt.Sprintf("udp://127.0.0.1:%d", n.port), &Config{MTU: 1400, TemplateRefreshMessages: 4})
	if err != nil {
		t.Fatal(err)
	}
	// Two batches, so that templates are refreshed between messages.
	if err := e.Export(recs[:150]); err != nil {
		t.Fatal(err)
	}
	if err := e.Export(recs[150:]); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	if st.Records != uint64(len(recs)) || st.Errors != 0 || st.Messages < 20 {
		t.Fatalf("exporter stats %+v", st)
	}
	n.stop(t)
	log := n.log.String()
	m := regexp.MustCompile(`Flows: (\d+), Packets: \d+, Bytes: \d+, Sequence Errors: (\d+), Bad Packets: (\d+)`).FindStringSubmatch(log)
	if m == nil || m[1] != fmt.Sprint(len(recs)) || m[2] != "0" || m[3] != "0" {
		t.Fatalf("nfcapd summary %q, want %d flows, no sequence errors, no bad packets\n%s", m, len(recs), log)
	}
	var got []nfFlow
	if err := json.Unmarshal([]byte(n.dump(t, "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("nfdump shows %d flows, want %d", len(got), len(recs))
	}
	byKey := map[flow.Key][]nfFlow{}
	for _, f := range got {
		k := f.key(t)
		byKey[k] = append(byKey[k], f)
	}
	for i, r := range recs {
		k := r.Key
		k.VLAN = 0
		fs := byKey[k]
		if len(fs) == 0 {
			t.Fatalf("record %d (%v) missing from nfdump", i, k)
		}
		f := fs[0]
		byKey[k] = fs[1:]
		var want []string
		check := func(name string, got, exp any) {
			if fmt.Sprint(got) != fmt.Sprint(exp) {
				want = append(want, fmt.Sprintf("%s %v want %v", name, got, exp))
			}
		}
		check("packets", f.InPackets, r.Packets)
		check("bytes", f.InBytes, r.Octets)
		check("first", f.First, nfTime(r.First))
		check("last", f.Last, nfTime(r.Last))
		check("input", f.Input, r.Ingress)
		check("vlan", f.SrcVLAN, r.VLAN)
		check("src mac", f.InSrcMAC, macString(r.SrcMAC))
		check("dst mac", f.InDstMAC, macString(r.DstMAC))
		if r.Proto == 6 {
			check("tcp flags", f.TCPFlags, nfFlags(r.TCPFlags))
		}
		if r.Direction <= 1 {
			check("direction", f.Direction, r.Direction)
		}
		check("out packets", f.OutPackets, 0)
		if len(want) > 0 {
			t.Errorf("record %d %v (tunnel %v, %d symptoms): %s", i, k, r.Tunnel, len(r.Symptoms), strings.Join(want, "; "))
		}
	}
	if !slices.ContainsFunc(recs, func(r flow.Record) bool { return r.Tunnel != 0 && len(r.Symptoms) > 0 }) {
		t.Fatal("no tunnelled record with symptoms in the test set")
	}
}

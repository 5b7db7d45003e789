package exporter

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// nfKey is the flow key of an nfdump record (VLAN 0: MIRA's key has it,
// nfdump's src_vlan is checked apart).
func nfKey(t *testing.T, f *peertest.NfdumpRecord) flow.Key {
	t.Helper()
	src, dst, err := f.Endpoints()
	if err != nil {
		t.Fatalf("%v in %+v", err, *f)
	}
	k := flow.Key{Src: src, Dst: dst, Proto: f.Proto}
	k.Sport, k.Dport = f.Ports()
	return k
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// TestNfcapd exports every record shape (IPv4, IPv6, ICMP, ICMPv6,
// tunnelled, with symptoms, ATM) plus random records over UDP into a
// real nfcapd and checks that nfdump shows exactly the same flows,
// packets, bytes and times, and that nfcapd saw no sequence errors.
func TestNfcapd(t *testing.T) {
	n := peertest.StartNfcapd(t)
	recs := append(ipfixtest.Samples(), ipfixtest.Random(5, 300)...)
	e, err := New(fmt.Sprintf("udp://127.0.0.1:%d", n.Port), &Config{MTU: 1400, TemplateRefreshMessages: 4})
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
	got := n.Records(t)
	log := n.Log()
	m := regexp.MustCompile(`Flows: (\d+), Packets: \d+, Bytes: \d+, Sequence Errors: (\d+), Bad Packets: (\d+)`).FindStringSubmatch(log)
	if m == nil || m[1] != fmt.Sprint(len(recs)) || m[2] != "0" || m[3] != "0" {
		t.Fatalf("nfcapd summary %q, want %d flows, no sequence errors, no bad packets\n%s", m, len(recs), log)
	}
	if len(got) != len(recs) {
		t.Fatalf("nfdump shows %d flows, want %d", len(got), len(recs))
	}
	byKey := map[flow.Key][]peertest.NfdumpRecord{}
	for _, f := range got {
		k := nfKey(t, &f)
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
		check("first", f.First, peertest.FormatNfdumpTime(r.First))
		check("last", f.Last, peertest.FormatNfdumpTime(r.Last))
		check("input", f.Input, r.Ingress)
		check("vlan", f.SrcVLAN, r.VLAN)
		check("src mac", f.InSrcMAC, macString(r.SrcMAC))
		check("dst mac", f.InDstMAC, macString(r.DstMAC))
		if r.Proto == 6 {
			check("tcp flags", f.TCPFlags, peertest.NfdumpFlags(r.TCPFlags))
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

// TestNfcapdLedger exports with the loss ledger on (an options message
// before the first data and one after the last, per domain) and checks
// nfcapd reads every flow with no sequence error.
func TestNfcapdLedger(t *testing.T) {
	n := peertest.StartNfcapd(t)
	recs := ipfixtest.Random(9, 400)
	e, err := New(n.URL(), &Config{MTU: 1400, TemplateRefreshMessages: 1 << 20, Ledger: testLedger})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(recs); i += 100 {
		if err := e.Export(recs[i : i+100]); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	got := n.Records(t)
	m := regexp.MustCompile(`Flows: (\d+), Packets: \d+, Bytes: \d+, Sequence Errors: (\d+), Bad Packets: (\d+)`).FindStringSubmatch(n.Log())
	if m == nil || m[1] != fmt.Sprint(len(recs)) || m[2] != "0" || m[3] != "0" {
		t.Fatalf("nfcapd summary %q, want %d flows, no sequence errors, no bad packets\n%s", m, len(recs), n.Log())
	}
	if len(got) != len(recs) {
		t.Fatalf("nfdump shows %d flows, want %d", len(got), len(recs))
	}
}

package report

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// TestFromStoreAppliesStoredSampling: a classified report read from the
// store scales records of an exporter that announced 1-in-10 sampling
// after sending them (and carries no interval per record), as the plain
// report does.
func TestFromStoreAppliesStoredSampling(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "flows.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := store.Origin{Exporter: "192.0.2.9", Domain: 4}
	base := int64(1_700_000_000_000_000_000)
	rec := flow.Record{
		Key:     flow.Key{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Sport: 5000, Dport: 53, Proto: 17},
		Packets: 3, Octets: 300, First: base, Last: base + 1e9, IPVersion: 4, EndReason: flow.EndIdle,
	}
	if err := st.Put(o, []flow.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutAnnouncements(map[store.Origin][]store.Announcement{o: {{At: time.Unix(0, base+5e9), Since: base + 1e9, Interval: 10}}}); err != nil {
		t.Fatal(err)
	}
	rep, err := FromStoreQuery(context.Background(), st, store.Query{}, Options{Rules: classify.Default()})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.Octets != 300 || s.EstimatedOctets != 3000 || s.SamplingUnknown != 0 {
		t.Fatalf("summary: %d octets, %d estimated, %d records of unknown sampling; want 300, 3000, 0", s.Octets, s.EstimatedOctets, s.SamplingUnknown)
	}
}

// TestPairContext checks that an FTP data connection is FTP by its control
// connection, through Build's two passes over real flow records.
func TestPairContext(t *testing.T) {
	cli, srv := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	rec := func(src, dst netip.Addr, sp, dp uint16, first int64, syms ...flow.SymptomCount) store.StoredFlow {
		return store.StoredFlow{Record: flow.Record{Key: flow.Key{Src: src, Dst: dst, Sport: sp, Dport: dp, Proto: 6},
			Packets: 5, Octets: 500, First: first, Last: first + 1e9, TCPFlags: 0x02, Symptoms: syms}}
	}
	names := map[uint16]string{1: "FTP", 2: "MP3"}
	flows := []store.StoredFlow{
		rec(cli, srv, 40000, 21, 0, flow.SymptomCount{ID: 1, Count: 5}),
		rec(srv, cli, 21, 40000, 1e6, flow.SymptomCount{ID: 1, Count: 3}),
		rec(cli, srv, 40001, 30000, 5e8),
		rec(srv, cli, 30000, 40001, 6e8, flow.SymptomCount{ID: 2, Count: 90}),
		// Later than PairWindow: no context.
		rec(cli, srv, 40002, 30001, 200e9),
		rec(srv, cli, 30001, 40002, 200e9+1e6, flow.SymptomCount{ID: 2, Count: 90}),
	}
	rep := Build(flows, Options{SymptomName: func(id uint16) string { return names[id] }, Rules: classify.Default()})
	got := map[uint16]string{}
	for _, b := range rep.Biflows {
		got[b.Dport] = b.Category
	}
	if got[21] != "FTP" || got[30000] != "FTP" || got[30001] != "Leisure" {
		t.Fatalf("categories by port %v", got)
	}

	// Announced data connections: the server's 227 named 30002, the
	// client's PORT 30003 (the server connects to it). They carry an HTML
	// page (a WEB symptom), which the pair rule leaves to Web; 30004 was
	// not announced.
	names[3] = "WEB"
	ctl := rec(cli, srv, 40010, 21, 300e9, flow.SymptomCount{ID: 1, Count: 5})
	ctl.Record.App.FTPData = "30003"
	ctlr := rec(srv, cli, 21, 40010, 300e9+1e6, flow.SymptomCount{ID: 1, Count: 3})
	ctlr.Record.App.FTPData = "30002"
	html := flow.SymptomCount{ID: 3, Count: 2}
	ann := append(slices.Clone(flows), ctl, ctlr,
		rec(cli, srv, 40011, 30002, 301e9), rec(srv, cli, 30002, 40011, 301e9+1e6, html),
		rec(srv, cli, 20, 30003, 302e9, html), rec(cli, srv, 30003, 20, 302e9+1e6),
		rec(cli, srv, 40012, 30004, 303e9), rec(srv, cli, 30004, 40012, 303e9+1e6, html))
	rep = Build(ann, Options{SymptomName: func(id uint16) string { return names[id] }, Rules: classify.Default()})
	got = map[uint16]string{}
	for _, b := range rep.Biflows {
		got[b.Dport] = b.Category
	}
	if got[30002] != "FTP" || got[30003] != "FTP" || got[30004] != "Web" {
		t.Fatalf("announced 30002 (PASV) and 30003 (PORT), not 30004: categories by port %v", got)
	}
	// Without the pair context the data connection is media: the default
	// rules less those that read pair.
	noPair := withoutPair(t, classify.Default())
	plain := Build(flows, Options{SymptomName: func(id uint16) string { return names[id] }, Rules: noPair})
	for _, b := range plain.Biflows {
		if b.Dport == 30000 && b.Category != "Leisure" {
			t.Errorf("without pair: %q", b.Category)
		}
	}
}

// withoutPair returns r without its rules that read the pair context
// (pair and ftp_data).
func withoutPair(t *testing.T, r *classify.Rules) *classify.Rules {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for _, ru := range r.Rules() {
		if strings.Contains(ru.When, "pair") || strings.Contains(ru.When, "ftp_data") {
			continue
		}
		fmt.Fprintf(&b, "  - category: %q\n    when: %q\n", ru.Category, ru.When)
	}
	nr, err := classify.Parse("no-pair.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if nr.UsesPair() {
		t.Fatal("rules without pair still use pair")
	}
	return nr
}

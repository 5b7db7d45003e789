package server

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// TestConsumeBatchSameAsConsume: records handed over already encoded
// (ConsumeBatch, mira-collector's path) end up pending exactly as the
// same records handed over as flow.Records (Consume, the forwarding
// path): the same bytes per origin, the same duplicates dropped for a
// spooling exporter's replays, whole and partial, and the same sequence
// numbers noted.
func TestConsumeBatchSameAsConsume(t *testing.T) {
	cfg, err := config.LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	slice, batch := New(cfg, log), New(cfg, log)
	recs := ipfixtest.Random(17, 40)
	a := netip.MustParseAddrPort("192.0.2.7:4739")
	b := netip.MustParseAddrPort("[2001:db8::9]:4739")
	// (exporter, domain, instance, sequence, records): fresh messages, a
	// whole replay, replays overlapping partly, another domain and an
	// exporter without a spool instance.
	msgs := []struct {
		ap       netip.AddrPort
		domain   uint32
		instance uint64
		seq      uint32
		from, to int
	}{
		{a, 1, 7, 100, 0, 10},
		{a, 1, 7, 110, 10, 20},
		{a, 1, 7, 100, 0, 10},  // replayed whole
		{a, 1, 7, 105, 5, 15},  // overlaps both
		{a, 1, 7, 118, 18, 30}, // overlaps the end of the second
		{a, 1, 7, 95, 25, 40},  // overlaps the start of the first
		{a, 2, 7, 100, 0, 10},  // another domain: new
		{b, 1, 0, 100, 0, 10},  // no spool instance: never dropped
		{b, 1, 0, 100, 0, 10},  // (the same again)
		{a, 1, 9, 100, 30, 40}, // a new instance of the process
	}
	for _, m := range msgs {
		o := collector.Origin{Exporter: m.ap, Domain: m.domain, Transport: "udp", Sequence: m.seq, Instance: m.instance}
		part := recs[m.from:m.to]
		slice.Consume(o, part)
		e := batch.NewBatch()
		for i := range part {
			e.Add(&part[i])
		}
		batch.ConsumeBatch(o, e)
	}
	dump := func(s *Server) string {
		var out bytes.Buffer
		for _, e := range s.pending.list {
			fmt.Fprintf(&out, "%s/%d: %d records\n", e.Origin.Exporter, e.Origin.Domain, e.Len())
			e.EachEncoded(func(first, last int64, rec []byte) error {
				fmt.Fprintf(&out, "%d %d %x\n", first, last, rec)
				return nil
			})
		}
		fmt.Fprintf(&out, "pending %d, duplicates %d, dirty %d\n", s.pending.n, s.duplicates, len(s.dirtySeq))
		var seqs []string // (map order varies)
		for so, set := range s.seqs {
			seqs = append(seqs, fmt.Sprintf("%s/%d instance %d: 115 %v, 99 %v\n", so.Exporter, so.Domain, so.Instance, set.Contains(115), set.Contains(99)))
		}
		slices.Sort(seqs)
		for _, l := range seqs {
			out.WriteString(l)
		}
		// The latest record end noted per origin: an announcement's Since.
		for _, k := range []pendKey{{a.Addr(), 1}, {a.Addr(), 2}, {b.Addr(), 1}} {
			ann, _ := s.smp.Sampling(k, 10, false, time.Unix(0, 0))
			fmt.Fprintf(&out, "%s/%d since %d\n", k.addr, k.domain, ann.Since)
		}
		return out.String()
	}
	want, got := dump(slice), dump(batch)
	if want != got {
		t.Fatalf("Consume:\n%s\nConsumeBatch:\n%s", want, got)
	}
	// Kept: 10 + 10 + 0 + 0 + 10 (120-129 of 118-129) + 5 (95-99 of
	// 95-109) + 10 + 10 + 10 + 10; dropped: 10 + 10 + 2 + 10.
	if slice.pending.n != 75 || slice.duplicates != 32 {
		t.Fatalf("%d pending, %d duplicates; want 75 and 32", slice.pending.n, slice.duplicates)
	}
	if _, ok := batch.NewBatch().(*store.Encoded); !ok {
		t.Fatal("NewBatch is not a store.Encoded")
	}
}

// TestPendingRoom: a batch that must grow takes the buffers of the
// largest idle batch of its set (an origin that stopped sending), its
// records kept; a batch with room, or a set without an idle batch
// larger than it, is left as it is.
func TestPendingRoom(t *testing.T) {
	recs := ipfixtest.Random(21, 3000)
	msg := func(from, to int) *store.Encoded {
		e := &store.Encoded{}
		e.AddAll(recs[from:to])
		return e
	}
	p := newPendingSet()
	a1 := pendKey{addr: netip.MustParseAddr("192.0.2.1"), domain: 1}
	a2 := pendKey{addr: netip.MustParseAddr("192.0.2.1"), domain: 2}
	small := pendKey{addr: netip.MustParseAddr("192.0.2.2"), domain: 1}
	old := p.batch(a1)
	old.Append(msg(0, 2000))
	p.batch(small).Append(msg(0, 10))
	p.reset() // a commit: a1's and small's batches empty, kept
	big := old.Cap()

	d := p.batch(a2) // the exporter under a new domain
	d.Append(msg(0, 5))
	m := msg(5, 100)
	p.room(d, m)
	if d.Cap() != big || old.Cap() >= big || old.Len() != 0 {
		t.Fatalf("new origin's batch: cap %d, idle one's %d (len %d), want %d taken", d.Cap(), old.Cap(), old.Len(), big)
	}
	d.Append(m)
	want := msg(0, 100)
	if got, wantB := encodedBytes(t, d), encodedBytes(t, want); !bytes.Equal(got, wantB) {
		t.Fatal("records changed by taking another batch's buffers")
	}
	// d has room now: nothing is taken.
	before := old.Cap()
	p.room(d, msg(0, 1))
	if old.Cap() != before || d.Cap() != big {
		t.Fatal("a batch with room took another's buffers")
	}
	// No idle batch larger than d: d grows itself.
	p.room(d, msg(0, 3000))
	if d.Cap() != big {
		t.Fatal("a batch took a smaller idle batch's buffers")
	}
}

// encodedBytes returns e's records' encodings, in order.
func encodedBytes(t *testing.T, e *store.Encoded) []byte {
	var b []byte
	if err := e.EachEncoded(func(first, last int64, rec []byte) error {
		b = fmt.Appendf(b, "%d %d %x\n", first, last, rec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

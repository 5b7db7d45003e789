package exporter

import (
	"errors"
	"io"
	"net"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// link is a stream transport whose collector can be down; each
// connection's messages are kept apart, and a close is confirmed (as by
// MIRA's collector) while up.
type link struct {
	up    bool
	sess  uint64
	conns [][][]byte
	// unconfirmed: the collector reads everything but closes without
	// confirming it stored it (MIRA's collector on a full disk).
	unconfirmed bool
	dials       int // Reconnect calls
}

func (l *link) Begin() (uint64, error) { return l.sess, nil }
func (l *link) Reconnect() (uint64, error) {
	l.dials++
	if !l.up {
		return l.sess, errors.New("connection refused")
	}
	l.sess++
	l.conns = append(l.conns, nil)
	return l.sess, nil
}
func (l *link) Write(m []byte) error {
	if !l.up || len(l.conns) == 0 {
		return errors.New("broken pipe")
	}
	l.conns[len(l.conns)-1] = append(l.conns[len(l.conns)-1], slices.Clone(m))
	return nil
}
func (l *link) Reliable() bool { return true }
func (l *link) Flush() error   { return nil }
func (l *link) Close() error   { return nil }
func (l *link) closeConfirm() (bool, error) {
	if !l.up {
		return false, errors.New("connection reset")
	}
	if l.unconfirmed {
		return false, errors.New("the collector closed without confirming it stored the stream")
	}
	return true, nil
}

// abandon closes the spool file as a killed process would leave it:
// what was saved stays, nothing is delivered.
func (s *Spool) abandon() { s.db.Close() }

// TestSpoolRestartReplaysInOrder exports while the collector is down,
// abandons the spool (a killed probe), opens it again in a new exporter
// that exports more, and checks the collector's one connection carries
// every record once, in sequence, decodable from the templates the spool
// sends first.
func TestSpoolRestartReplaysInOrder(t *testing.T) {
	dir := t.TempDir()
	down := &link{}
	sp, err := OpenSpool(down, SpoolConfig{Dir: dir, RetryMin: time.Nanosecond, RetryMax: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	e := NewTransport(sp, &Config{StreamMessageSize: 2000})
	first := ipfixtest.Random(3, 500)
	if err := e.Export(first); err != nil {
		t.Fatal(err)
	}
	if err := sp.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Spooled != 500 || st.SpoolDropped != 0 {
		t.Fatalf("spooled %d, dropped %d; want 500, 0", st.Spooled, st.SpoolDropped)
	}
	sp.abandon()

	up := &link{up: true}
	sp2, err := OpenSpool(up, SpoolConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if sp2.Instance() != sp.Instance() {
		t.Fatalf("instance %x after reopening, was %x", sp2.Instance(), sp.Instance())
	}
	e2 := NewTransport(sp2, &Config{StreamMessageSize: 2000})
	second := ipfixtest.Random(4, 300)
	if err := e2.Export(second); err != nil {
		t.Fatal(err)
	}
	if err := e2.Close(); err != nil {
		t.Fatal(err)
	}
	if len(up.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(up.conns))
	}
	msgs := up.conns[0]
	s := ipfix.NewSession("collector")
	var got []flow.Record
	var instance uint64
	s.OnOptions = func(_ uint32, o ipfix.DomainOptions) { instance = o.SpoolInstance }
	for i, m := range msgs {
		n := len(got)
		if got, _, err = s.Decode(m, got); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		for j := n; j < len(got); j++ {
			got[j].Symptoms = slices.Clone(got[j].Symptoms)
		}
	}
	if instance != sp.Instance() {
		t.Errorf("collector learnt instance %x, want %x", instance, sp.Instance())
	}
	want := append(slices.Clone(first), second...)
	if !reflect.DeepEqual(byDomain(got), byDomain(want)) {
		t.Fatalf("collector decoded %d records, want the %d exported, in order", len(got), len(want))
	}
	if st := s.Stats(); st.LostRecords != 0 || st.OutOfOrder != 0 {
		t.Fatalf("sequence: %d lost, %d out of order", st.LostRecords, st.OutOfOrder)
	}
	if st := e2.Stats(); st.Spooled != 0 {
		t.Fatalf("%d records still spooled after a confirmed close", st.Spooled)
	}
}

// TestSpoolFullDropsOldest fills a small spool with the collector down
// and checks the oldest records are dropped, counted, and the rest
// delivered once it is back.
func TestSpoolFullDropsOldest(t *testing.T) {
	l := &link{}
	sp, err := OpenSpool(l, SpoolConfig{Dir: t.TempDir(), MaxBytes: 20000, RetryMin: time.Nanosecond, RetryMax: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	e := NewTransport(sp, &Config{StreamMessageSize: 2000})
	recs := ipfixtest.Random(5, 2000)
	for i := 0; i < len(recs); i += 100 {
		if err := e.Export(recs[i : i+100]); err != nil {
			t.Fatal(err)
		}
	}
	st := e.Stats()
	if st.SpoolDropped == 0 || st.SpoolDropped+st.Spooled != uint64(len(recs)) {
		t.Fatalf("dropped %d + spooled %d, want > 0 dropped and %d in all", st.SpoolDropped, st.Spooled, len(recs))
	}
	l.up = true
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	var got []flow.Record
	s := ipfix.NewSession("collector")
	for _, m := range l.conns[0] {
		got, _, _ = s.Decode(m, got)
	}
	if uint64(len(got)) != st.Spooled {
		t.Fatalf("delivered %d, spooled %d", len(got), st.Spooled)
	}
	// The newest survive, the oldest do not.
	has := func(r flow.Record) bool {
		return slices.ContainsFunc(got, func(g flow.Record) bool { return g.Key == r.Key && g.Packets == r.Packets })
	}
	if !has(recs[len(recs)-1]) || has(recs[0]) {
		t.Fatalf("newest delivered %v, oldest delivered %v; want true, false", has(recs[len(recs)-1]), has(recs[0]))
	}
}

// TestSpoolDrainTimeout: Close gives up after DrainTimeout with the
// collector down and says how many records remain.
func TestSpoolDrainTimeout(t *testing.T) {
	dir := t.TempDir()
	sp, err := OpenSpool(&link{}, SpoolConfig{Dir: dir, DrainTimeout: 50 * time.Millisecond, RetryMin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := NewTransport(sp, nil)
	if err := e.Export(ipfixtest.Random(6, 10)); err != nil {
		t.Fatal(err)
	}
	err = e.Close()
	if !errors.Is(err, ErrUndelivered) {
		t.Fatalf("Close = %v, want ErrUndelivered", err)
	}
	t.Log(err)
}

// TestSpoolBacksOffUnconfirmed: a collector that takes every connection
// but never confirms it stored the stream (a full disk) gets the spool
// again after a growing backoff, not every RetryMin: a successful
// connection is no progress. Before, each reconnect reset the backoff and
// a closing probe replayed its whole spool every RetryMin until its
// DrainTimeout (on a full disk: millions of duplicates a minute).
func TestSpoolBacksOffUnconfirmed(t *testing.T) {
	l := &link{up: true, unconfirmed: true}
	sp, err := OpenSpool(l, SpoolConfig{Dir: t.TempDir(), DrainTimeout: time.Second, RetryMin: 10 * time.Millisecond, RetryMax: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := NewTransport(sp, nil)
	if err := e.Export(ipfixtest.Random(6, 10)); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); !errors.Is(err, ErrUndelivered) {
		t.Fatalf("Close = %v, want ErrUndelivered", err)
	}
	// Backoff 10, 20, 40, ... ms: at most 7 connections fit in 1 s.
	if n := len(l.conns); n < 2 || n > 7 {
		t.Fatalf("%d connections in the 1 s drain, want 2-7 (doubling backoff from 10 ms)", n)
	}
	if got := sp.Stats().Connects; got != uint64(len(l.conns)) {
		t.Errorf("Stats.Connects %d, link saw %d", got, len(l.conns))
	}
}

// TestTCPCloseConfirm connects a TCP transport to a listener that reads
// to the end of the stream, then answers with an empty IPFIX message as
// MIRA's collector does once it stored the stream: closeConfirm must
// half-close, read the answer and confirm. A plain close without it is
// not a confirmation.
func TestTCPCloseConfirm(t *testing.T) {
	for _, answer := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			io.Copy(io.Discard, c)
			if answer {
				b := ipfix.AppendHeader(nil, ipfix.Header{})
				ipfix.FinishMessage(b)
				c.Write(b)
			}
		}()
		tr, err := NewTCP(ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		tcp := tr.(*tcpTransport)
		if _, err := tcp.Reconnect(); err != nil {
			t.Fatal(err)
		}
		if err := tcp.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if w, _, _ := tcp.streamPos(); w != 1000 {
			t.Errorf("stream position %d after 1000 bytes", w)
		}
		ok, err := tcp.closeConfirm()
		if ok != answer {
			t.Errorf("collector answered %v: closeConfirm = %v, %v", answer, ok, err)
		}
		ln.Close()
	}
}

// TestSpoolFullHealthyCollector: a spool smaller than a burst, in front
// of a collector that takes everything, loses nothing. Before, a full
// spool dropped the oldest messages whether they had been sent (on the
// wire, only awaiting the Window) or not: it counted delivered records
// as lost, and dropped a burst's messages before sending them, the
// template definitions among them, so that the collector refused the
// records after them (data-without-template) and counted nothing.
func TestSpoolFullHealthyCollector(t *testing.T) {
	l := &link{up: true}
	sp, err := OpenSpool(l, SpoolConfig{Dir: t.TempDir(), MaxBytes: 20000, RetryMin: time.Nanosecond, RetryMax: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	e := NewTransport(sp, &Config{StreamMessageSize: 2000})
	recs := ipfixtest.Random(7, 3000)
	// Steady export, then a burst of 2000 records (a live probe's table
	// flushed at its end) in one call, ten times the spool.
	for i := 0; i < 1000; i += 50 {
		if err := e.Export(recs[i : i+50]); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Export(recs[1000:]); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.SpoolDropped != 0 {
		t.Errorf("spool counted %d records dropped; the collector took everything", st.SpoolDropped)
	}
	if len(l.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(l.conns))
	}
	s := ipfix.NewSession("collector")
	var got []flow.Record
	for i, m := range l.conns[0] {
		if got, _, err = s.Decode(m, got); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if len(got) != len(recs) {
		t.Errorf("collector decoded %d records, want %d", len(got), len(recs))
	}
	if st := s.Stats(); st.LostRecords != 0 {
		t.Errorf("collector counted %d records lost by sequence", st.LostRecords)
	}
}

// TestSpoolFullCollectorLost: the spool overflows on a live connection
// (it forgets messages already sent), then the collector dies having
// stored nothing of that connection (killed before its commit), and the
// spool overflows again while it is down. Every record is either
// delivered on the next connection or counted dropped, exactly: what the
// spool forgot after sending it is counted once the connection fails
// before outliving it (a collector counts no sequence gap at a spool's
// replay, so nobody else would).
func TestSpoolFullCollectorLost(t *testing.T) {
	l := &link{up: true}
	sp, err := OpenSpool(l, SpoolConfig{Dir: t.TempDir(), MaxBytes: 20000, RetryMin: time.Nanosecond, RetryMax: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	e := NewTransport(sp, &Config{StreamMessageSize: 2000})
	recs := ipfixtest.Random(8, 3000)
	for i := 0; i < 1000; i += 50 {
		if err := e.Export(recs[i : i+50]); err != nil {
			t.Fatal(err)
		}
	}
	if d := e.Stats().SpoolDropped; d != 0 {
		t.Fatalf("%d records counted dropped while the collector took everything", d)
	}
	l.up = false
	for i := 1000; i < len(recs); i += 100 {
		if err := e.Export(recs[i : i+100]); err != nil {
			t.Fatal(err)
		}
	}
	dropped := e.Stats().SpoolDropped
	l.up = true
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if len(l.conns) != 2 {
		t.Fatalf("%d connections, want 2", len(l.conns))
	}
	// The collector lost the first connection's records.
	s := ipfix.NewSession("collector")
	var got []flow.Record
	for i, m := range l.conns[1] {
		if got, _, err = s.Decode(m, got); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if n := uint64(len(got)) + dropped; n != uint64(len(recs)) {
		t.Errorf("%d records delivered + %d counted dropped = %d, want the %d exported", len(got), dropped, n, len(recs))
	}
}

// TestSpoolStopDraining: a Close that would drain until delivered
// (DrainTimeout 0) to a collector that never confirms (a cluster ingest
// node, a full disk) returns once told to stop, with the records left
// spooled; before, only killing the process ended it.
func TestSpoolStopDraining(t *testing.T) {
	l := &link{up: true, unconfirmed: true}
	sp, err := OpenSpool(l, SpoolConfig{Dir: t.TempDir(), RetryMin: time.Millisecond, RetryMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := NewTransport(sp, nil)
	if err := e.Export(ipfixtest.Random(9, 10)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Close() }()
	select {
	case err := <-done:
		t.Fatalf("Close returned %v before being told to stop; the collector never confirms", err)
	case <-time.After(300 * time.Millisecond): // Close is draining: it must not return by itself
	}
	e.StopDraining()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUndelivered) {
			t.Fatalf("Close = %v, want ErrUndelivered", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close still draining 10 s after StopDraining")
	}
	if st := sp.Stats(); st.Spooled != 10 {
		t.Errorf("%d records left spooled, want the 10 exported", st.Spooled)
	}
}

// TestCollectorDownFailsFast: without a spool, a message whose send
// fails reconnects once, at once; then the messages that follow fail at
// once (dropped, counted) for RetryMin, doubling to RetryMax while the
// collector stays down, and the next one tries once. Before, every
// message retried 5 times with backoff (1.55 s by default) while the
// probe's flow export, and with it the capture, waited: a collector
// outage made the probe lose packets at its ring (18,485 to 18,899 in
// live trials).
func TestCollectorDownFailsFast(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := &link{}
	e := NewTransport(l, &Config{RetryMin: time.Second, RetryMax: 4 * time.Second, Now: func() time.Time { return now }})
	recs := ipfixtest.Random(10, 200)
	start := time.Now()
	// Twenty messages 500 ms apart: attempts at 0 (the failed send's
	// reconnect), then after the backoffs 1, 2, 4, 4 s: at 1, 3, 7 s.
	for i := 0; i < 20; i++ {
		if err := e.Export(recs[i*10 : i*10+10]); err == nil {
			t.Fatalf("export %d succeeded with the collector down", i)
		}
		now = now.Add(500 * time.Millisecond)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("20 failed exports took %v: they waited", took)
	}
	if l.dials != 4 {
		t.Errorf("%d reconnects for 20 messages over 10 s to a collector down, want 4 (at 0, 1, 3, 7 s)", l.dials)
	}
	if st := e.Stats(); st.Dropped != 200 {
		t.Errorf("dropped %d records, want 200", st.Dropped)
	}
	// The collector back: the message after the backoff (4 s from 7 s)
	// is delivered, the one before fails at once.
	l.up = true
	if err := e.Export(recs[:1]); err == nil {
		t.Fatal("export succeeded within the backoff")
	}
	now = now.Add(time.Second)
	if err := e.Export(recs[1:2]); err != nil {
		t.Fatalf("export after the backoff with the collector back: %v", err)
	}
	if err := e.Export(recs[2:3]); err != nil {
		t.Fatalf("export after a delivered one: %v", err)
	}
	if n := l.dials; n != 5 {
		t.Errorf("%d reconnects in all, want 5", n)
	}
}

// TestSpoolConnectedBeforeFirstRecord: a spool that connects before it
// has seen any record (a live probe flushes its exporters every second
// from the start) announces its instance before the first record of each
// domain on that connection. Before, the connection carried no instance
// (none was known at connect time), so the collector stored its records
// as an ordinary exporter's and, after a collector restart, the replayed
// copies were not recognised as the same records: stored twice (961
// duplicates, +2.4 % of packets, in a live trial).
func TestSpoolConnectedBeforeFirstRecord(t *testing.T) {
	l := &link{up: true}
	sp, err := OpenSpool(l, SpoolConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e := NewTransport(sp, &Config{StreamMessageSize: 2000})
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(l.conns) != 1 {
		t.Fatalf("%d connections after a flush, want 1 (the spool connects)", len(l.conns))
	}
	if err := e.Export(ipfixtest.Random(12, 300)); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	s := ipfix.NewSession("collector")
	instance := map[uint32]uint64{}
	s.OnOptions = func(d uint32, o ipfix.DomainOptions) { instance[d] = o.SpoolInstance }
	var got []flow.Record
	for i, m := range l.conns[0] {
		n := len(got)
		if got, _, err = s.Decode(m, got); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		for _, r := range got[n:] {
			if instance[r.ObservationDomain] != sp.Instance() {
				t.Fatalf("message %d: a record of domain %d before the spool's instance (%x known, want %x)",
					i, r.ObservationDomain, instance[r.ObservationDomain], sp.Instance())
			}
		}
	}
	if len(got) != 300 {
		t.Fatalf("decoded %d records, want 300", len(got))
	}
}

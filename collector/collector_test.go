package collector

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// sink is a Consumer that keeps deep copies of what it is given and
// signals when it holds at least want records.
type sink struct {
	mu      sync.Mutex
	recs    []flow.Record
	origins []Origin
	want    int
	done    chan struct{}
}

func newSink(want int) *sink { return &sink{want: want, done: make(chan struct{})} }

func (s *sink) Consume(o Origin, recs []flow.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		r.Symptoms = slices.Clone(r.Symptoms)
		s.recs = append(s.recs, r)
		s.origins = append(s.origins, o)
	}
	if len(s.recs) >= s.want && s.want > 0 {
		close(s.done)
		s.want = 0
	}
}

func (s *sink) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.mu.Lock()
		defer s.mu.Unlock()
		t.Fatalf("collector delivered %d records, want %d", len(s.recs), s.want)
	}
}

// sortRecs orders records by domain and time, stably: the exporter keeps
// the order within a domain.
func sortRecs(recs []flow.Record) []flow.Record {
	out := slices.Clone(recs)
	slices.SortStableFunc(out, func(a, b flow.Record) int { return int(a.ObservationDomain) - int(b.ObservationDomain) })
	return out
}

func checkSame(t *testing.T, got, want []flow.Record) {
	t.Helper()
	got, want = sortRecs(got), sortRecs(want)
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("record %d:\n got  %+v\n want %+v", i, got[i], want[i])
		}
	}
}

func testRecords() []flow.Record {
	return append(ipfixtest.Samples(), ipfixtest.Random(11, 2000)...)
}

func TestRoundTripUDP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recs := testRecords()
	s := newSink(len(recs))
	c := New(s, nil)
	addr, err := c.ListenUDP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e, err := exporter.New("udp://"+addr.String(), &exporter.Config{TemplateRefreshMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	// Small batches: the socket buffer must not overflow on a busy machine.
	for i := 0; i < len(recs); i += 50 {
		if err := e.Export(recs[i:min(i+50, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
	s.wait(t)
	checkSame(t, s.recs, recs)
	for i, o := range s.origins {
		if o.Transport != "udp" || o.Exporter.Addr() != netip.MustParseAddr("127.0.0.1") || o.Domain != s.recs[i].ObservationDomain {
			t.Fatalf("origin %+v for record in domain %d", o, s.recs[i].ObservationDomain)
		}
	}
	st := c.Stats()
	if st.Records != uint64(len(recs)) || st.LostRecords != 0 || len(st.Malformed) != 0 || st.Sessions != 1 || st.Templates == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRoundTripTCP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recs := testRecords()
	s := newSink(len(recs))
	c := New(s, nil)
	addr, err := c.ListenTCP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e, err := exporter.New("tcp://"+addr.String(), &exporter.Config{ExporterMetadata: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	e.Close()
	s.wait(t)
	checkSame(t, s.recs, recs)
	st := c.Stats()
	if st.Records != uint64(len(recs)) || st.OptionsRecords != 3 || st.LostRecords != 0 || len(st.Malformed) != 0 {
		t.Fatalf("stats %+v", st)
	}
	if s.origins[0].Transport != "tcp" {
		t.Fatalf("origin %+v", s.origins[0])
	}
}

// TestServeStream joins exporter and collector in one process through a
// byte stream, as `mira analyze` does.
func TestServeStream(t *testing.T) {
	var buf bytes.Buffer
	recs := testRecords()
	e := exporter.NewWriter(&buf, nil)
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	e.Close()
	s := newSink(0)
	c := New(s, nil)
	if err := c.ServeStream(context.Background(), &buf, Origin{Transport: "file"}); err != nil {
		t.Fatal(err)
	}
	checkSame(t, s.recs, recs)
	if st := c.Stats(); st.Sessions != 0 || st.SessionsTotal != 1 || st.Records != uint64(len(recs)) {
		t.Fatalf("stats %+v", st)
	}
}

func TestServeStreamFraming(t *testing.T) {
	var buf bytes.Buffer
	e := exporter.NewWriter(&buf, nil)
	e.Export(ipfixtest.Samples())
	e.Close()
	whole := buf.Bytes()
	c := New(newSink(0), nil)
	// Cut in the middle of the last message.
	err := c.ServeStream(context.Background(), bytes.NewReader(whole[:len(whole)-3]), Origin{Transport: "file"})
	if err == nil || !strings.Contains(err.Error(), "truncated message") {
		t.Fatalf("truncated stream: %v", err)
	}
	// Garbage after the messages.
	bad := append(slices.Clone(whole), 0, 9, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	err = c.ServeStream(context.Background(), bytes.NewReader(bad), Origin{Transport: "file"})
	if err == nil || !strings.Contains(err.Error(), "version 9") || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", len(whole))) {
		t.Fatalf("bad version: %v", err)
	}
	if st := c.Stats(); st.Malformed["stream-framing"] != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestUDPLossAndMalformed drops one datagram of an exchange and sends a
// garbage one: the collector counts the lost records and the malformed
// datagram, and keeps decoding.
func TestUDPLossAndMalformed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Capture the exporter's datagrams first.
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	recs := ipfixtest.Random(12, 200)
	for i := range recs {
		recs[i].ObservationDomain = 1
		// Without application metadata: its template variants would put
		// a new template in every datagram of so few records.
		recs[i].App = flow.App{}
	}
	// An Ethernet-sized MTU: on loopback the path MTU would put every
	// record in one datagram, and there would be none to drop.
	e, _ := exporter.New("udp://"+pc.LocalAddr().String(), &exporter.Config{MTU: 1400})
	e.Export(recs)
	e.Close()
	var dgrams [][]byte
	buf := make([]byte, 65536)
	for uint64(len(dgrams)) < e.Stats().Messages {
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		dgrams = append(dgrams, slices.Clone(buf[:n]))
	}
	if len(dgrams) < 4 {
		t.Fatalf("only %d datagrams", len(dgrams))
	}
	// Drop a datagram that carries no template: the loss is then only its
	// records (losing templates loses data until the next refresh).
	drop := -1
	for i := 1; i < len(dgrams)-1 && drop < 0; i++ {
		if !hasTemplateSet(dgrams[i]) {
			drop = i
		}
	}
	if drop < 0 {
		t.Fatal("every datagram carries templates")
	}
	h, _ := ipfix.ParseHeader(dgrams[drop])
	next, _ := ipfix.ParseHeader(dgrams[drop+1])
	lost := next.Sequence - h.Sequence
	send := append(slices.Clone(dgrams[:drop]), []byte("not ipfix at all, clearly"))
	send = append(send, dgrams[drop+1:]...)

	s := newSink(len(recs) - int(lost))
	c := New(s, nil)
	addr, err := c.ListenUDP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, d := range send {
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	s.wait(t)
	st := c.Stats()
	if st.LostRecords != uint64(lost) || st.Malformed["bad-version"] != 1 || st.Messages != uint64(len(send)-1) {
		t.Fatalf("lost %d (want %d), stats %+v", st.LostRecords, lost, st)
	}
}

func hasTemplateSet(m []byte) bool {
	for off := ipfix.HeaderLen; off+4 <= len(m); {
		id := int(m[off])<<8 | int(m[off+1])
		l := int(m[off+2])<<8 | int(m[off+3])
		if id == ipfix.TemplateSetID || id == ipfix.OptionsSetID {
			return true
		}
		if l < 4 {
			return false
		}
		off += l
	}
	return false
}

func corpus(t *testing.T, name string) string {
	t.Helper()
	return peertest.CorpusFile(t, "generated", name)
}

func serveFile(t *testing.T, path string) []flow.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := newSink(0)
	c := New(s, nil)
	if err := c.ServeStream(context.Background(), f, Origin{Transport: "file"}); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); len(st.Malformed) != 0 {
		t.Fatalf("%s: malformed %v", path, st.Malformed)
	}
	return s.recs
}

type flowSummary struct {
	key          flow.Key
	pkts, octets uint64
	first, last  string
	flags        string
}

func summary(r *flow.Record) flowSummary {
	k := r.Key
	k.VLAN = 0
	f, l := peertest.FormatNfdumpTime(r.First), peertest.FormatNfdumpTime(r.Last)
	return flowSummary{k, r.Packets, r.Octets, f, l, peertest.NfdumpFlags(r.TCPFlags)}
}

func nfSummaries(t *testing.T, fs []peertest.NfdumpRecord) []flowSummary {
	t.Helper()
	var out []flowSummary
	for _, f := range fs {
		src, dst, err := f.Endpoints()
		if err != nil {
			t.Fatalf("%v in %+v", err, f)
		}
		k := flow.Key{Src: src, Dst: dst, Proto: f.Proto}
		k.Sport, k.Dport = f.Ports()
		out = append(out, flowSummary{k, f.InPackets, f.InBytes, f.First, f.Last, f.TCPFlags})
	}
	return out
}

func sortSummaries(s []flowSummary) {
	slices.SortFunc(s, func(a, b flowSummary) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
}

// TestSoftflowdMilli decodes softflowd's IPFIX (flowStart/EndMilliseconds)
// and compares every flow with what nfdump made of the same exchange.
func TestSoftflowdMilli(t *testing.T) {
	recs := serveFile(t, corpus(t, "ipfix-softflowd-milli.ipfix"))
	want := nfSummaries(t, peertest.ReadNfdumpJSON(t, corpus(t, "ipfix-softflowd-milli.nfdump.json")))
	var got []flowSummary
	for i := range recs {
		got = append(got, summary(&recs[i]))
	}
	sortSummaries(got)
	sortSummaries(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded flows differ from nfdump:\n got  %v\n want %v", got, want)
	}
}

// TestSoftflowdBiflow decodes RFC 5103 biflows (reverse counters and flags
// under PEN 29305) into two records each and checks them against nfdump's
// in/out counters, and the flags against the uniflow export of the same
// traffic (nfdump overwrites forward flags with reverse ones).
func TestSoftflowdBiflow(t *testing.T) {
	recs := serveFile(t, corpus(t, "ipfix-softflowd-biflow.ipfix"))
	nf := peertest.ReadNfdumpJSON(t, corpus(t, "ipfix-softflowd-biflow.nfdump.json"))
	var wantPk []string
	for _, f := range nf {
		wantPk = append(wantPk, fmt.Sprintln(f.Src4+f.Src6, f.SrcPort, f.InPackets, f.InBytes, f.First, f.Last))
		if f.OutPackets > 0 {
			wantPk = append(wantPk, fmt.Sprintln(f.Dst4+f.Dst6, f.DstPort, f.OutPackets, f.OutBytes, f.First, f.Last))
		}
	}
	var gotPk []string
	var got []flowSummary
	for i := range recs {
		s := summary(&recs[i])
		got = append(got, s)
		gotPk = append(gotPk, fmt.Sprintln(s.key.Src, s.key.Sport, s.pkts, s.octets, s.first, s.last))
	}
	slices.Sort(wantPk)
	slices.Sort(gotPk)
	if !reflect.DeepEqual(gotPk, wantPk) {
		t.Fatalf("biflow counters differ from nfdump:\n got  %v\n want %v", gotPk, wantPk)
	}
	uni := nfSummaries(t, peertest.ReadNfdumpJSON(t, corpus(t, "ipfix-softflowd-milli.nfdump.json")))
	sortSummaries(got)
	sortSummaries(uni)
	if !reflect.DeepEqual(got, uni) {
		t.Fatalf("biflow records differ from the uniflow export:\n got  %v\n want %v", got, uni)
	}
}

// TestSoftflowdUptime: softflowd replaying an old capture with
// flowStart/EndSysUpTime exports times days after the message's export
// time (its uptimes wrap; nfdump shows the same dates), and some records
// end before they start. Every record is implausible: dropped and
// counted as implausible-time, none reaches the consumer.
func TestSoftflowdUptime(t *testing.T) {
	f, err := os.Open(corpus(t, "ipfix-softflowd-uptime.ipfix"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := newSink(0)
	c := New(s, nil)
	if err := c.ServeStream(context.Background(), f, Origin{Transport: "file"}); err != nil {
		t.Fatal(err)
	}
	milli := serveFile(t, corpus(t, "ipfix-softflowd-milli.ipfix"))
	st := c.Stats()
	if len(s.recs) != 0 || st.Malformed["implausible-time"] != uint64(len(milli)) || len(st.Malformed) != 1 {
		t.Fatalf("%d records passed, malformed %v; want all %d implausible-time", len(s.recs), st.Malformed, len(milli))
	}
}

// BenchmarkServeStream measures the collecting process alone: decoding an
// RFC 5655 byte stream into flow records for a Consumer that drops them.
// $MIRA_BENCH_IPFIX names an RFC 5655 file to decode instead of random
// records (tools/bench/collector.sh leaves one in its work directory).
func BenchmarkServeStream(b *testing.B) {
	var buf bytes.Buffer
	recs := ipfixtest.Random(13, 100000)
	e := exporter.NewWriter(&buf, nil)
	if err := e.Export(recs); err != nil {
		b.Fatal(err)
	}
	e.Close()
	stream := buf.Bytes()
	if name := os.Getenv("MIRA_BENCH_IPFIX"); name != "" {
		var err error
		if stream, err = os.ReadFile(name); err != nil {
			b.Fatal(err)
		}
	}
	c := New(ConsumerFunc(func(Origin, []flow.Record) {}), nil)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.ServeStream(context.Background(), bytes.NewReader(stream), Origin{Transport: "file"}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	n := float64(c.Stats().Records)
	b.ReportMetric(n/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/record")
}

// TestSharedDomain: two exporters at one address sending under the same
// observation domain at once are counted and logged (their records are
// taken as one probe's: two probes with one --domain over the same
// traffic, one unsampled and one at 1 in 4, reported 327,224 packets for
// 65,615 without a word); another domain, or the same domain after the
// first exporter has gone (a restart), is not.
func TestSharedDomain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newSink(0)
	var logs logBuffer
	c := New(s, &Config{Logger: logs.logger()})
	addr, err := c.ListenTCP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := ipfixtest.Samples()[0]
	open := func(domain uint32) *exporter.Exporter {
		t.Helper()
		e, err := exporter.New("tcp://"+addr.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		r := rec
		r.ObservationDomain = domain
		if err := e.Export([]flow.Record{r}); err != nil {
			t.Fatal(err)
		}
		return e
	}
	waitFor := func(what string, ok func(Stats) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(c.Stats()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: stats %+v", what, c.Stats())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	a := open(1)
	waitFor("first exporter's record", func(st Stats) bool { return st.Records == 1 })
	b := open(2)
	waitFor("other domain's record", func(st Stats) bool { return st.Records == 2 })
	if n := c.Stats().SharedDomains; n != 0 {
		t.Fatalf("domains 1 and 2: %d shared", n)
	}
	x := open(1)
	waitFor("shared domain's record", func(st Stats) bool { return st.Records == 3 })
	if n := c.Stats().SharedDomains; n != 1 {
		t.Fatalf("two exporters in domain 1: %d shared, want 1", n)
	}
	if !strings.Contains(logs.String(), "same observation domain") || !strings.Contains(logs.String(), "domain=1") {
		t.Fatalf("log: %s", logs.String())
	}
	a.Close()
	x.Close()
	waitFor("sessions closed", func(st Stats) bool { return st.Sessions == 1 })
	y := open(1) // a restarted exporter
	waitFor("restarted exporter's record", func(st Stats) bool { return st.Records == 4 })
	if n := c.Stats().SharedDomains; n != 1 {
		t.Fatalf("after a restart: %d shared, want 1", n)
	}
	y.Close()
	b.Close()
}

// TestClockSkew: an exporter whose clock is a minute ahead of the
// collector's is counted and logged at its first message; one a minute
// behind once every message of a 10 s period was late (a delay makes a
// message late, never early); one on time is not. The log says so once
// a minute per address. Before, two probes
// whose clocks differed by two minutes reported 84 % too many packets
// without a word.
func TestClockSkew(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, logs, extra := clockedCollector()
	addr, err := c.ListenTCP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := ipfixtest.Samples()[0]
	open := func(off time.Duration, domain uint32) *exporter.Exporter {
		t.Helper()
		e, err := exporter.New("tcp://"+addr.String(), &exporter.Config{Now: func() time.Time { return time.Now().Add(off) }})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	records := uint64(0)
	send := func(e *exporter.Exporter, domain uint32) {
		t.Helper()
		r := rec
		r.ObservationDomain = domain
		if err := e.Export([]flow.Record{r}); err != nil {
			t.Fatal(err)
		}
		records++
		deadline := time.Now().Add(10 * time.Second)
		for c.Stats().Records < records {
			if time.Now().After(deadline) {
				t.Fatalf("record %d not received", records)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ahead := open(time.Minute, 1)
	send(ahead, 1)
	if n := c.Stats().ClockSkewed; n != 1 || !strings.Contains(logs.String(), "offset_seconds=60") && !strings.Contains(logs.String(), "offset_seconds=59") {
		t.Fatalf("a clock a minute ahead: %d skewed, log %s", n, logs.String())
	}
	behind, onTime := open(-time.Minute, 2), open(0, 3)
	for i := 0; i < 4; i++ {
		send(behind, 2)
		send(onTime, 3)
		if i < 3 && c.Stats().ClockSkewed != 1 {
			t.Fatalf("message %d: counted before a whole period", i)
		}
		extra.Add(int64(4 * time.Second))
	}
	// (Logged at most once a minute per address: counted only.)
	if n := c.Stats().ClockSkewed; n != 2 {
		t.Fatalf("a clock a minute behind: %d skewed, want 2", n)
	}
	ahead.Close()
	behind.Close()
	onTime.Close()
}

// TestSharedDomainUDP: over UDP (a session per source port) two
// exporters of one address and domain are counted once both have sent
// since the other did; an exporter restarted from another port (the old
// one silent) is not.
func TestSharedDomainUDP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, logs, extra := clockedCollector()
	addr, err := c.ListenUDP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := ipfixtest.Samples()[0]
	records := uint64(0)
	send := func(e *exporter.Exporter, domain uint32) {
		t.Helper()
		r := rec
		r.ObservationDomain = domain
		if err := e.Export([]flow.Record{r}); err != nil {
			t.Fatal(err)
		}
		records++
		deadline := time.Now().Add(10 * time.Second)
		for c.Stats().Records < records {
			if time.Now().After(deadline) {
				t.Fatalf("record %d not received", records)
			}
			time.Sleep(5 * time.Millisecond)
		}
		extra.Add(int64(600 * time.Millisecond))
	}
	open := func() *exporter.Exporter {
		t.Helper()
		e, err := exporter.New("udp://"+addr.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// A restart: the first exporter stops, the next sends on.
	first := open()
	for range 4 {
		send(first, 1)
	}
	first.Close()
	restarted := open()
	for range 4 {
		send(restarted, 1)
	}
	if n := c.Stats().SharedDomains; n != 0 {
		t.Fatalf("a restarted exporter: %d shared", n)
	}
	// Another exporter in domain 1 beside it, and one in domain 2.
	other, third := open(), open()
	for range 4 {
		send(restarted, 1)
		send(other, 1)
		send(third, 2)
	}
	if n := c.Stats().SharedDomains; n != 1 || !strings.Contains(logs.String(), "transport=udp") {
		t.Fatalf("two exporters in domain 1: %d shared, want 1; log %s", n, logs.String())
	}
	restarted.Close()
	other.Close()
	third.Close()
}

// clockedCollector is a collector logging into logs whose clock runs
// ahead of the test's by extra (ns).
func clockedCollector() (c *Collector, logs *logBuffer, extra *atomic.Int64) {
	logs, extra = new(logBuffer), new(atomic.Int64)
	c = New(newSink(0), &Config{Logger: logs.logger(), Now: func() time.Time { return time.Now().Add(time.Duration(extra.Load())) }})
	return c, logs, extra
}

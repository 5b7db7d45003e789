package collector

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// floodTemplateSet is a message of one template set (about 260 bytes: a
// template of 60 fields) for a random observation domain and template id.
func floodTemplateSet(rng *rand.Rand) []byte {
	b := ipfix.AppendHeader(nil, ipfix.Header{ExportTime: uint32(time.Now().Unix()), Domain: rng.Uint32()})
	b, s := ipfix.AppendSetHeader(b, ipfix.TemplateSetID)
	t := &ipfix.Template{ID: uint16(256 + rng.IntN(60000))}
	for i := range 60 {
		t.Fields = append(t.Fields, ipfix.Field{ID: uint16(1 + (i+rng.IntN(200))%400), Length: 4})
	}
	b = ipfix.AppendTemplate(b, t)
	b = ipfix.FinishSet(b, s, 0)
	ipfix.FinishMessage(b)
	return b
}

// messages splits an IPFIX byte stream into its messages.
func messages(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= ipfix.HeaderLen {
		l := int(binary.BigEndian.Uint16(b[2:]))
		out = append(out, b[:l])
		b = b[l:]
	}
	return out
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestTemplateFloodBounded: 400k template sets from random observation
// domains, first from one source and then from random sources, keep the
// collector's state within its limits (templates, sessions) and its heap
// flat, every eviction is counted, and a legitimate UDP exporter that
// keeps sending (templates and data, as over UDP) loses no record.
func TestTemplateFloodBounded(t *testing.T) {
	cfg := &Config{MaxSessionTemplates: 500, MaxSessionDomains: 200, MaxTemplates: 2000, MaxUDPSessions: 100}
	var legitRecs, otherRecs int
	legit := netip.MustParseAddrPort("192.0.2.10:4739")
	c := New(ConsumerFunc(func(o Origin, recs []flow.Record) {
		if o.Exporter == legit {
			legitRecs += len(recs)
		} else {
			otherRecs += len(recs)
		}
	}), cfg)
	var buf bytes.Buffer
	e := exporter.NewWriter(&buf, nil)
	batch := ipfixtest.Random(3, 20)
	for i := range batch {
		batch[i].ObservationDomain = 1
		batch[i].First, batch[i].Last = time.Now().UnixNano(), time.Now().UnixNano()
	}
	if err := e.Export(batch); err != nil {
		t.Fatal(err)
	}
	e.Close()
	legitMsgs := messages(buf.Bytes())

	rng := rand.New(rand.NewPCG(7, 8))
	const total = 400000
	rounds := 0
	var heap100k uint64
	for i := range total {
		from := netip.MustParseAddrPort("198.51.100.1:4739")
		if i >= total/2 {
			from = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}), uint16(rng.Uint32()))
		}
		c.decode(c.udpSession(from), floodTemplateSet(rng))
		if i%40 == 0 {
			for _, m := range legitMsgs {
				c.decode(c.udpSession(legit), m)
			}
			rounds++
		}
		if i == 100000 {
			heap100k = heapAfterGC()
		}
	}
	heap := heapAfterGC()
	st := c.Stats()
	c.mu.Lock()
	sessions := len(c.udp)
	c.mu.Unlock()
	t.Logf("templates %d, sessions %d, evicted: templates %d, domains %d, exporters %d; heap %d MB at 100k sets, %d MB at 400k",
		st.Templates, sessions, st.TemplatesEvicted, st.DomainsEvicted, st.SessionsEvicted, heap100k>>20, heap>>20)
	if st.Templates > cfg.MaxTemplates || int(c.templates.Load()) != st.Templates || sessions > cfg.MaxUDPSessions {
		t.Errorf("templates %d (counted %d), sessions %d: beyond the limits %+v", st.Templates, c.templates.Load(), sessions, cfg)
	}
	if st.TemplatesEvicted == 0 || st.DomainsEvicted == 0 || st.SessionsEvicted == 0 {
		t.Errorf("evictions not counted: %+v", st)
	}
	// Learnt = kept + evicted + withdrawn (none) + lost with a session.
	if learnt := st.TemplatesLearned; learnt != uint64(st.Templates)+st.TemplatesEvicted {
		t.Errorf("learnt %d templates, kept %d and evicted %d", learnt, st.Templates, st.TemplatesEvicted)
	}
	if heap > heap100k+16<<20 {
		t.Errorf("heap grew from %d MB to %d MB between 100k and 400k template sets", heap100k>>20, heap>>20)
	}
	if legitRecs != rounds*len(batch) || otherRecs != 0 || st.Malformed["data-without-template"] != 0 {
		t.Errorf("legitimate exporter: %d records of %d, malformed %v", legitRecs, rounds*len(batch), st.Malformed)
	}
}

// TestTemplateLifetime: a UDP template that is not received again within
// the lifetime expires (counted); a refreshed one stays.
func TestTemplateLifetime(t *testing.T) {
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	c := New(ConsumerFunc(func(Origin, []flow.Record) {}), &Config{Now: func() time.Time { return now }, TemplateLifetime: 30 * time.Minute, UDPSessionTimeout: 2 * time.Hour})
	rng := rand.New(rand.NewPCG(1, 1))
	a, b := netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:1")
	ma, mb := floodTemplateSet(rng), floodTemplateSet(rng)
	c.decode(c.udpSession(a), ma)
	c.decode(c.udpSession(b), mb)
	for range 4 { // b refreshes every 10 minutes, a does not
		now = now.Add(10 * time.Minute)
		c.decode(c.udpSession(b), mb)
	}
	now = now.Add(2 * time.Minute)
	c.udpSession(b) // the next datagram after a minute sweeps
	if st := c.Stats(); st.Templates != 1 || st.TemplatesExpired != 1 || c.templates.Load() != 1 {
		t.Fatalf("templates %d (counted %d), expired %d; want b's only, a's expired", st.Templates, c.templates.Load(), st.TemplatesExpired)
	}
}

// TestMaxConnections: beyond MaxConnections a new TCP connection is
// closed at once and counted; the connections being served keep working.
func TestMaxConnections(t *testing.T) {
	var mu sync.Mutex
	n := 0
	c := New(ConsumerFunc(func(_ Origin, recs []flow.Record) { mu.Lock(); n += len(recs); mu.Unlock() }), &Config{MaxConnections: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); c.Wait() }()
	addr, err := c.ListenTCP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 3 {
		conn, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	conns[2].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conns[2].Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("third connection: read %v, want EOF (closed by the collector)", err)
	}
	var buf bytes.Buffer
	e := exporter.NewWriter(&buf, nil)
	recs := ipfixtest.Random(1, 10)
	e.Export(recs)
	e.Close()
	conns[0].Write(buf.Bytes())
	conns[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := n
		mu.Unlock()
		if got == len(recs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first connection: %d records of %d", got, len(recs))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := c.Stats(); st.Malformed["too-many-connections"] != 1 {
		t.Fatalf("malformed %v", st.Malformed)
	}
}

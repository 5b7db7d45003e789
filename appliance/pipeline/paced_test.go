package pipeline

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/meter"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/flow"
)

// TestPacedReplayHandsOver replays a capture at its own pace (--speed 1)
// and checks that, while it runs, the records of flows that have ended
// reach the sink and the packet counters (/metrics, SNMP) count what was
// read. Both waited for the end of the file before: a record for a full
// export batch (256 records), the counters for 4096 packets, so a probe
// replaying a capture with --speed showed 0 packets beside dozens of
// flows and exported nothing for minutes.
func TestPacedReplayHandsOver(t *testing.T) {
	// One packet of flow A at 0, then flow B every 10 ms for 4 s: A
	// ends by the 200 ms idle timeout a little after 200 ms of capture
	// time.
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	pkts := map[int64]uint16{t0: 1000}
	const n = 400
	for i := 1; i <= n; i++ {
		pkts[t0+int64(i)*int64(10*time.Millisecond)] = 2000
	}
	path := writeUDP(t, "paced.pcap", pkts)
	src, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	var mu sync.Mutex
	var got []flow.Record
	p := New(Config{Speed: 1, Meter: meter.Config{IdleTimeout: 200 * time.Millisecond}}, func(recs []flow.Record) {
		mu.Lock()
		got = append(got, recs...)
		mu.Unlock()
	})
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background(), []drivers.Source{src}, false) }()
	handed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1 && got[0].Key.Sport == 1000
	}
	counted := func() bool { return p.Stats().Packets > 1 }
	// The replay lasts 4 s; both must come well before its end.
	for !handed() || !counted() {
		select {
		case err := <-done:
			h := handed()
			mu.Lock()
			recs := len(got)
			mu.Unlock()
			t.Fatalf("the replay ended (err %v) before flow A's record was handed over during it (handed over: %v, %d records) and packets were counted (%d)",
				err, h, recs, p.Stats().Packets)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Packets != n+1 || len(got) != 2 {
		t.Errorf("after the replay: %d packets counted, %d records; want %d, 2", s.Packets, len(got), n+1)
	}
}

// TestPacedReplayStops: a replay paced with --speed that waits for a
// packet far ahead (an hour of quiet in the capture at --speed 1) ends
// as soon as it is stopped, with the records of what it read. The wait
// was a sleep: SIGTERM or Ctrl-C took effect only after the hour.
func TestPacedReplayStops(t *testing.T) {
	src := quietCapture(t)
	recs, _ := stopWaiting(t, src, 31, "waiting for a packet an hour ahead")
	if len(recs.Recs) < 31 {
		t.Errorf("%d records after the stop, want the 31 flows read before the wait", len(recs.Recs))
	}
}

// TestPacedReplayReconfigures: a reconfiguration (SIGHUP) of a replay
// paced with --speed that waits for a packet an hour ahead is applied
// at once: the flows read before it end under the old configuration. It
// waited for the reader's cut, which came with the packet an hour later.
func TestPacedReplayReconfigures(t *testing.T) {
	src := quietCapture(t)
	var recs Records
	p := New(Config{Speed: 1}, recs.Sink())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, []drivers.Source{src}, false) }()
	defer func() {
		// Stopped (the wait ends with the stop), then closed.
		cancel()
		<-done
		src.Close()
	}()
	waitCreated(t, p, 31)
	applied := make(chan struct{})
	go func() {
		p.Reconfigure(Reconfig{Label: func(*decode.Packet, uint32) uint32 { return 7 }}, nil)
		close(applied)
	}()
	select {
	case <-applied:
	case <-time.After(10 * time.Second):
		t.Fatal("a reconfiguration of a paced replay waiting for a packet an hour ahead was not applied within 10 s")
	}
	if n := len(recs.Recs); n != 31 {
		t.Errorf("%d records handed over at the reconfiguration, want the 31 flows read before it", n)
	}
}

// TestPacedReplayFromFirstPacket: a replay paced with --speed waits for
// the second packet's time from the first packet on, and a stop during
// that wait ends it without the packet whose time had not come. The
// pace was checked every 16 packets: the first 15 went at once (a
// capture of a few packets an hour apart was replayed in a moment).
func TestPacedReplayFromFirstPacket(t *testing.T) {
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	// One flow at 0, then 15 one-packet flows an hour later.
	pkts := map[int64]uint16{t0: 1000}
	for i := 1; i < 16; i++ {
		pkts[t0+int64(time.Hour)+int64(i)*int64(time.Millisecond)] = uint16(1000 + i)
	}
	path := writeUDP(t, "first.pcap", pkts)
	src, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, p := stopWaiting(t, src, 1, "waiting for its second packet")
	if s := p.Stats(); len(recs.Recs) != 1 || s.Packets != 1 {
		t.Errorf("stopped while waiting for the second packet's time: %d records, %d packets; want 1, 1 (the first packet only)", len(recs.Recs), s.Packets)
	}
}

// waitCreated polls until the pipeline has metered n flows.
// stopWaiting runs a replay of src at --speed 1 until it created n
// flows, stops it and fails t unless it returns within 10 s (while it
// waits for a packet's time, as the caller's capture makes it); it closes
// src once Run returned (closing unmaps the file under a reader still at
// work).
func stopWaiting(t *testing.T, src drivers.Source, n uint64, what string) (*Records, *Pipeline) {
	t.Helper()
	recs := new(Records)
	p := New(Config{Speed: 1}, recs.Sink())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, []drivers.Source{src}, false) }()
	waitCreated(t, p, n)
	cancel()
	select {
	case err := <-done:
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("a paced replay %s did not stop within 10 s of being stopped", what)
	}
	return recs, p
}

func waitCreated(t *testing.T, p *Pipeline, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Meter.Created < n {
		if time.Now().After(deadline) {
			t.Fatalf("the replay metered %d flows in 10 s, want %d", p.Stats().Meter.Created, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// quietCapture is a capture of 31 one-packet flows within 31 ms, then a
// 32nd an hour later: a replay at --speed 1 waits an hour before it.
func quietCapture(t *testing.T) drivers.Source {
	t.Helper()
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	pkts := map[int64]uint16{}
	for i := range 32 {
		ts := t0 + int64(i)*int64(time.Millisecond)
		if i == 31 {
			ts = t0 + int64(time.Hour)
		}
		pkts[ts] = uint16(1000 + i)
	}
	path := writeUDP(t, "quiet.pcap", pkts)
	src, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

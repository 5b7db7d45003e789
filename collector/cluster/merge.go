package cluster

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// answerTimeout is how long Gather waits for a worker's next message.
const answerTimeout = 10 * time.Second

// GatherStats describes a merge.
type GatherStats struct {
	Workers    []string
	Records    int // distinct records merged
	Duplicates int // records two workers both stored (a partition moved after a store, before its ack)
}

// Gather writes into st (a new, empty store) what a `mira report --db`
// over a single-process collector's store would read: every worker's
// records (the union by record identity, so a record stored twice counts
// once), the origins' name and sampling announcements and loss ledgers
// from the options stream, and the ingest nodes' counters summed. Every
// worker that ever stored records (WorkerBucket) must answer.
func Gather(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, st *store.Store) (GatherStats, error) {
	var gs GatherStats
	var err error
	if gs.Workers, err = workerNames(ctx, js); err != nil {
		return gs, err
	}
	seen := map[[idLen]byte]struct{}{}
	byOrigin := map[store.Origin][]idRec{}
	for _, name := range gs.Workers {
		if err := gatherWorker(ctx, nc, name, func(id ID, enc []byte) error {
			k := [idLen]byte(id.key(nil))
			if _, ok := seen[k]; ok {
				gs.Duplicates++
				return nil
			}
			seen[k] = struct{}{}
			var r flow.Record
			if err := store.DecodeRecord(enc, &r); err != nil {
				return err
			}
			o := id.Origin()
			byOrigin[o] = append(byOrigin[o], idRec{k, r})
			return nil
		}); err != nil {
			return gs, err
		}
	}
	gs.Records = len(seen)
	if err := putRecords(st, byOrigin); err != nil {
		return gs, err
	}
	if err := gatherOptions(ctx, js, st); err != nil {
		return gs, err
	}
	return gs, gatherStats(ctx, js, st)
}

// idRec is a record with its identity (ID.key).
type idRec struct {
	id [idLen]byte
	r  flow.Record
}

// putRecords writes records into st as Gather does: origins in address
// order, each one's records in identity order (for one exporting
// session, the order it exported them), so that the store, and the order
// a report breaks ties of start time in, is the same whichever worker
// answered first.
func putRecords(st *store.Store, byOrigin map[store.Origin][]idRec) error {
	origins := make([]store.Origin, 0, len(byOrigin))
	for o := range byOrigin {
		origins = append(origins, o)
	}
	slices.SortFunc(origins, func(a, b store.Origin) int {
		if c := cmp.Compare(a.Exporter, b.Exporter); c != 0 {
			return c
		}
		return cmp.Compare(a.Domain, b.Domain)
	})
	batches := make([]store.Batch, 0, len(origins))
	for _, o := range origins {
		l := byOrigin[o]
		slices.SortFunc(l, func(a, b idRec) int { return bytes.Compare(a.id[:], b.id[:]) })
		recs := make([]flow.Record, len(l))
		for i := range l {
			recs[i] = l[i].r
		}
		batches = append(batches, store.Batch{Origin: o, Records: recs})
	}
	return st.PutBatches(batches)
}

// gatherWorker asks worker name for its records.
func gatherWorker(ctx context.Context, nc *nats.Conn, name string, fn func(ID, []byte) error) error {
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, -1)
	if err := nc.PublishRequest(DumpSubject+name, inbox, nil); err != nil {
		return err
	}
	n := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(answerTimeout):
			return fmt.Errorf("cluster: worker %s did not answer within %v (a merged report needs every worker that stored records: start it again)", name, answerTimeout)
		case m := <-ch:
			if c := m.Header.Get("Mira-Records"); c != "" {
				if e := m.Header.Get("Mira-Error"); e != "" {
					return fmt.Errorf("cluster: worker %s: %s", name, e)
				}
				if want, _ := strconv.Atoi(c); want != n {
					return fmt.Errorf("cluster: worker %s sent %d of its %d records (answer cut short)", name, n, want)
				}
				return nil
			}
			b := m.Data
			for len(b) > 0 {
				if len(b) < idLen {
					return fmt.Errorf("cluster: worker %s: truncated answer", name)
				}
				id, err := parseID(b[:idLen])
				if err != nil {
					return err
				}
				l, w := binary.Uvarint(b[idLen:])
				if w <= 0 || l > uint64(len(b)-idLen-w) {
					return fmt.Errorf("cluster: worker %s: bad record length in its answer", name)
				}
				if err := fn(id, b[idLen+w:idLen+w+int(l)]); err != nil {
					return fmt.Errorf("cluster: worker %s: %w", name, err)
				}
				b = b[idLen+w+int(l):]
				n++
			}
		}
	}
}

// gatherOptions reads the options stream into st.
func gatherOptions(ctx context.Context, js jetstream.JetStream, st *store.Store) error {
	s, err := js.Stream(ctx, OptionsStream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	names := map[store.Origin][]store.NameAnnouncement{}
	anns := map[store.Origin][]store.Announcement{}
	type lk struct {
		o    store.Origin
		init int64
	}
	ledgers := map[lk]store.Ledger{}
	for {
		m, err := c.Next(jetstream.FetchMaxWait(answerTimeout))
		if err != nil {
			return fmt.Errorf("cluster: reading %s: %w", OptionsStream, err)
		}
		var om optionsMessage
		if err := json.Unmarshal(m.Data(), &om); err != nil {
			return fmt.Errorf("cluster: %s: %w", OptionsStream, err)
		}
		switch {
		case om.Names != nil:
			names[om.Origin] = append(names[om.Origin], *om.Names)
		case om.Sampling != nil:
			anns[om.Origin] = append(anns[om.Origin], *om.Sampling)
		case om.Ledger != nil:
			// As store.PutLedgers: an older ledger resent after a
			// reconnect (to another ingest node, which had not seen
			// the newer one) does not replace the newer one.
			k := lk{om.Origin, om.Ledger.SystemInit}
			if prev, ok := ledgers[k]; !ok || om.Ledger.Messages >= prev.Messages {
				ledgers[k] = *om.Ledger
			}
		}
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		if md.Sequence.Stream >= last {
			break
		}
	}
	if len(names) > 0 {
		if err := st.PutNameAnnouncements(names); err != nil {
			return err
		}
	}
	if len(anns) > 0 {
		if err := st.PutAnnouncements(anns); err != nil {
			return err
		}
	}
	if len(ledgers) > 0 {
		ls := make([]store.Ledger, 0, len(ledgers))
		for _, l := range ledgers {
			ls = append(ls, l)
		}
		return st.PutLedgers(ls)
	}
	return nil
}

// gatherStats sums the ingest nodes' counters into st.
func gatherStats(ctx context.Context, js jetstream.JetStream, st *store.Store) error {
	kv, err := js.KeyValue(ctx, StatsBucket)
	if err != nil {
		return err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return err
	}
	defer keys.Stop()
	var sum store.Stats
	any := false
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var s store.Stats
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			return fmt.Errorf("cluster: %s %s: %w", StatsBucket, k, err)
		}
		any = true
		sum.Messages += s.Messages
		sum.Records += s.Records
		sum.Lost += s.Lost
		sum.SocketDrops += s.SocketDrops
		sum.Dropped += s.Dropped
		sum.Malformed = addMap(sum.Malformed, s.Malformed)
		sum.Evicted = addMap(sum.Evicted, s.Evicted)
		sum.DecodeErrors = addMap(sum.DecodeErrors, s.DecodeErrors)
		if s.Updated.After(sum.Updated) {
			sum.Updated = s.Updated
		}
	}
	if !any {
		return nil
	}
	return st.PutStats(sum)
}

func addMap(dst, src map[string]uint64) map[string]uint64 {
	for k, v := range src {
		if dst == nil {
			dst = map[string]uint64{}
		}
		dst[k] += v
	}
	return dst
}

// MergedStore connects to natsURL and gathers the cluster's results
// (Gather) into a new store file in dir, which it returns closed: `mira
// report --nats` then reads it as `mira report --db` reads a
// single-process collector's store, so both reports have one form.
func MergedStore(ctx context.Context, natsURL, dir string) (string, GatherStats, error) {
	nc, js, err := Connect(natsURL, "mira report")
	if err != nil {
		return "", GatherStats{}, err
	}
	defer nc.Close()
	path := dir + "/merged.db"
	st, err := store.Open(path, nil)
	if err != nil {
		return "", GatherStats{}, err
	}
	gs, err := Gather(ctx, nc, js, st)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return path, gs, err
}

package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mira-project/mira/collector"
)

// Sequence positions across transport sessions, on ingest nodes
// (collector.SequenceConsumer), as server.Server keeps them for a single
// mira-collector (see collector/server/seqpos.go): per exporter position
// (address and observation domain, for UDP the source port too) the
// sequence number expected next, so that a session's first message ahead
// of it counts the records lost between sessions (an ingest node killed
// with records it had not published, a connection reset) as sequence
// loss.
//
// Positions belong to the ingest tier, not to the workers: the gap is
// seen where the exporter's messages arrive, a message's records are
// spread over partitions (and so over workers), and a reconnecting
// exporter may reach another ingest node, which must find the position
// its predecessor left. So positions live in SeqBucket (one key per
// position), readable by every ingest node.
//
// A single collector commits a position in the transaction of the
// records that came with it. JetStream has no transaction across the
// flow stream and a bucket, so an ingest node saves a position only once
// JetStream acknowledged every record batch published up to the flush
// that carried the position's message (or the batch's records were
// counted unpublished, the report's dropped records): a saved position
// never claims a record the stream does not hold, so loss is never
// undercounted. The other way, records acknowledged after the last
// saved position (about a millisecond on one machine, the time of a
// bucket write) and batches that reached the stream without their
// acknowledgement reaching the node (sent just before it died) are
// counted lost although stored: a killed ingest node can overcount the
// loss by what it published in its last moments. Records it held (in
// its 50 ms batches, its socket buffers) are counted exactly.
//
// The sequence loss a node counts (gaps within a session, and between
// sessions when seeded) goes to its stats (StatsBucket, which the
// report sums) only once the position after it is saved, and the stats
// are saved right after: a node killed before that leaves the gap
// before the saved position, and the exporter's next session counts it
// once. (Saved with the stats every 2 s, a gap counted in a killed
// node's last 2 s was lost with it.)

// maxSeqPos bounds the positions an ingest node keeps in memory; beyond
// it the least recently moved is forgotten (its saved position stays in
// SeqBucket).
const maxSeqPos = 4096

// seqPosTTL is how long SeqBucket keeps a position not moved: an
// exporter silent for longer starts afresh.
const seqPosTTL = 30 * 24 * time.Hour

type posKey struct {
	addr   netip.Addr
	port   uint16 // UDP source port; 0 for streams
	domain uint32
}

func posKeyOf(o collector.Origin) posKey {
	k := posKey{addr: o.Exporter.Addr(), domain: o.Domain}
	if o.Transport == "udp" {
		k.port = o.Exporter.Port()
	}
	return k
}

// bucketKey is k's key in SeqBucket: "DOMAIN.PORT.ADDR" (an IPv6
// address's colons as dashes: keys take no colons).
func (k posKey) bucketKey() string {
	return strconv.FormatUint(uint64(k.domain), 10) + "." + strconv.Itoa(int(k.port)) + "." +
		strings.ReplaceAll(k.addr.String(), ":", "-")
}

type ingestPos struct {
	next  uint32
	known bool
	// owner is the stream connection moving the position while live;
	// UDP positions have none.
	owner netip.AddrPort
	live  bool
	gen   uint64
	moved time.Time
}

// pendingPos is a position to save once every batch up to upTo is
// resolved (acknowledged, or counted unpublished); before it is stamped
// its records wait in the partitions' buffers for the next FlushAll.
type pendingPos struct {
	k       posKey
	next    uint32
	known   bool
	stamped bool
	upTo    uint64
	lost    uint64 // sequence loss counted up to it, not yet in the node's stats
}

// savedPos is a position's value in SeqBucket: the next sequence number
// (4 bytes), when it was saved (8, Unix ms), the saving node's id.
type savedPos struct {
	next  uint32
	saved time.Time
	node  string
}

func (p savedPos) encode() []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 12+len(p.node)), p.next)
	b = binary.BigEndian.AppendUint64(b, uint64(p.saved.UnixMilli()))
	return append(b, p.node...)
}

func decodeSavedPos(b []byte) (savedPos, error) {
	if len(b) < 12 {
		return savedPos{}, fmt.Errorf("sequence position of %d bytes", len(b))
	}
	return savedPos{next: binary.BigEndian.Uint32(b), saved: time.UnixMilli(int64(binary.BigEndian.Uint64(b[4:]))),
		node: string(b[12:])}, nil
}

// NextSequence implements collector.SequenceConsumer: the position this
// node moved last, unless another node saved a newer one (the exporter
// went elsewhere and came back), or else the one saved in SeqBucket.
// The bucket is followed in memory (followPositions): no round trip to
// NATS in the decoders' path.
func (g *Ingest) NextSequence(o collector.Origin) (uint32, bool) {
	g.waitPositions()
	k := posKeyOf(o)
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pos[k]
	if p != nil && p.live && p.owner != o.Exporter {
		return 0, false // another connection has it
	}
	if saved, ok := g.remote[k.bucketKey()]; ok && (p == nil || (saved.node != g.ID && saved.saved.After(p.moved))) {
		return saved.next, true
	}
	if p == nil || !p.known {
		return 0, false
	}
	return p.next, true
}

// positionsWait bounds how long the first sessions of a starting node
// wait for SeqBucket's positions (NATS unreachable: they are not seeded).
const positionsWait = 2 * time.Second

// waitPositions waits until the positions saved in SeqBucket are loaded,
// once for at most positionsWait.
func (g *Ingest) waitPositions() {
	if g.remoteReady == nil {
		return // no bucket followed (an Ingest without RunIngest)
	}
	select {
	case <-g.remoteReady:
		return
	default:
	}
	if g.remoteGaveUp.Load() {
		return
	}
	select {
	case <-g.remoteReady:
	case <-time.After(positionsWait):
		if !g.remoteGaveUp.Swap(true) {
			g.log.Warn("sequence positions not loaded yet: records lost before these sessions are not counted", "bucket", SeqBucket)
		}
	}
}

// followPositions keeps g.remote equal to SeqBucket until ctx ends,
// closing g.remoteReady once its values at the start are in.
func (g *Ingest) followPositions(ctx context.Context, kv jetstream.KeyValue) {
	var ready sync.Once
	for ctx.Err() == nil {
		w, err := kv.WatchAll(ctx)
		if err != nil {
			g.log.Warn("sequence positions not followed: trying again", "bucket", SeqBucket, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for e := range w.Updates() {
			if e == nil {
				ready.Do(func() { close(g.remoteReady) })
				continue
			}
			g.mu.Lock()
			switch e.Operation() {
			case jetstream.KeyValuePut:
				if sp, err := decodeSavedPos(e.Value()); err == nil {
					if g.remote == nil {
						g.remote = map[string]savedPos{}
					}
					g.remote[e.Key()] = sp
				}
			default: // deleted, purged
				delete(g.remote, e.Key())
			}
			g.mu.Unlock()
		}
		w.Stop()
	}
}

// Sequenced implements collector.SequenceConsumer: a message without
// records moves a position but makes none (as server.Server.Sequenced).
func (g *Ingest) Sequenced(o collector.Origin) {
	g.mu.Lock()
	g.notePos(o, false)
	g.mu.Unlock()
}

// streamAckWait bounds how long StreamEnd waits for JetStream to
// acknowledge a connection's records: less than the 5 s a MIRA exporter
// waits for the collector to close its end.
const streamAckWait = 3 * time.Second

// StreamEnd implements collector.StreamConsumer: the connection's
// positions are free for the exporter's next connection, and once
// JetStream acknowledged every batch published up to now (the
// connection's records flushed first) it returns nil, so the collector
// confirms storage (collector.StoredAck) as a single mira-collector does
// once it committed them: a spooling exporter then forgets what it sent.
// It returns an error (no confirmation: the spool replays, the merge
// deduplicates) when records were dropped unpublished during the
// connection (anyone's: the batches mix connections) or the
// acknowledgements take longer than streamAckWait.
func (g *Ingest) StreamEnd(o collector.Origin) error {
	g.mu.Lock()
	for _, p := range g.pos {
		if p.live && p.owner == o.Exporter {
			p.live = false
		}
	}
	start, seen := g.connStart[o.Exporter]
	delete(g.connStart, o.Exporter)
	g.mu.Unlock()
	if !seen {
		return nil // no message: nothing to confirm
	}
	g.FlushAll()
	g.mu.Lock()
	target := g.batches
	g.mu.Unlock()
	deadline := time.Now().Add(streamAckWait)
	for {
		g.mu.Lock()
		done := g.resolvedTo >= target
		g.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			return errNotAcknowledged
		}
		time.Sleep(5 * time.Millisecond)
	}
	if g.Unpublished.Load() > start {
		return errUnpublished
	}
	return nil
}

var (
	errNotAcknowledged = errors.New("cluster: records not acknowledged by JetStream in time")
	errUnpublished     = errors.New("cluster: records dropped unpublished during the connection")
)

// notePos takes a message's position; g.mu held.
func (g *Ingest) notePos(o collector.Origin, create bool) {
	if o.Transport != "udp" {
		if _, ok := g.connStart[o.Exporter]; !ok {
			if g.connStart == nil {
				g.connStart = map[netip.AddrPort]uint64{}
			}
			g.connStart[o.Exporter] = g.Unpublished.Load()
		}
	}
	if o.Lost > 0 && o.Seeded {
		g.logSeededGap(o)
	}
	k := posKeyOf(o)
	p := g.pos[k]
	stream := o.Transport != "udp"
	if p == nil {
		if !o.SeqKnown || !create {
			return
		}
		if g.pos == nil {
			g.pos = map[posKey]*ingestPos{}
		}
		if len(g.pos) >= maxSeqPos {
			g.evictPos()
		}
		p = &ingestPos{}
		g.pos[k] = p
	} else if stream && p.live && p.owner != o.Exporter {
		return
	}
	if stream {
		p.owner, p.live = o.Exporter, true
	}
	p.next, p.known = o.Next, o.SeqKnown
	g.posGen++
	p.gen = g.posGen
	p.moved = time.Now()
	g.pending = append(g.pending, pendingPos{k: k, next: p.next, known: p.known, lost: uint64(o.Lost)})
	g.lostUnsaved += uint64(o.Lost)
}

// evictPos forgets the least recently moved position; g.mu held.
func (g *Ingest) evictPos() {
	var victim posKey
	var old *ingestPos
	for k, p := range g.pos {
		if old == nil || p.gen < old.gen {
			victim, old = k, p
		}
	}
	if old != nil {
		delete(g.pos, victim)
		g.posEvicted++
	}
}

// stampPending marks the positions noted since the last FlushAll as
// waiting for every batch published so far; g.mu held, after the flush.
func (g *Ingest) stampPending() {
	for i := len(g.pending) - 1; i >= 0 && !g.pending[i].stamped; i-- {
		g.pending[i].upTo, g.pending[i].stamped = g.batches, true
	}
	g.settlePending()
}

// resolved notes that batch b was acknowledged or given up.
func (g *Ingest) resolved(b uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b <= g.resolvedTo {
		return
	}
	if g.done == nil {
		g.done = map[uint64]bool{}
	}
	g.done[b] = true
	for g.done[g.resolvedTo+1] {
		delete(g.done, g.resolvedTo+1)
		g.resolvedTo++
	}
	g.settlePending()
}

// settlePending moves the positions whose batches are all resolved to
// the ones to save; g.mu held.
func (g *Ingest) settlePending() {
	n := 0
	for n < len(g.pending) && g.pending[n].stamped && g.pending[n].upTo <= g.resolvedTo {
		pp := g.pending[n]
		if g.unsaved == nil {
			g.unsaved = map[posKey]pendingPos{}
		}
		pp.lost += g.unsaved[pp.k].lost
		g.unsaved[pp.k] = pp
		n++
	}
	if n == 0 {
		return
	}
	g.pending = append(g.pending[:0], g.pending[n:]...)
	select {
	case g.saveNow <- struct{}{}:
	default:
	}
}

// PositionsUnsaved is the number of position moves not yet saved to
// SeqBucket (waiting for their batches' acknowledgements or for the
// bucket).
func (g *Ingest) PositionsUnsaved() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending) + len(g.unsaved)
}

// savePositions writes the positions whose records JetStream holds to
// SeqBucket; what could not be written waits for the next call.
func (g *Ingest) savePositions(ctx context.Context) {
	g.mu.Lock()
	kv, todo := g.seqKV, g.unsaved
	if kv == nil || len(todo) == 0 {
		g.mu.Unlock()
		return
	}
	g.unsaved = nil
	g.mu.Unlock()
	now := time.Now()
	var failed []pendingPos
	var ferr error
	var lost uint64 // of the positions saved
	defer func() {
		if lost == 0 {
			return
		}
		g.mu.Lock()
		g.lostUnsaved -= lost
		g.mu.Unlock()
		select { // the loss is the stats' now: saved soon
		case g.statsNow <- struct{}{}:
		default:
		}
	}()
	for k, pp := range todo {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		if pp.known {
			_, err = kv.Put(sctx, k.bucketKey(), savedPos{next: pp.next, saved: now, node: g.ID}.encode())
		} else {
			err = kv.Delete(sctx, k.bucketKey())
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				err = nil
			}
		}
		cancel()
		if err != nil {
			failed, ferr = append(failed, pp), err
			continue
		}
		lost += pp.lost
	}
	if len(failed) == 0 {
		return
	}
	g.log.Warn("sequence positions not saved: trying again", "positions", len(failed), "err", ferr)
	g.mu.Lock()
	for _, pp := range failed {
		if g.unsaved == nil {
			g.unsaved = map[posKey]pendingPos{}
		}
		if newer, ok := g.unsaved[pp.k]; ok {
			newer.lost += pp.lost
			g.unsaved[pp.k] = newer
		} else {
			g.unsaved[pp.k] = pp
		}
	}
	g.mu.Unlock()
}

// seqLogMax bounds the gaps between sessions logged a minute.
const seqLogMax = 100

// logSeededGap warns of records lost between an exporter's transport
// sessions; g.mu held.
func (g *Ingest) logSeededGap(o collector.Origin) {
	now := time.Now()
	if now.Sub(g.seqLogSince) >= time.Minute {
		g.seqLogSince, g.seqLogN = now, 0
	}
	if g.seqLogN >= seqLogMax {
		g.seqLogSkipped++
		return
	}
	g.seqLogN++
	g.log.Warn("records lost between transport sessions: the exporter's sequence numbers went on past what was published before this session (an ingest node restart or a broken connection)",
		"exporter", o.Exporter.String(), "transport", o.Transport, "domain", o.Domain, "records", o.Lost, "gaps_not_logged", g.seqLogSkipped)
	g.seqLogSkipped = 0
}

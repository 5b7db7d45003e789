package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// Names of the JetStream objects every node agrees on.
const (
	// FlowStream holds the records, one subject per partition
	// (FlowSubject), work-queue retention: a record leaves the stream
	// once the worker owning its partition has stored it and acked.
	FlowStream = "MIRA_FLOWS"
	// OptionsStream holds what every report needs from the ingest
	// nodes: name announcements, sampling announcements and loss
	// ledgers per origin (subject OptionsSubject), kept.
	OptionsStream  = "MIRA_OPTIONS"
	OptionsSubject = "mira.options"
	// LeaseBucket holds one key per partition ("p.N": the owning
	// worker's name) with a TTL: a lease not renewed expires, so the
	// partitions of a worker that died move to the others.
	LeaseBucket = "mira_leases"
	// MemberBucket lists the live workers ("w.NAME", TTL like leases).
	MemberBucket = "mira_members"
	// WorkerBucket lists every worker that has ever stored records
	// ("w.NAME", no TTL): a merged report needs all of them.
	WorkerBucket = "mira_workers"
	// StatsBucket holds each ingest node's collector counters
	// ("i.ID", JSON store.Stats, totals since that node started).
	StatsBucket = "mira_stats"
	// SeqBucket holds the exporters' sequence positions across
	// transport sessions, saved by ingest nodes (seqpos.go): key
	// "DOMAIN.PORT.ADDR", value the sequence number expected next.
	SeqBucket = "mira_seqnext"
	// DumpSubject is followed by a worker's name: the request for its
	// stored records (see Gather).
	DumpSubject = "mira.worker.dump."
	// Partitions is the number of partitions of the flow stream. It
	// bounds the useful number of workers.
	Partitions = 32
	// leaseTTL is how long a lease or membership outlives its holder.
	leaseTTL = 4 * time.Second
)

// FlowSubject is the subject of partition p.
func FlowSubject(p int) string { return "mira.flows." + strconv.Itoa(p) }

// Partition is the partition of a record's address pair: the hash of
// its two addresses (IPv4-mapped IPv6 as IPv4, the smaller first; ports,
// protocol and VLAN left out), so every record between two hosts, both
// directions of every connection between them, seen by any probe
// through any ingest node, lands in one partition. A worker holding a
// partition thus holds, with every connection, all a report's
// classification reads of other biflows: the pair context (the biflows
// between the same two addresses, classify.Index) and the FTP control
// connections announcing a data connection's port.
func Partition(k flow.Key, n int) int {
	a, b := k.Src.Unmap().As16(), k.Dst.Unmap().As16()
	if bytes.Compare(b[:], a[:]) < 0 {
		a, b = b, a
	}
	h := fnv.New64a()
	h.Write(a[:])
	h.Write(b[:])
	return int(fmix64(h.Sum64()) % uint64(n))
}

// ID is a record's identity. For an exporter that announced a spool
// instance (collector.Origin.Instance) it is the exporter's address, its
// observation domain, that instance and the record's sequence position
// (the message's sequence number plus its index in the message): a
// spooled replay keeps its identity and is stored once, as mira-collector
// stores it once. For any other exporter mira-collector never
// deduplicates, so neither does the cluster: Instance is the epoch of the
// ingest node that decoded the record (a random number drawn at its
// start, xor the high bits of the count) and Seq the count of such
// records that node has handed over; an exporter that restarts its
// sequence numbers is not taken for a replay. Either way the identity is
// fixed before the record is published, so a batch published again or
// delivered again is recognised.
type ID struct {
	Exporter netip.Addr
	Domain   uint32
	Instance uint64
	Seq      uint32
}

// idLen is the size of an ID's key.
const idLen = 16 + 4 + 8 + 4

// key is id as a store key (byte order = exporter, domain, instance,
// sequence order).
func (id ID) key(dst []byte) []byte {
	a := id.Exporter.As16()
	dst = append(dst, a[:]...)
	dst = binary.BigEndian.AppendUint32(dst, id.Domain)
	dst = binary.BigEndian.AppendUint64(dst, id.Instance)
	return binary.BigEndian.AppendUint32(dst, id.Seq)
}

func parseID(k []byte) (ID, error) {
	if len(k) != idLen {
		return ID{}, fmt.Errorf("record id of %d bytes (want %d)", len(k), idLen)
	}
	a := netip.AddrFrom16([16]byte(k[:16])).Unmap()
	return ID{Exporter: a, Domain: binary.BigEndian.Uint32(k[16:]), Instance: binary.BigEndian.Uint64(k[20:]),
		Seq: binary.BigEndian.Uint32(k[28:])}, nil
}

// Origin is the store origin of id's record, as a single-process
// collector names it.
func (id ID) Origin() store.Origin {
	return store.Origin{Exporter: id.Exporter.String(), Domain: id.Domain}
}

// A batch message (the payload on a FlowSubject) holds records of any
// origins: version 2, then per record its identity (ID.key, 32 bytes),
// the length of its encoding (uvarint) and the encoding
// (store.AppendRecord).
const batchVersion = 2

func appendBatchRecord(dst []byte, id ID, r *flow.Record, scratch []byte) ([]byte, []byte) {
	if len(dst) == 0 {
		dst = append(dst, batchVersion)
	}
	scratch = store.AppendRecord(scratch[:0], r)
	dst = id.key(dst)
	dst = binary.AppendUvarint(dst, uint64(len(scratch)))
	return append(dst, scratch...), scratch
}

// errBatch is wrapped by every batch decoding error.
var errBatch = errors.New("bad record batch")

// decodeBatch calls fn with every record's identity and encoding in b.
// The encoding is checked (store.DecodeRecord) before fn sees it.
func decodeBatch(b []byte, fn func(id ID, enc []byte) error) error {
	return decodeBatchRecords(b, func(id ID, enc []byte, _ *flow.Record) error { return fn(id, enc) })
}

// decodeBatchRecords is decodeBatch also handing fn the decoded record
// (fn's until it returns).
func decodeBatchRecords(b []byte, fn func(id ID, enc []byte, r *flow.Record) error) error {
	if len(b) < 1 || b[0] != batchVersion {
		return fmt.Errorf("%w: empty or version not %d", errBatch, batchVersion)
	}
	b = b[1:]
	var r flow.Record
	for len(b) > 0 {
		if len(b) < idLen {
			return fmt.Errorf("%w: truncated record identity", errBatch)
		}
		id, err := parseID(b[:idLen])
		if err != nil {
			return fmt.Errorf("%w: %v", errBatch, err)
		}
		n, w := binary.Uvarint(b[idLen:])
		if w <= 0 || n > uint64(len(b)-idLen-w) {
			return fmt.Errorf("%w: record length", errBatch)
		}
		enc := b[idLen+w : idLen+w+int(n)]
		if err := store.DecodeRecord(enc, &r); err != nil {
			return fmt.Errorf("%w: %v", errBatch, err)
		}
		if err := fn(id, enc, &r); err != nil {
			return err
		}
		b = b[idLen+w+int(n):]
	}
	return nil
}

// Setup creates (or updates) the streams, consumers and buckets; every
// node calls it at start, so any may come first. replicas is the
// replication factor of the streams and buckets (1 on one server, 3 on a
// three-node cluster); 0 keeps the flow stream's (1 when it is created),
// so only the node that sets the factor needs to know it.
func Setup(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if replicas < 1 {
		replicas = 1
		if s, err := js.Stream(ctx, FlowStream); err == nil {
			replicas = max(1, s.CachedInfo().Config.Replicas)
		}
	}
	subjects := make([]string, 0, Partitions)
	for p := 0; p < Partitions; p++ {
		subjects = append(subjects, FlowSubject(p))
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: FlowStream, Subjects: subjects,
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Replicas: replicas,
		Duplicates: 2 * time.Minute})
	if err != nil {
		return fmt.Errorf("cluster: stream %s: %w", FlowStream, err)
	}
	for p := 0; p < Partitions; p++ {
		_, err := js.CreateOrUpdateConsumer(ctx, FlowStream, jetstream.ConsumerConfig{Durable: consumerName(p),
			FilterSubject: FlowSubject(p), AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait,
			MaxAckPending: 4096, MaxDeliver: -1, Replicas: replicas})
		if err != nil {
			return fmt.Errorf("cluster: consumer %s: %w", consumerName(p), err)
		}
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: OptionsStream, Subjects: []string{OptionsSubject},
		Storage: jetstream.FileStorage, Replicas: replicas})
	if err != nil {
		return fmt.Errorf("cluster: stream %s: %w", OptionsStream, err)
	}
	for _, b := range []jetstream.KeyValueConfig{
		{Bucket: LeaseBucket, TTL: leaseTTL, Replicas: replicas},
		{Bucket: MemberBucket, TTL: leaseTTL, Replicas: replicas},
		{Bucket: WorkerBucket, Replicas: replicas},
		{Bucket: StatsBucket, Replicas: replicas},
		{Bucket: RetiredBucket, Replicas: replicas},
		{Bucket: SeqBucket, TTL: seqPosTTL, Replicas: replicas},
	} {
		if _, err := js.CreateOrUpdateKeyValue(ctx, b); err != nil {
			return fmt.Errorf("cluster: bucket %s: %w", b.Bucket, err)
		}
	}
	return nil
}

// ackWait is how long a delivered record batch may stay unacknowledged
// before JetStream delivers it again (to whoever owns the partition).
const ackWait = 5 * time.Second

func consumerName(p int) string { return "part-" + strconv.Itoa(p) }

// Connect connects to url ("nats://host:port[,nats://...]").
func Connect(url, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: connect %s: %w", url, err)
	}
	// A publication not acknowledged within 5 s fails (and is retried):
	// without a timeout, batches sent while the server is gone would
	// wait for ever.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(5*time.Second),
		jetstream.WithPublishAsyncMaxPending(2*maxInFlight))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

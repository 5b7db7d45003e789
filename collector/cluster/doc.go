// Package cluster runs the collector on more than one machine, joined by
// NATS JetStream: ingest nodes decode IPFIX and publish records,
// consolidation workers store them, and `mira report --nats` merges the
// workers' results into the report a single mira-collector would give.
//
// # Roles (the contracts of mira-collector and mira report)
//
//   - mira-collector --listen URL --nats NATS_URL: an ingest node
//     (RunIngest). The collecting process is the one mira-collector runs
//     (collector.Collector: templates, options, sampling, names, sequence
//     accounting, limits, allow-list); its consumer (Ingest) publishes
//     each record to the FlowStream subject of its partition and each
//     origin's announcements (names, sampling, loss ledgers: what
//     server.Server stores) to OptionsStream. Its collector counters go
//     to StatsBucket every 2 s.
//   - mira-collector --nats NATS_URL --worker --db FILE [--name NAME]: a
//     consolidation worker (Worker) storing the records of the partitions
//     it owns in its own bbolt file.
//   - mira report --nats NATS_URL [...]: asks every worker that ever
//     stored records for them (request/reply on DumpSubject+name), keeps
//     one copy of each record identity, adds the announcements and the
//     summed counters, writes them into a temporary store and reports
//     from it exactly as `mira report --db` does (MergedStore), so the two
//     reports have one form and one code path.
//   - mira-collector --nats NATS_URL --http ADDR (alone or with either
//     role): the HTTP API and web UI of a single collector over the
//     workers' merged results (View: Gather into a snapshot store,
//     gathered again by the first request after 2 s), so /api/report,
//     /api/flows, /api/probes and the UI answer as they would over one
//     collector's store. /metrics is not served in cluster mode.
//   - --nats embedded: the process also runs an in-process NATS server
//     with JetStream (Embedded, --nats-listen, files in FILE.nats), a one
//     box install that other nodes can join.
//
// # Partitions
//
// FlowStream has Partitions subjects, mira.flows.0..31. A record's
// partition is a hash of its canonical connection key (the smaller of the
// key and its reverse by flow.Key.Compare, VLAN left out), so both
// directions of a connection, from any probe and through any ingest
// node, land in one partition and so at one worker. Each partition has
// one durable pull consumer (part-N, explicit acks, AckWait 5 s).
//
// Ownership: every worker renews a membership key in MemberBucket (TTL
// 4 s) each second and computes, for every partition, the live worker of
// highest rendezvous hash (score); it takes the partitions it should own
// with a lease key in LeaseBucket (created only if absent, renewed by
// revision, TTL 4 s) and consumes them, and releases the ones another live
// worker should own. A worker joining moves only its share; a worker that
// dies stops renewing, its leases expire and the others take its
// partitions within about 5 s. Unacknowledged records are delivered
// again, after AckWait, to whoever owns the partition then.
//
// # Exactness: an idempotent merge
//
// A record's identity (ID) is, for an exporter that announced a spool
// instance (the collector's deduplication key, see collector.Origin), its
// exporter, observation domain, instance and sequence position (the IPFIX
// message's sequence number plus the record's index): a spooled replay
// keeps its identity and is stored once, as mira-collector stores it
// once. Records of other exporters are never deduplicated by
// mira-collector; their identity is the ingest node's (its random epoch
// and a count of the records it decoded), so an exporter that restarts
// its sequence numbers is not taken for a replay. A worker
// stores each record under its identity (bucket "records": ID.key ->
// store.AppendRecord encoding), commits a transaction and only then acks
// the messages; a redelivered record rewrites nothing and is counted as a
// duplicate. If a partition moved after a store but before the ack, two
// workers hold the record; the merge keeps one copy per identity
// (GatherStats.Duplicates), so at-least-once delivery from JetStream
// still counts every record exactly once. Publishing is retried up to
// publishAttempts times under the batch's JetStream message id (the
// stream's 2-minute duplicate window drops a copy that was stored after
// all).
//
// # Back-pressure
//
// The decoders never wait for NATS: records are batched per partition
// (64 KiB or 5 ms) and published asynchronously; when maxInFlight batches
// await JetStream's acknowledgement, further records are dropped and
// counted (Ingest.Unpublished, the report summary's "dropped" collector
// counter), as are batches still failing after their retries.
//
// # What is not done yet
//
// Pairing, classification and usage rollups are made at report time over
// the merged records (as `mira report --db` does over a single store),
// not by the workers: partitioning by connection already lets a worker
// pair its own records, but the report still moves every record from
// the workers to the reporting process. The records are kept without
// retention.
//
// # Replication and node loss
//
// mira-collector --nats-replicas 3 (on the first node started; the others
// keep the factor they find) replicates the streams, consumers and
// buckets over a three-node NATS cluster: one NATS node lost leaves a
// quorum, the streams elect new leaders within seconds, and publications
// that timed out meanwhile are retried. TestClusterNetns checks it end to
// end in network namespaces: three nats-server nodes, two ingest nodes,
// three workers; the flow stream's leader and a worker killed with
// SIGKILL while probes export, both started again, a fourth worker
// added; the merged report equals a single collector's on the same
// export.
//
// # Measured rates and sizing
//
// BenchmarkPipeline (taskset -c 1, one core of a 2-core machine shared
// with other builds; the embedded NATS server in the same process on the
// same core), 300 000 records in messages of 30:
//
//	ingest node:  0.43-0.53 M records/s  (decode excluded: Consume to JetStream ack)
//	worker:       0.05-0.09 M records/s  (delivery, bbolt commit, ack)
//
// The single-process collector decodes about 0.85 M records per
// CPU-second; an ingest node adds publishing, so about 0.3 M records/s per
// core end to end. The worker is bound by pull round trips and one fsync
// per 4 MiB commit rather than by CPU (0.6 CPU-s for 300 000 records in
// the profile); 0.05 M/s is the figure to plan with.
//
// The paper's RedIRIS trial watched three pairs of STM-1 ATM fibres
// (155.52 Mb/s each way) with six PCs. It gives no flow rate; at full
// load and 500-byte packets an STM-1 direction carries 37 000 packets/s.
// A probe's record rate R depends on the traffic: with the default
// timeouts, backbone traffic gives roughly one record per 10-20 packets,
// R ≈ 2 000-4 000 records/s per STM-1 direction; a scan or flood (one
// record per packet) raises it to 37 000/s. For N probes of rate R, with
// nodes run at half their measured rate:
//
//	ingest nodes = ceil(N·R / 150 000)    (0.3 M/s per core, half)
//	workers      = ceil(N·R / 25 000)     (0.05 M/s, half)
//	NATS         = one stream leader carries N·R · ~100 bytes/s
//
// The RedIRIS trial (N = 6 directions, R = 4 000): 24 000 records/s, one
// ingest node and one worker (a one-box install with --nats embedded). A
// national backbone of N = 300 probes at R = 4 000: 1.2 M records/s, 8
// ingest nodes and 48 workers, which is more than Partitions (32): the
// partition count would have to grow (it is a constant today), and the
// single flow stream (120 MB/s through one JetStream leader) would have
// to be split into several streams before that scale.
package cluster

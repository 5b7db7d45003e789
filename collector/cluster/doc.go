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
//     to StatsBucket every 2 s. It keeps the exporters' sequence
//     positions across transport sessions in SeqBucket (seqpos.go), so
//     that records lost with a killed ingest node, or in a broken
//     connection, count as sequence loss when the exporter comes back
//     (to this node or another), as a single mira-collector counts
//     them. At the end of a TCP or TLS stream it confirms storage
//     (collector.StoredAck, what a spooling probe waits for) once
//     JetStream acknowledged the stream's records, as a single
//     mira-collector does once it committed them.
//   - mira-collector --nats NATS_URL --worker --db FILE [--name NAME]: a
//     consolidation worker (Worker) storing the records of the partitions
//     it owns in its own bbolt file, with the span of each partition's
//     records, and, asked by a report, pairing, deduplicating, naming
//     and classifying the partitions it alone holds in the report's
//     range (a report.Part).
//   - mira report --nats NATS_URL [...]: the report `mira report --db`
//     would make over a single collector's store (Report): it asks
//     every worker that ever stored records (WorkerBucket) what it
//     holds per partition (SpansSubject+name), has each partition held
//     by one worker in the report's range consolidated there (paired,
//     deduplicated, named, classified: a report.Part, PartSubject+name),
//     gathers the records of the other partitions, consolidates them
//     itself, and assembles the parts (report.Assemble) with the
//     announcements and the summed counters. --merge-stats says on
//     stderr how many partitions went which way and the bytes moved.
//     --source rollups and auto answer from the workers' rollups
//     (RollupSubject+name; see Rollups below; auto with a range only
//     when no worker holds a record across a bound, BoundsSubject+name).
//   - mira-collector --nats NATS_URL --http ADDR (alone or with either
//     role): the HTTP API and web UI of a single collector over the
//     workers' results: /api/report (source records, rollups or auto;
//     the web UI's views read it) and /api/rollups (whether the rollups
//     answer, for auto by the same rule as the report, and their span)
//     are made as `mira report --nats` makes
//     the report (Report, through server.APIConfig.Report); /api/flows
//     (the flow explorer's records) and /api/probes read a snapshot of
//     every record (View: Gather into a snapshot store, gathered again
//     by the first request after 2 s), so they answer as they would
//     over one collector's store. /metrics (on
//     --http and --metrics): the ingest node's collector counters and
//     loss figures (the single collector's names and meaning: lost
//     records, sequence restarts, the loss ledger by stage with its
//     unpublished records as the store stage, malformed input by reason,
//     stale ledgers, evictions) and publication counters
//     (mira_cluster_published_records_total, unpublished, retried
//     batches, batches in flight), the worker's stored and duplicate
//     records, malformed batches, partitions held and records per
//     partition (Metrics).
//   - --nats embedded: the process also runs an in-process NATS server
//     with JetStream (Embedded, --nats-listen, files in FILE.nats), a one
//     box install that other nodes can join.
//
// # Partitions
//
// FlowStream has Partitions subjects, mira.flows.0..31. A record's
// partition is a hash of its address pair (Partition: the two addresses,
// IPv4-mapped ones as IPv4, the smaller first; ports, protocol and VLAN
// left out), so every record between two hosts, both directions of
// every connection between them, from any probe and through any ingest
// node, lands in one partition and so at one worker. (Until December
// 2026 the partition was a hash of the canonical connection key; the
// address pair also brings every biflow a classification reads beside
// a biflow's own records to the same partition: see the exactness of
// worker consolidation below.) Balance (tools/bench/cluster.sh, the
// synthesised stream: 803 284 records between many hosts): 400 356 /
// 402 928 records for two workers, 199 088-202 056 for four. A single
// pair of hosts carrying much of the traffic (a proxy and its upstream,
// two NATed sites) stays on one worker, as it has to for its pair
// context; with connection keys it could have been spread. Each
// partition has one durable pull consumer (part-N, explicit acks,
// AckWait 5 s).
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
// its sequence numbers is not taken for a replay. Every record travels
// with its identity. A worker stores each batch message as it came
// (bucket "batches", key = the batch's JetStream message id, which a
// publication retried or a delivery repeated keeps), commits a
// transaction and only then acks the messages; a batch delivered again
// is found under its key, not written twice, and its records are counted
// as duplicates. If a partition moved after a store but before the ack,
// two workers hold the batch; a spooled replay arrives in new batches:
// the merge keeps one copy per record identity (GatherStats.Duplicates),
// so at-least-once delivery from JetStream still counts every record
// exactly once. A publication JetStream did not acknowledge (no
// responders while a stream elects its leader, an acknowledgement timed
// out, the connection moving to another NATS node) is retried under the
// batch's JetStream message id (the stream's 2-minute duplicate window
// drops a copy that was stored after all) for PublishRetry from its first
// publication (collector.yaml cluster.publish_retry, 60 s by default, at
// most 90 s): a leader election of the flow stream that lasted ~18 s on
// a loaded machine outlasted the 8 attempts (7 s of back-off) counted
// before, and its records were dropped.
//
// # Back-pressure
//
// The decoders never wait for NATS: records are batched per partition
// (64 KiB or 50 ms) and published asynchronously; when maxInFlight batches
// await JetStream's acknowledgement (or their next attempt: a batch being
// retried stays in flight, so a failover holds at most maxInFlight
// batches of memory), further records are dropped and counted
// (Ingest.Unpublished, the report summary's "dropped" collector counter),
// as are batches still unacknowledged after PublishRetry, and at shutdown
// those still in flight after PublishRetry and 10 s: every record is
// published or counted.
//
// # Exactness of worker consolidation
//
// A report over a store is a function of the records its query selects
// (the time range, by overlap, the exporter and domain, and the --host,
// --port and --proto filter; records outside are not context for
// anything), the origins' announcements, the rules and the options.
// Over those records, everything one biflow depends on stays within its
// address pair:
//
//   - pairing and duplicate suppression (consolidate, Batch): the
//     records of one connection key, which has both addresses;
//     connections complete independently; the duplicate and unscaled
//     counts add up;
//   - naming and sampling: each record by its origin and time, from the
//     announcements, which every worker gets from the reporter;
//   - classification: the biflow, and the pair context of the biflows
//     between the same two addresses within classify.PairWindow (pair.*,
//     ftp_data: an FTP control connection announcing a data connection's
//     port is between the same two hosts);
//   - --aggregate, --category, --symptom, --app: each biflow alone.
//
// So the report's biflows are the union of what BuildPart makes of each
// partition's selected records alone (report.TestAssembleParts checks
// it byte for byte; splitting by connection instead breaks it), and
// Assemble sums the usage and estimates exactly (sum.Exact), in one
// total order of the biflows (report's compareBiflows): neither depends
// on the split. The order of records
// with equal start times, which pairing can depend on, is by origin and
// then by a store's order, which within one origin is end time then
// export order, in the reporter's store and in a worker's Part alike.
//
// A partition is consolidated by a worker only when that worker alone
// holds records of it that the query can select: each worker keeps, per
// partition (computed from every record it stores, whatever subject it
// came on), the earliest start and latest end of its records (Span), and
// the reporter's plan (planParts) calls a partition clean when one
// worker's span overlaps the range and conflicted when more than one
// does. Then the clean partition's selected records, deduplicated by
// identity, are all that worker's: its Part is the one the reporter
// would make of them. A conflicted partition (moved between workers
// around the range, after a kill, a restart or a join; or a batch stored
// by two workers) has its selected records sent by each holder and
// consolidated by the reporter as before. Records stored while a report
// is being made may or may not be in it, as before.
//
// A report that lists only its first biflows (--limit N, the table's
// default 50; --offset M) does not need every biflow at the reporter:
// each worker sends its part's usage rows and totals and its first M+N
// biflows in the report's listing order (report.Part.Aggregate), and
// the first M+N of the report are among those. The usage rows and
// estimates add exactly (the estimates as sum.Exact), so a sampled
// report's too equal a single report's byte for byte. (Before the
// estimates were exact, a worker aggregated only unsampled parts and
// the reporter asked again for whole parts when a sampled estimate was
// among the report's.)
//
// TestWorkerParts (in process, two workers, partitions moved with
// connections spanning the move) compares Report with the report over
// every record gathered, byte for byte, for seven parameter sets, and
// fails when conflicted partitions are consolidated at each worker;
// TestClusterNetns, after its kills and join, has 15-22 of 32 partitions
// consolidated at workers and the report still equal to the single
// collector's, in full and in the table's form (workers' usage rows).
//
// # Rollups
//
// A worker keeps rollups per partition (bucket "rollups", key: the
// partition): the cells (store.RollupCell, both resolutions) of every
// record of the partition it holds, made by a report.Roller fed those
// records, deduplicated by identity, in a store's order (origins in
// address order, then end time, then identity) and then flushed: the
// path of report.Rebuild, which `mira rollup` runs over a single
// collector's store. With them it keeps what they were made from: the
// partition's span (record count, earliest start, latest end) and a hash
// of the window, the rules, the names and the sampling announcements
// (the reporter's, sent with the request). A report from rollups (mira
// report --nats --source rollups|auto, /api/report) asks each worker for
// the summed cells of the partitions only it ever held records of; the
// worker answers from its kept cells when they were made from the same
// records and parameters, and otherwise rolls those partitions up again
// from their records (on all cores) and keeps the result. A partition
// several workers have held (moved, at any time) is rolled up by the
// holder with the most of its records, which gets the others' records of
// it (PartSubject, raw, every time), deduplicates them by identity and
// keeps the cells under a key that also holds the other holders' spans
// (sent by the reporter): a moved partition costs its records' transfer
// once, until one of its holders stores more. The reporter writes the
// summed cells into its temporary store and answers with
// report.FromRollups, as over one collector's store. --merge-stats says
// how many partitions one worker held, how many moved (and the records
// moved between workers for them), how many kept cells were read and
// how many partitions were rolled up for the report.
//
// Exactness. The cells of records sharing no address pair with others
// add up to the cells of their union: a biflow, its duplicates, its
// naming, scaling and classification (pair context included) depend only
// on records of its address pair (see above), and each biflow and each
// record adds to its cells alone. So the sum over partitions equals the
// cells report.Rebuild makes of a store holding every record, in the
// integer fields exactly. Unlike a report's parts, the clean/conflicted
// test is over all time, not over the report's range: a cell holds the
// biflows that started in its bucket, whose records may lie outside the
// range. The workers' cells are made of every stored record in start
// order, so none is late and every biflow is complete: --source auto
// answers from them whenever the rollups can answer the parameters
// (report.Params.CanUseRollups; not --by as, the AS table being the
// reporter's) and, with --from or --to, no worker holds a record across
// a bound or ending within the pairing window before one (BoundsSubject+
// name: each worker scans its store as report.Params.BoundsCrossed scans
// a single collector's, stopping at the first such record, reading none
// when no partition's span comes near a bound): one worker's such record
// makes the whole report come from the records, as a single collector
// holding every record answers. Without a range it then equals the
// usage of the record report over the whole time. (A running single
// collector's rollups may count late records, where its auto reads the
// records.) Estimates are added exactly (sum.Exact: fixed point, 2^-20
// resolution), per partition and then across partitions, so sampled ones
// too equal a single collector's bit for bit, as a single collector's
// rollups equal its records' report (report.Roller); --merge-stats says
// when sampled cells were summed.
//
// TestWorkerRollups (two workers, partitions moved with connections
// spanning the move, a spooled replay stored twice) compares Report with
// --source rollups to report.Rebuild and FromRollups over every record
// gathered, byte for byte, for eight parameter sets (groupings, buckets,
// ranges, --category, --symptom), and their usage to the record
// report's; it fails when a moved partition is rolled up from one
// holder's records alone, and checks that a second report reads the kept
// cells. TestWorkerRollupsSampled does it with a packet-sampled origin
// (estimates within a relative 1e-9) and again after more records (the
// changed partitions rolled up again).
// TestCluster compares mira report --nats --source rollups and
// /api/report?source=rollups with the single collector's report;
// TestClusterNetns (kills, a join) mira report --nats --bucket 1h
// --source rollups, twice, with the single collector's record and
// rollup reports. tools/bench/cluster.sh with REPORT_ARGS="--source
// rollups --by category --bucket 1h" (BENCHMARKS.md): 803 284 records,
// 3.5 s for the report that rolls every partition up, 0.03 s from the
// kept cells, equal to the single collector's rollup report.
//
// Live rollups. A partition only this worker has held since it began
// (clean over all time: the reporter sends it among the request's Cells)
// is rolled up once from all its records as above, and the Roller that
// did it is kept instead of being flushed: the worker's live rollups of
// the partition (live.go), seeded while the worker holds its commit lock,
// so that every later commit feeds it the records of the partition it
// stores (AddEncoded, the batch's encoding; deduplicated by identity as
// the parts path does) and advances its horizon, as a single
// collector's Roller is fed at commit. The next report from rollups
// answers such a partition from it: the cells completed past the
// horizon (taken from the Roller, kept by the worker) plus a flushed
// copy of the pending state (report.Roller.Pending: held records, open
// connections, biflows waiting for their pair context), which is what
// the single collector's live API answers add. The answer is written to
// the bucket "rollups" under the partition's span and parameters as
// on-demand cells are, so a partition unchanged since the last report
// reads those instead of flushing the pending state again. The Roller
// is fed with
// the names and sampling announcements of the request that seeded it
// (the worker does not follow the options stream): a request whose
// parameters (rollupParams: window, rules, names, announcements) differ
// seeds it again from all the records, as does one that finds the
// partition's span count different from the records the Roller was
// given (records stored before the worker started, or a failed feed),
// or a record the Roller counted as late (its horizon had passed the
// record's start: that connection might be split where a roll-up of
// every record pairs it). So the answer always equals the roll-up of
// every record (rollFlows), bit for bit (the estimates are added
// exactly): the Roller's exactness rule with no late record. A partition that moved between workers keeps the on-demand
// path (its holder with most records gets the others' records of it)
// and its live rollups are dropped. --merge-stats counts the
// partitions answered from live rollups ("N live"). The Roller's state
// (held records, open connections) is in memory, not in the bbolt file:
// a restarted worker seeds again on its first report after a change
// (reading the kept cells of unchanged partitions meanwhile). TestWorkerRollupsLive: one worker, three exports, a
// report from rollups after each; the first rolls every partition up
// (and seeds), the next two answer all 32 from live rollups, none
// rolled up again, byte-equal to Gather + report.Rebuild +
// FromRollups; it fails without the pending flush or without the feed
// at commit. TestWorkerRollupsSampled's second round answers its clean
// partitions from live rollups (moved ones rolled up again).
// tools/bench/cluster.sh LIVE_REPORTS=6 (BENCHMARKS.md), reports every
// 1.5 s while 803 284 records arrive: 0.48-1.38 s per live answer where
// the on-demand path took 0.83-2.60 s, workers' CPU over the run 8.0-8.2
// s instead of 11.1-11.5 s; the Roller costs the workers about 1 µs per
// record at commit (0.41-0.45 M records per CPU-second instead of
// 0.73-0.76 M). Its stream covers under two minutes of record time, so
// the horizon passes almost nothing and every live answer flushes nearly
// every record held; a longer stream keeps only the lag and the longest
// flow pending.
//
// # Retention
//
// A worker applies the retention keys of its collector.yaml as a single
// mira-collector applies them to its store (Retention; every 30 s and
// at start): retention: max_age deletes the records that ended before
// now - max_age, max_size the oldest records (by end time) until the
// worker's records take at most max_size bytes of its store's pages
// (DataSize, what store.Store.DataSize measures for a single
// collector); rollups: minute_retention and hour_retention the rollup
// cells of older buckets. Records are deleted by end time exactly
// (a single collector's store deletes chunks of up to 64 records whose
// end times lie within a second, so it may keep records that ended
// within a second of the cutoff): the batches are indexed by the
// earliest end of their records (bucket "ends", built when a store
// without it opens), and a batch holding records on both sides of the
// cutoff is written again with the newer ones. By size, each round
// deletes every record that ended before the end time up to which the
// oldest batches add up to the excess, so what a worker keeps is
// always the records that ended last. The partitions' spans then
// describe the records kept (a partition whose records are all
// deleted is no longer held, and a report's plan no longer asks its
// former holder), in the same transaction; /metrics counts the
// records deleted by reason (mira_cluster_worker_pruned_records_total
// {reason="age"|"size"}), the batches emptied, the rollup cells
// deleted and the records' bytes.
//
// A report from the records over a range retention pruned is the
// single collector's after the same retention: the records kept
// (TestWorkerRetention compares them byte for byte with a single
// collector's store pruned by store.Store.PruneBefore). Over a range
// without a start it says where the records kept start
// (summary.records_pruned_before, as the single collector's): the
// latest cut any worker's retention deleted records at (the spans
// answer's "pruned").
//
// Rollups outlive the records, as a single collector's (whose cells
// were made as records arrived) do until rollup retention deletes
// them. A worker makes cells from the records it holds (see Rollups),
// so once records ending before C are deleted, the cells of biflows
// starting before C + the pairing window + classify.PairWindow (those
// a deleted record may have been paired with or been pair context of)
// can no longer be made from them. So before deleting, a worker retires
// those buckets' cells (retire.go): unless the chain of retired slices
// (RetiredBucket, key "chain": contiguous slices [From, To) of rollup
// buckets, each with the worker keeping its cells, the window and the
// rules' fingerprint) already reaches that bound (whole hours), it has
// the cluster's cells made as a report from rollups makes them (every
// partition, a moved one by its holder with the most records and the
// others', with its rules: and the announcements on the options
// stream), keeps the slice from the chain's end to the bound (bucket
// "retired") and appends it (compare-and-set; extended in place when
// the last slice is its own). A report from rollups with the chain's
// window and rules takes the buckets before the chain's end from the
// slices (asked of the workers keeping them) and the later ones from
// the records, when the chain reaches past every worker's deleted
// records (each says in its spans answer the latest cutoff it deleted
// records at). Otherwise (other rules, or a worker that deleted
// records without retiring them: rules that do not load, NATS
// unreachable; it deletes them all the same, the disk first) the
// reporter takes, per resolution, the first whole bucket after every
// deletion as the rollups' PrunedBefore, drops the cells before it and
// FromRollups refuses a range reaching before it ("retention pruned the
// rollups of that range"); --source auto then answers from the records,
// as a single collector does over a range its rollup retention pruned.
// Rollup retention (minute_retention, hour_retention) applies to every
// cell, the slices included. Live rollups (fed every record, the
// deleted ones included) are kept: the count they are checked against
// follows the span. TestWorkerRetention compares reports from rollups
// and auto over the pruned range with the single collector's, byte for
// byte, after pruning by age, by size and a restart;
// TestWorkerRetentionMoved checks the refusal when a worker could not
// retire; TestWorkerRollupRetention the rollup retention.
//
// Retirement is exact for the biflows of the retired buckets as they
// stood when the slice was made: a record arriving later that starts
// in a retired bucket is not in its cells (a single collector counts
// it late), nor is the continuation of a connection running across the
// bound since before it (such a connection lasts longer than the
// records' max_age). Records deleted while the hour their biflows
// touch is still running (a max_size too small for the rate) are not
// retired: reports from rollups refuse those hours. A slice costs one
// report from rollups per hour of
// retention's progress; the chain grows by one entry (about 100 bytes
// of JSON) each time the retiring worker changes.
//
// # What is not done yet
//
// Live rollups of moved partitions (their records sit at several
// workers: rolled up again from all of them after a change) and live
// state kept across a worker's restart; /api/flows and
// /api/probes gather every record. The chain of retired slices grows
// by one entry per change of retiring worker (some tens of kilobytes a
// year with workers taking turns every hour) and loses the slices
// rollup retention emptied only when both resolutions have a retention;
// a worker that kept slices must answer for the chain to be used.
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
// tools/bench/cluster.sh (BENCHMARKS.md, 2026-12-07, a shared 2-vCPU
// machine): collector.sh's stream (803 284 records, IPFIX over UDP at 500
// messages/s, about 64 000 records/s) into one mira-collector and into a
// cluster of one ingest node, one nats-server (JetStream, one replica)
// and two or four workers; CPU seconds per process. Eight rounds, four at
// 32f97ea and four in the A/B of the workers' storage:
//
//	ingest node:       0.79-1.75 M records per CPU-second, median 1.09
//	                   (0.86-1.05x a single collector before rollups were
//	                   kept at ingest)
//	nats-server:       0.42-0.76 M records/CPU-s, median 0.48 (one replica)
//	worker:            0.96-1.49 M records/CPU-s each (one bbolt value per
//	                   batch; 0.28-0.33 M with one per record)
//	balance:           401 874 / 401 410 records for two workers (16
//	                   partitions each); 196 000-204 000 for four (8 each)
//
// The cluster kept up with the offered rate (every record stored within
// 1.3 s of the replay's end; the replay lasts about 12.5 s). At 4 000
// messages/s (about 510 000 records/s offered) the fixed costs spread over
// fuller batches: ingest 2.0 M records/CPU-s, nats-server 1.3 M, workers
// 2.4 M; the whole cluster stored 346 000 records/s with nats-server and
// both workers sharing one core. nats-server is the costliest role per
// record.
//
// Three nats-servers with the streams replicated three times
// (NATS_NODES=3, two rounds) used 7.5 and 8.5 CPU-s together where one
// used 1.5-1.9: a factor of 4.2-5.5, not 3 (the leader also replicates,
// acknowledges and delivers), 0.09-0.11 M records per CPU-second.
//
// The model plans every role at half its measured rate per core at 500
// messages/s (the less favourable figures): an ingest node 500 000
// records/s per core, a worker 500 000, nats-server 230 000 with one
// replica and five times its cost with three. For N probes exporting R
// records/s each:
//
//	ingest cores   = N·R / 500 000
//	worker cores   = N·R / 500 000  (at most Partitions = 32 workers)
//	NATS cores     = N·R / 230 000 (one replica), 5·N·R / 230 000 (three),
//	                 the flow stream's leader carrying all of it on one
//	                 server
//
// A merged report used to move every record from the workers to the
// reporting process: `mira report --nats` over the 803 284 records took
// 16-25 s of wall time on this machine (gathering, a temporary store,
// the report), 8-10 CPU-s of the reporter. With the workers consolidating
// the partitions they alone hold (BENCHMARKS.md, two workers on one
// core): 2.5-3.4 CPU-s of the reporter, 2.4-2.5 CPU-s of each worker for
// its ~400 000 records, 31 MB moved instead of 94.5 MB (a biflow with its
// estimate instead of its records), 7.7-8.2 s of wall time with both
// workers on one core; for the table's form (the 50 largest biflows),
// where the workers send usage rows: 4.7-5.2 s, 0.01-0.02 CPU-s of the
// reporter, 42 kB moved. A worker consolidates about 160 000 records per
// CPU-second at report time; the reporter assembles 60 000-80 000
// biflows per CPU-second (decoding the parts, sorting, the usage, the
// JSON of every biflow).
//
// The paper's RedIRIS trial watched three pairs of STM-1 ATM fibres
// (155.52 Mb/s each way: six directions) with six PCs, analysing about
// 5 % of the traffic. At full load and 500-byte packets a direction
// carries 38 900 packets/s; a record needs at least one packet, so:
//
//   - as in the trial (5 % analysed): R <= 1 950 records/s per direction,
//     N·R <= 11 700 records/s: 0.02 ingest, 0.02 worker and 0.05 NATS
//     cores (0.25 with three replicas), one box (mira-collector --nats
//     embedded --listen ... --worker).
//   - unsampled, at the 3.1 packets per record of the real captures of
//     TestClusterNetns (short captures cut flows early: backbone flows are
//     longer, so this overestimates R): R = 12 500, N·R = 75 000: 0.15
//     ingest, 0.15 worker, 0.33 NATS cores (1.6 with three replicas),
//     still one box, or three small ones for a replicated NATS cluster.
//   - unsampled, one record per packet (a scan or a flood): N·R = 233 000:
//     0.5 ingest, 0.5 worker, 1.0 NATS cores with one replica or 5 with
//     three: one two-core box, or three two-core machines for the NATS
//     cluster.
//
// A national backbone of N = 300 such directions, unsampled at R = 12 500:
// N·R = 3.75 M records/s: 8 ingest cores, 8 workers, and 16 cores of NATS
// with one replica (82 with three), all through the one leader of the
// flow stream: more than one server carries. Before that scale the flow
// stream has to be split into several streams (partition groups whose
// leaders sit on different servers); that is not built. Nor can reports
// over a day at that rate (324 G records, some 80 G biflows) pair at
// report time, even spread over the workers: the workers would have to
// keep rollups maintained as records arrive (usage per minute and hour,
// as the single collector keeps) and the merge add those: the workers
// keep them live for the partitions that did not move (see Rollups);
// a moved partition is still rolled up again from all its records after
// a change.
package cluster

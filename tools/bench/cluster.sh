#!/bin/sh
# Cluster throughput benchmark: one mira-collector (the reference) and a
# cluster of one ingest node and WORKERS consolidation workers on a
# nats-server with JetStream, on the same IPFIX stream, in one run.
#
#   WORKERS=2 NATS_NODES=1|3 tools/bench/cluster.sh [PCAP] [RATE] [LOOPS]
#
# NATS_NODES=3 runs three nats-servers on loopback, clustered, and the
# streams replicated three times (their CPU is summed).
# The stream is collector.sh's: mira-probe turns PCAP (default `mira synth
# --large`, shared through $WORK) into an RFC 5655 file, which ipfixreplay
# sends over UDP at RATE messages/s (default 500), LOOPS times (default 2).
# The single collector and the ingest node are pinned to core 1
# (CORE_A), nats-server and the workers to core 0 (CORE_B). For every
# process it prints the CPU seconds it used (/proc/PID/stat) and records
# per CPU-second: the single collector and the ingest node from before
# the replay until their socket is drained and, for the ingest node, the
# flow stream has stopped growing (everything published); the workers and
# nats-server until the flow stream is empty (every record stored and
# acknowledged), with the wall time of that drain. Then the records each
# worker stored and the partitions it held (balance), and the merged
# report's record count against the single collector's.
#
# Then `mira report --nats --format json $REPORT_ARGS` REPORT_ROUNDS
# times (default 1; REPORT_ARGS default "--limit 0": every biflow
# listed): its wall time, its CPU, the workers' CPU while it ran, and
# the bytes the NATS server received meanwhile (varz in_bytes: what the
# workers sent). With MIRA_BASE=PATH (a mira binary of another commit,
# e.g. before worker consolidation) each round runs that binary's
# report too, interleaved, and compares the two JSON outputs.
#
# LIVE_REPORTS=N (default 0) runs N such reports while the replay runs,
# one every LIVE_EVERY seconds (default 2) from LIVE_START seconds after
# it began (default 1): reports over a cluster whose records are
# changing. The workers' CPU printed then includes what they spent
# answering them.
set -eu
cd "$(dirname "$0")/../.."
RATE=${2:-500}
LOOPS=${3:-2}
WORKERS=${WORKERS:-2}
NATS_NODES=${NATS_NODES:-1}
WORK=${WORK:-$(mktemp -d /tmp/mira-bench.XXXXXX)}
CORE_A=${CORE_A:-1}
CORE_B=${CORE_B:-0}
. tools/bench/lib.sh
build_stream "${1:-}"
echo "stream: $IPFIX ($(wc -c <"$IPFIX") bytes), sent $LOOPS times at $RATE messages/s; $WORKERS workers"

now() { date +%s.%N; }

port=$((20000 + $$ % 20000))
pids=""
cleanup() { for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# The reference: one mira-collector.
rm -f "$WORK/single.db"
taskset -c "$CORE_A" "$WORK/mira-collector" --listen udp://127.0.0.1:$port --db "$WORK/single.db" --log-level warn >"$WORK/single.log" 2>&1 &
sc=$!
wait_bound $port
c0=$(cpu $sc)
"$WORK/ipfixreplay" -to "127.0.0.1:$port" -rate "$RATE" -loops "$LOOPS" "$IPFIX" 2>>"$WORK/replay.log"
wait_drained $port
single_cpu=$(secs "$c0" "$(cpu $sc)")
single_drops=$(drops $port)
kill -TERM $sc && wait $sc || true
single_recs=$("$WORK/mira" flows --db "$WORK/single.db" --format json --limit 1 | jq .summary.flows)

# The cluster.
nport=$((port + 1)); mport=$((port + 2)); iport=$((port + 3))
rm -rf "$WORK/nats" "$WORK"/w*.db && mkdir -p "$WORK/nats"
nspids=""
if [ "$NATS_NODES" = 1 ]; then
	taskset -c "$CORE_B" nats-server -a 127.0.0.1 -p $nport -m $mport -js -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
	nspids=$!
	URL=nats://127.0.0.1:$nport
else
	# Three nodes on loopback: client ports nport, +10, +20; routes +5.
	URL=""; routes=""
	for k in 0 1 2; do routes="$routes${routes:+,}nats://127.0.0.1:$((nport + 10 * k + 5))"; done
	for k in 0 1 2; do
		taskset -c "$CORE_B" nats-server -a 127.0.0.1 -p $((nport + 10 * k)) -m $((mport + 10 * k)) -js -sd "$WORK/nats/n$k" \
			-n n$k --cluster_name mira --cluster nats://127.0.0.1:$((nport + 10 * k + 5)) --routes "$routes" >"$WORK/nats$k.log" 2>&1 &
		nspids="$nspids $!"
		URL="$URL${URL:+,}nats://127.0.0.1:$((nport + 10 * k))"
	done
fi
pids="$pids $nspids"
until curl -sf "http://127.0.0.1:$mport/healthz" >/dev/null; do sleep 0.05; done
wpids=""
for i in $(seq 1 "$WORKERS"); do
	extra=""
	[ $i = 1 ] && extra="--nats-replicas $NATS_NODES"
	taskset -c "$CORE_B" "$WORK/mira-collector" --nats $URL --worker --db "$WORK/w$i.db" $extra >"$WORK/w$i.log" 2>&1 &
	wpids="$wpids $!"; pids="$pids $!"
	# The first worker creates the streams (replicated NATS_NODES times).
	[ $i = 1 ] && until grep -q "partition taken" "$WORK/w1.log"; do sleep 0.1; done
done
taskset -c "$CORE_A" "$WORK/mira-collector" --listen udp://127.0.0.1:$iport --nats $URL >"$WORK/ingest.log" 2>&1 &
ig=$!; pids="$pids $ig"
wait_bound $iport
# stream FIELD: a field of the flow stream's state (jq path under .state).
stream() { curl -sf "http://127.0.0.1:$mport/jsz?streams=true" | jq "[.account_details[]?.stream_detail[]? | select(.name==\"MIRA_FLOWS\") | .state.$1] | add // 0"; }
# Every worker holds its share (partitions taken minus released, from
# the logs) before the replay.
held() { echo $(( $(grep -c "partition taken" "$1" || true) - $(grep -c "partition released" "$1" || true) )); }
share=$((32 / WORKERS))
until ok=1; i=0; for p in $wpids; do i=$((i + 1)); [ "$(held "$WORK/w$i.log")" -ge $share ] || ok=0; done; [ $ok = 1 ]; do sleep 0.1; done
# nscpu: the NATS servers' CPU ticks, summed.
nscpu() { t=0; for p in $nspids; do t=$((t + $(cpu $p))); done; echo $t; }
# inbytes: bytes the NATS servers received, summed.
inbytes() { t=0; for k in $(seq 0 $((NATS_NODES - 1))); do t=$((t + $(curl -sf "http://127.0.0.1:$((mport + 10 * k))/varz" | jq .in_bytes))); done; echo $t; }
wcpu() { t=0; for p in $wpids; do t=$((t + $(cpu $p))); done; echo $t; }
# timed_report LABEL BIN: one report, measured.
timed_report() {
	b0=$(inbytes); w0=$(wcpu); r0=$(now)
	/usr/bin/time -f "%U %S" -o "$WORK/report.time" "$2" report --nats $URL --format json ${REPORT_ARGS:---limit 0} ${3:-} >"$WORK/report-$1.json" 2>"$WORK/report-$1.err"
	rw=$(echo "$r0 $(now)" | awk '{printf "%.2f", $2-$1}')
	echo "report $1: wall ${rw}s, reporter cpu $(awk '{printf "%.2f", $1+$2}' "$WORK/report.time")s, workers cpu $(secs "$w0" "$(wcpu)")s, NATS in $(($(inbytes) - b0)) bytes, $(jq .summary.flows "$WORK/report-$1.json") records, $(jq .summary.biflows "$WORK/report-$1.json") biflows $(grep 'merged report' "$WORK/report-$1.err" | sed 's/^merged report: //')"
}
ci0=$(cpu $ig); cn0=$(nscpu)
cw0=""; for p in $wpids; do cw0="$cw0 $(cpu $p)"; done
t0=$(now)
livepid=""
if [ "${LIVE_REPORTS:-0}" -gt 0 ]; then
	(
		sleep "${LIVE_START:-1}"
		for k in $(seq 1 "$LIVE_REPORTS"); do
			timed_report live$k "$WORK/mira" --merge-stats
			sleep "${LIVE_EVERY:-2}"
		done
	) &
	livepid=$!
fi
"$WORK/ipfixreplay" -to "127.0.0.1:$iport" -rate "$RATE" -loops "$LOOPS" "$IPFIX" 2>>"$WORK/replay.log"
wait_drained $iport
# Published: the stream's last sequence stops moving.
last=-1
while :; do cur=$(stream last_seq); [ "$cur" = "$last" ] && break; last=$cur; sleep 0.5; done
ingest_cpu=$(secs "$ci0" "$(cpu $ig)")
ingest_drops=$(drops $iport)
# Stored: the work-queue stream is empty.
while [ "$(stream messages)" != 0 ]; do sleep 0.1; done
t1=$(now)
[ -z "$livepid" ] || wait $livepid
nats_cpu=$(secs "$cn0" "$(nscpu)")
i=0; worker_cpu=""
for p in $wpids; do
	i=$((i + 1))
	w0=$(echo $cw0 | cut -d' ' -f$i)
	worker_cpu="$worker_cpu $(secs "$w0" "$(cpu $p)")"
done
wall=$(echo "$t0 $t1" | awk '{printf "%.2f", $2-$1}')
r0=$(now)
merged=$("$WORK/mira" report --nats $URL --format json --limit 1 2>/dev/null | jq .summary.flows || echo "?")
report_wall=$(echo "$r0 $(now)" | awk '{printf "%.2f", $2-$1}')
for round in $(seq 1 "${REPORT_ROUNDS:-1}"); do
	if [ -n "${MIRA_BASE:-}" ]; then
		timed_report base "$MIRA_BASE"
		timed_report new "$WORK/mira" --merge-stats
		if cmp -s "$WORK/report-base.json" "$WORK/report-new.json"; then
			echo "round $round: reports identical"
		else
			echo "round $round: reports differ (summary identical: $(jq -S .summary "$WORK/report-base.json" | cmp -s - "$(jq -S .summary "$WORK/report-new.json" >"$WORK/s.json"; echo "$WORK/s.json")" && echo yes || echo no))"
		fi
	else
		timed_report new "$WORK/mira" --merge-stats
	fi
done
kill -TERM $ig && wait $ig || true
for p in $wpids; do kill -TERM "$p"; wait "$p" || true; done
published=$(sed -n 's/.*ingest stopped.* published=\([0-9]*\).*/\1/p' "$WORK/ingest.log")
unpublished=$(sed -n 's/.*ingest stopped.* unpublished=\([0-9]*\).*/\1/p' "$WORK/ingest.log")

echo "single collector: $single_recs records, cpu ${single_cpu}s, $(echo "$single_recs $single_cpu" | awk '{printf "%.0f", $1/$2}') records/cpu-s, $single_drops datagrams dropped"
echo "ingest node:      $published records published ($unpublished unpublished), cpu ${ingest_cpu}s, $(echo "$published $ingest_cpu" | awk '{printf "%.0f", $1/$2}') records/cpu-s, $ingest_drops datagrams dropped"
echo "ratio ingest node/single collector: $(echo "$published $ingest_cpu $single_recs $single_cpu" | awk '{printf "%.2fx", ($1/$2)/($3/$4)}') records per cpu-second"
echo "nats-server x$NATS_NODES:   cpu ${nats_cpu}s, $(echo "$published $nats_cpu" | awk '{printf "%.0f", $1/$2}') records/cpu-s"
i=0
for p in $wpids; do
	i=$((i + 1))
	c=$(echo $worker_cpu | cut -d' ' -f$i)
	s=$(sed -n 's/.*worker stopped.* stored=\([0-9]*\).*/\1/p' "$WORK/w$i.log")
	echo "worker w$i:        $s records stored, partitions held $(held "$WORK/w$i.log"), cpu ${c}s, $(echo "$s $c" | awk '{printf "%.0f", $1/$2}') records/cpu-s"
done
echo "cluster drain: ${wall}s from the replay's start until every record was stored ($(echo "$published $wall" | awk '{printf "%.0f", $1/$2}') records/s)"
echo "merged report: $merged records (single collector: $single_recs), mira report --nats took ${report_wall}s"
echo "work dir: $WORK"

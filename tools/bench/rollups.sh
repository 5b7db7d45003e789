#!/bin/sh
# Rollup benchmark (issue 13 goal 4): what keeping the rollups costs
# mira-collector at ingest, and what they save a usage report.
#
#   tools/bench/rollups.sh [PCAP] [RATE] [ROUNDS]
#
# mira-probe turns PCAP (default: `mira synth --large`, shared with
# collector.sh through $WORK) into an RFC 5655 file once; ipfixreplay
# sends it over UDP at RATE messages/s (default 500) to mira-collector
# with rollups enabled and disabled (collector.yaml rollups.enabled),
# ROUNDS times each, interleaved, the collector pinned to core $CORE.
# The CPU time is the collector process's whole life (/usr/bin/time:
# start, ingest, the final commit and the rollups' flush). Then, on the
# last store with rollups, `mira report --bucket 1h --by
# aggregate,category` from the records and from the rollups (user CPU,
# pinned), and whether their usage tables agree.
set -eu
cd "$(dirname "$0")/../.."
RATE=${2:-500}
ROUNDS=${3:-2}
WORK=${WORK:-$(mktemp -d /tmp/mira-bench.XXXXXX)}
CORE=${CORE:-1}
. tools/bench/lib.sh
build_stream "${1:-}"
echo "stream: $IPFIX ($(wc -c <"$IPFIX") bytes) at $RATE messages/s"
printf 'rollups: {enabled: true}\n' >"$WORK/on.yaml"
printf 'rollups: {enabled: false}\n' >"$WORK/off.yaml"


port=$((30000 + $$ % 20000))
run() { # run MODE: one collector life, prints "MODE cpu_s records store_bytes"
	port=$((port + 1))
	db="$WORK/$1.db"
	rm -f "$db"
	/usr/bin/time -f "%U %S" -o "$WORK/$1.time" taskset -c "$CORE" "$WORK/mira-collector" --config "$WORK/$1.yaml" \
		--listen udp://127.0.0.1:$port --db "$db" --log-level warn >"$WORK/$1.log" 2>&1 &
	tpid=$!
	wait_bound $port
	"$WORK/ipfixreplay" -to "127.0.0.1:$port" -rate "$RATE" "$IPFIX" 2>>"$WORK/replay.log"
	wait_drained $port
	sleep 1.5 # the last commit (1 s interval)
	kill -TERM $(pgrep -P $tpid) # the collector: taskset exec'd it under time
	wait $tpid || true
	recs=$("$WORK/mira" flows --db "$db" --format json --limit 1 | awk -F': *' '/"flows": [0-9]/{gsub(/,/, "", $2); print $2; exit}')
	echo "$1 $(awk '{printf "%.2f", $1 + $2}' "$WORK/$1.time") $recs $(wc -c <"$db")"
}
r=0
while [ $r -lt "$ROUNDS" ]; do
	r=$((r + 1))
	run on
	run off
done

echo "reports over $WORK/on.db:"
for src in records rollups; do
	/usr/bin/time -f "$src %U user-s %e wall-s %M KB" taskset -c "$CORE" "$WORK/mira" report --db "$WORK/on.db" --bucket 1h \
		--source $src --format json --limit 1 >"$WORK/report-$src.json" 2>>"$WORK/report.time"
	tail -1 "$WORK/report.time"
done
python3 - "$WORK" <<'EOF'
import json, sys
w = sys.argv[1]
a = json.load(open(w + "/report-records.json"))
b = json.load(open(w + "/report-rollups.json"))
same = a["usage"] == b["usage"] and all(a["summary"][k] == b["summary"][k] for k in ("biflows", "flows", "packets", "octets"))
print("usage tables and totals equal:", same, "(%d rows, %d biflows)" % (len(a["usage"]), a["summary"]["biflows"]))
EOF
echo "work dir: $WORK"

#!/bin/sh
# Readers beside a writing, pruning collector, as a user runs them:
# mira-collector stores a steady IPFIX stream (ipfixreplay over UDP) with
# retention by size (max_size MAXSIZE, default 4 MB: pruned every 30 s,
# whole segments), while `mira report --db` and `mira flows --db` run in
# a loop on the same store. Every reader run must succeed with nothing on
# standard error (no lock timeout, no decode error), and the collector
# must store every record it received (the readers hold the file only
# between its commits; it keeps its records while they do).
#
#   tools/storecheck/readers.sh [SECONDS]     (default 75; WORK=dir to keep files)
set -eu
cd "$(dirname "$0")/../.."
SECS=${1:-75}
MAXSIZE=${MAXSIZE:-4000000}
WORK=${WORK:-$(mktemp -d /tmp/mira-readers.XXXXXX)}
. tools/storecheck/common.sh
DB=$WORK/r.db
rm -rf "$DB" "$DB.seg" "$WORK/reader.err" "$WORK/reader.count"
fail() { echo "FAIL: $*" >&2; exit 1; }
PORT=${PORT:-$((22000 + $$ % 20000))}
HTTP=$((PORT + 1))
printf 'retention:\n  max_size: %s\n' "$MAXSIZE" >"$WORK/c.yaml"
"$BIN/mira-collector" --config "$WORK/c.yaml" --listen udp://127.0.0.1:$PORT --http 127.0.0.1:$HTTP \
	--db "$DB" --log-level info 2>"$WORK/collector.log" &
cpid=$!
trap 'kill $cpid $rpid 2>/dev/null || true' EXIT
i=0
until curl -sf "http://127.0.0.1:$HTTP/metrics" >/dev/null; do
	i=$((i + 1)); [ $i -lt 200 ] || fail "collector did not start"
	sleep 0.05
done
# ~2,400 records/s for SECS seconds.
"$BIN/ipfixreplay" -to 127.0.0.1:$PORT -rate 20 -loops $((SECS / 2 + 1)) "$WORK"/ipfix/*.ipfix 2>"$WORK/replay.log" &
rpid=$!
end=$(($(date +%s) + SECS))
runs=0
while [ "$(date +%s)" -lt $end ]; do
	runs=$((runs + 1))
	"$BIN/mira" report --db "$DB" --format json >"$WORK/report.json" 2>"$WORK/reader.err" || fail "mira report (run $runs): $(cat "$WORK/reader.err")"
	[ ! -s "$WORK/reader.err" ] || fail "mira report (run $runs) said: $(cat "$WORK/reader.err")"
	"$BIN/mira" flows --db "$DB" --format json --limit 1 >"$WORK/flows.json" 2>"$WORK/reader.err" || fail "mira flows (run $runs): $(cat "$WORK/reader.err")"
	[ ! -s "$WORK/reader.err" ] || fail "mira flows (run $runs) said: $(cat "$WORK/reader.err")"
	! grep -q '"store_errors"' "$WORK/report.json" "$WORK/flows.json" || fail "decode errors (run $runs): $(grep -h -A4 '"store_errors"' "$WORK/report.json" "$WORK/flows.json")"
	awk -F': *' '/"flows": [0-9]/{gsub(/,/, "", $2); print $2; exit}' "$WORK/flows.json" >>"$WORK/reader.count"
done
kill $rpid 2>/dev/null || true
wait $rpid 2>/dev/null || true
m() { curl -sf "http://127.0.0.1:$HTTP/metrics" | awk -v k="$1" '$1 == k {printf "%d\n", $2}'; }
i=0
while [ "$(m mira_collector_pending_records)" != 0 ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "records still pending"
	sleep 0.1
done
recs=$(m mira_collector_records_total); stored=$(m mira_collector_stored_records_total)
dropped=$(m mira_collector_dropped_records_total); errs=$(m mira_collector_store_errors_total)
busy=$(m mira_collector_store_busy_total)
kill -TERM $cpid; wait $cpid || true
[ "$recs" -gt 0 ] && [ "$stored" -eq "$recs" ] || fail "received $recs records, stored $stored (dropped $dropped)"
[ "$errs" -eq 0 ] || fail "$errs store errors: $(grep -m1 ERROR "$WORK/collector.log")"
pruned=$(grep -c "retention: pruned" "$WORK/collector.log" || true)
[ "$pruned" -gt 0 ] || fail "retention never pruned"
echo "ok: $runs mira report + mira flows runs beside the collector (flows seen $(sort -n "$WORK/reader.count" | head -1)-$(sort -n "$WORK/reader.count" | tail -1)), no reader error; $recs records received, all stored ($busy commits deferred for a reader), $pruned prunes by size"

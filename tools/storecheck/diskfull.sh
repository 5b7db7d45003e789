#!/bin/sh
# Full disk, as a user meets it (root: mounts a tmpfs): mira-collector
# stores a UDP stream (ipfixreplay) on a 16 MiB tmpfs.
#  1. No retention: the disk fills; the collector must log the error,
#     count it (mira_collector_store_errors_total), keep the records
#     pending (counted: received = stored + pending + dropped), keep
#     running; given room for half of what waits (the tmpfs grown a
#     little), store that much at once (mira flows reads it) and keep
#     the rest pending; and store everything once space returns (the
#     tmpfs grown more); the store then reads with no error and holds
#     every record received.
#  2. retention max_size 12 MB on the same 16 MiB: the stream (more than
#     the disk holds) keeps being stored, the oldest pruned.
#  3. No retention, the disk full, four mira-probe runs export over TCP
#     with a spool: no run is acknowledged before its records are stored,
#     part of what waits is stored when part of the room returns, and
#     every run is stored exactly once when all of it does.
#
#   tools/storecheck/diskfull.sh     (WORK=dir to keep files; COLLECTOR=binary)
set -eu
cd "$(dirname "$0")/../.."
WORK=${WORK:-$(mktemp -d /tmp/mira-diskfull.XXXXXX)}
. tools/storecheck/common.sh
fail() { echo "FAIL: $*" >&2; exit 1; }
MNT=$WORK/mnt
mkdir -p "$MNT"
mountpoint -q "$MNT" && umount "$MNT"
mount -t tmpfs -o size=16m tmpfs "$MNT"
cpid=
trap 'kill $cpid 2>/dev/null || true; sleep 0.5; umount "$MNT" 2>/dev/null || true' EXIT
PORT=${PORT:-$((24000 + $$ % 20000))}
HTTP=$((PORT + 1))
m() { curl -sf "http://127.0.0.1:$HTTP/metrics" | awk -v k="$1" '$1 == k {printf "%d\n", $2}'; }
start() { # CONFIG
	"$BIN/mira-collector" --config "$1" --listen udp://127.0.0.1:$PORT --listen tcp://127.0.0.1:$PORT --http 127.0.0.1:$HTTP \
		--db "$MNT/c.db" --log-level info 2>"$WORK/collector.log" &
	cpid=$!
	i=0
	until curl -sf "http://127.0.0.1:$HTTP/metrics" >/dev/null; do
		i=$((i + 1)); [ $i -lt 200 ] || fail "collector did not start"; sleep 0.05
	done
}
drained() { # wait until the collector has taken in what was sent
	i=0
	while :; do
		a=$(m mira_collector_records_total); sleep 0.5; b=$(m mira_collector_records_total)
		[ "$a" != "$b" ] || break
		i=$((i + 1)); [ $i -lt 60 ] || fail "collector never drained its socket"
	done
}

# 1. No retention.
printf 'rollups: {enabled: true}\n' >"$WORK/plain.yaml"
start "$WORK/plain.yaml"
"$BIN/ipfixreplay" -to 127.0.0.1:$PORT -rate 1000 -loops 40 "$WORK"/ipfix/*.ipfix 2>"$WORK/replay.log"
drained
recs=$(m mira_collector_records_total); stored=$(m mira_collector_stored_records_total)
pend=$(m mira_collector_pending_records); drop=$(m mira_collector_dropped_records_total)
errs=$(m mira_collector_store_errors_total)
[ "$errs" -gt 0 ] || fail "the disk did not fill ($stored of $recs records stored)"
grep -q "no space left on device" "$WORK/collector.log" || fail "no ENOSPC in the log"
[ $((stored + pend + drop)) -eq "$recs" ] || fail "received $recs != stored $stored + pending $pend + dropped $drop"
kill -0 $cpid || fail "the collector died on a full disk"
echo "disk full: $recs received, $stored stored, $pend pending, $drop dropped, $errs failed commits: $(grep -m1 'no space' "$WORK/collector.log" | sed 's/.*err=//')"
# Room for about half of what waits: that half is stored, the rest waits.
used=$(df -k --output=used "$MNT" | tail -1)
extra=$((pend * used / stored / 2))
mount -o remount,size=$((16384 + extra))k "$MNT"
i=0
while [ "$(m mira_collector_stored_records_total)" = "$stored" ]; do
	i=$((i + 1)); [ $i -lt 50 ] || fail "nothing stored with $extra KiB freed for $pend records pending"; sleep 0.1
done
settled() { # stored stops moving for 2 s (commits every second)
	i=0
	while :; do
		a=$(m mira_collector_stored_records_total); sleep 2; b=$(m mira_collector_stored_records_total)
		[ "$a" != "$b" ] || break
		i=$((i + 1)); [ $i -lt 30 ] || fail "stored records never settled"
	done
}
settled
part=$(m mira_collector_stored_records_total); pend2=$(m mira_collector_pending_records)
[ "$pend2" -gt 0 ] || fail "$extra KiB freed for $pend records pending: all stored"
[ $((part + pend2 + drop)) -eq "$recs" ] || fail "received $recs != stored $part + pending $pend2 + dropped $drop"
flows=$("$BIN/mira" flows --db "$MNT/c.db" --format json --limit 1 | awk -F': *' '/"flows": [0-9]/{gsub(/,/, "", $2); print $2; exit}')
[ "$flows" -eq "$part" ] || fail "part stored: the store reads $flows records, the collector stored $part"
grep -q "store short of space: storing what fits" "$WORK/collector.log" || fail "the partial store is not logged"
echo "$extra KiB freed for $pend records pending: $((part - stored)) stored (mira flows reads $flows), $pend2 pending"
mount -o remount,size=256m "$MNT"
i=0
while [ "$(m mira_collector_pending_records)" != 0 ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "records still pending after space returned"; sleep 0.1
done
stored=$(m mira_collector_stored_records_total)
[ "$stored" -eq $((recs - drop)) ] || fail "stored $stored of $recs after space returned"
kill -TERM $cpid; wait $cpid
flows=$("$BIN/mira" flows --db "$MNT/c.db" --format json --limit 1 | tee "$WORK/flows.json" | awk -F': *' '/"flows": [0-9]/{gsub(/,/, "", $2); print $2; exit}')
! grep -q store_errors "$WORK/flows.json" || fail "decode errors: $(grep -A3 store_errors "$WORK/flows.json")"
[ "$flows" -eq "$stored" ] || fail "the store reads $flows records, the collector stored $stored"
"$BIN/mira" report --db "$MNT/c.db" --format json >/dev/null || fail "mira report"
echo "space returned: every record stored ($stored), the store reads them all"

# 2. retention max_size 12 MB on the 16 MiB disk.
mount -o remount,size=16m "$MNT" 2>/dev/null || true
rm -rf "$MNT/c.db" "$MNT/c.db.seg"
mount -o remount,size=16m "$MNT"
printf 'retention:\n  max_size: 12000000\n' >"$WORK/size.yaml"
start "$WORK/size.yaml"
"$BIN/ipfixreplay" -to 127.0.0.1:$PORT -rate 400 -loops 60 "$WORK"/ipfix/*.ipfix 2>"$WORK/replay.log"
drained
i=0
while [ "$(m mira_collector_pending_records)" != 0 ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "max_size 12 MB on 16 MiB: records still pending: $(grep -m1 ERROR "$WORK/collector.log")"; sleep 0.1
done
recs=$(m mira_collector_records_total); stored=$(m mira_collector_stored_records_total); errs=$(m mira_collector_store_errors_total)
drop=$(m mira_collector_dropped_records_total)
kill -TERM $cpid; wait $cpid
[ "$stored" -eq $((recs - drop)) ] || fail "max_size: stored $stored of $recs"
pruned=$(grep -c "retention: pruned" "$WORK/collector.log" || true)
[ "$pruned" -gt 0 ] || fail "max_size: never pruned"
"$BIN/mira" flows --db "$MNT/c.db" --format json --limit 1 >"$WORK/flows.json" || fail "mira flows"
! grep -q store_errors "$WORK/flows.json" || fail "decode errors"
echo "max_size 12 MB on 16 MiB: $recs received, $stored stored, $drop dropped, $errs commits failed for space, $pruned prunes, store $(du -sk "$MNT" | cut -f1) KiB"

# 3. Spooling probes (TCP) on the full disk: the collector acknowledges
#    a run (StoredAck: the probe exits 0) only once its records are
#    stored; with room for part of what waits it stores that part; with
#    room for all, every run is stored exactly once.
mount -o remount,size=16m "$MNT" 2>/dev/null || true
rm -rf "$MNT/c.db" "$MNT/c.db.seg" "$WORK/spool" "$WORK/probes"
mount -o remount,size=16m "$MNT"
mkdir -p "$WORK/probes"
start "$WORK/plain.yaml"
"$BIN/ipfixreplay" -to 127.0.0.1:$PORT -rate 1000 -loops 40 "$WORK"/ipfix/*.ipfix 2>"$WORK/replay.log"
drained
[ "$(m mira_collector_store_errors_total)" -gt 0 ] || fail "spools: the disk did not fill"
pids=
for d in 101 102 103 104; do
	printf 'export:\n  - url: tcp://127.0.0.1:%s\n    spool: {dir: %s}\n' $PORT "$WORK/spool/$d" >"$WORK/probes/$d.yaml"
	( if "$BIN/mira-probe" --config "$WORK/probes/$d.yaml" -r "$PCAP" --domain $d --drain-timeout 0 --log-level info 2>"$WORK/probes/$d.log"; then
		echo $d >>"$WORK/probes/acked"; fi ) &
	pids="$pids $!"
done
# acked_complete: every run acknowledged so far is stored whole (read
# from the store while the collector runs).
acked_complete() {
	[ -f "$WORK/probes/acked" ] || return 0
	"$BIN/mira" flows --db "$MNT/c.db" --format csv | tail -n +2 | awk -F, '{n[$17]++} END{for (d in n) print d, n[d]}' >"$WORK/counts"
	for d in $(cat "$WORK/probes/acked"); do
		want=$(sed -n 's/.*capture done.* records=\([0-9]*\).*/\1/p' "$WORK/probes/$d.log")
		got=$(awk -v d=$d '$1 == d {print $2}' "$WORK/counts")
		[ "${got:-0}" -eq "${want:--1}" ] || fail "probe run $d acknowledged with ${got:-0} of ${want:-?} records stored"
	done
}
i=0
until grep -q "capture done" "$WORK"/probes/10[1-4].log 2>/dev/null && [ "$(grep -l "capture done" "$WORK"/probes/10[1-4].log | wc -l)" -eq 4 ]; do
	i=$((i + 1)); [ $i -lt 300 ] || fail "spools: probes did not finish capturing"; sleep 0.1
done
sleep 3
acked_complete
pend=$(m mira_collector_pending_records); stored=$(m mira_collector_stored_records_total)
used=$(df -k --output=used "$MNT" | tail -1)
extra=$((pend * used / stored / 2))
mount -o remount,size=$((16384 + extra))k "$MNT"
settled
acked_complete
part=$(m mira_collector_stored_records_total); pend2=$(m mira_collector_pending_records)
[ "$part" -gt "$stored" ] && [ "$pend2" -gt 0 ] || fail "spools: $extra KiB freed for $pend pending: stored $stored -> $part, $pend2 pending"
echo "spools, $extra KiB freed for $pend records pending: $((part - stored)) stored, $pend2 pending, $(cat "$WORK/probes/acked" 2>/dev/null | wc -l) of 4 runs acknowledged"
mount -o remount,size=256m "$MNT"
for p in $pids; do wait $p; done
[ "$(wc -l <"$WORK/probes/acked")" -eq 4 ] || fail "spools: $(wc -l <"$WORK/probes/acked") of 4 probe runs acknowledged"
acked_complete
dups=$(m mira_collector_duplicate_records_total)
kill -TERM $cpid; wait $cpid
"$BIN/mira" flows --db "$MNT/c.db" --format csv | tail -n +2 | awk -F, '$17 >= 101 && $17 <= 104' | sort | uniq -d >"$WORK/dups"
[ ! -s "$WORK/dups" ] || fail "spools: $(wc -l <"$WORK/dups") probe records stored twice"
echo "spools, space returned: 4 runs acknowledged, stored whole ($(awk '$1 >= 101 && $1 <= 104 {printf "%s ", $2}' "$WORK/counts")records), none twice ($dups replayed records dropped as duplicates)"
echo ok

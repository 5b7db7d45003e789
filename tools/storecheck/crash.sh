#!/bin/sh
# Crash check of the collector's store, as a user meets it: mira-collector
# receives IPFIX over TCP from mira-probe runs (each its own observation
# domain) and is killed with SIGKILL at random moments, ROUNDS times, and
# restarted on the same store each time. After every restart it checks
# that the store opens and reads (`mira flows`, `mira report`) without
# errors, that every probe run that has exited (its records are committed:
# the collector commits a TCP exporter's records before closing its side,
# and the probe waits for that) has all its records, and that no record is
# stored twice. At the end every probe run must have delivered (probes
# spool and retry across the outage) exactly the records of a clean run,
# and the collector counts no sequence loss.
#
#   tools/storecheck/crash.sh [ROUNDS]     (default 30; WORK=dir to keep files)
set -eu
cd "$(dirname "$0")/../.."
ROUNDS=${1:-30}
WORK=${WORK:-$(mktemp -d /tmp/mira-crash.XXXXXX)}
BIN=$WORK/bin
mkdir -p "$BIN"
go build -o "$BIN/" ./cmd/mira-collector ./cmd/mira ./cmd/mira-probe
PCAP=$WORK/s.pcap
[ -f "$PCAP" ] || "$BIN/mira" synth --flows 3000 --seed 7 -o "$PCAP" >/dev/null
DB=$WORK/c.db
rm -rf "$DB" "$DB.seg" "$WORK/clean.db" "$WORK/clean.db.seg" "$WORK/acked" "$WORK/failed" "$WORK/stop" "$WORK/probes" "$WORK/spool"
mkdir -p "$WORK/probes"
PORT=${PORT:-$((21000 + $$ % 20000))}
fail() { echo "FAIL: $*" >&2; exit 1; }

# Records of one clean probe run.
"$BIN/mira-collector" --listen tcp://127.0.0.1:$PORT --db "$WORK/clean.db" --log-level warn 2>"$WORK/clean.log" &
cp=$!
sleep 0.5
"$BIN/mira-probe" -r "$PCAP" --domain 1 --export tcp://127.0.0.1:$PORT --log-level error
kill -TERM $cp; wait $cp || true
"$BIN/mira" flows --db "$WORK/clean.db" --format csv | tail -n +2 | cut -d, -f1-15,18 | sort >"$WORK/clean.csv"
N=$(wc -l <"$WORK/clean.csv")
[ "$N" -gt 0 ] || fail "clean run stored nothing"
echo "clean run: $N records"

start() {
	"$BIN/mira-collector" --listen tcp://127.0.0.1:$PORT --db "$DB" --log-level warn 2>>"$WORK/collector.log" &
	cpid=$!
	i=0
	while ! ss -ltn "sport = :$PORT" | grep -q LISTEN; do
		i=$((i + 1)); [ $i -lt 200 ] || fail "collector did not listen"
		kill -0 $cpid 2>/dev/null || fail "collector exited at start: $(tail -3 "$WORK/collector.log")"
		sleep 0.05
	done
}

# Senders: probe runs one after another, each its own domain; some at
# --speed (a long connection that the kill interrupts), some at once.
sender() { # FIRST STEP SPEED
	d=$1
	while [ ! -f "$WORK/stop" ]; do
		# A spool (replayed after a reconnect, deduplicated by the
		# collector): without one, what the probe wrote to the killed
		# collector's connection is lost, counted there only as a
		# sequence gap once the probe reconnects (the probe warns of
		# unacknowledged records and still exits 0: e2e
		# TestCollectorKilledNoSpool).
		printf 'export:\n  - url: tcp://127.0.0.1:%s\n    spool: {dir: %s}\n' $PORT "$WORK/spool/$d" >"$WORK/probes/$d.yaml"
		if "$BIN/mira-probe" --config "$WORK/probes/$d.yaml" -r "$PCAP" --domain $d \
			${3:+--speed $3} --drain-timeout 0 --log-level info 2>"$WORK/probes/$d.log"; then
			echo $d >>"$WORK/acked"
		else
			# The kill broke the connection: the probe counts what it
			# could not send and fails. Wait for the restarted collector.
			echo $d >>"$WORK/failed"
			while [ ! -f "$WORK/stop" ] && ! ss -ltn "sport = :$PORT" | grep -q LISTEN; do sleep 0.05; done
		fi
		d=$(($d + $2))
	done
}

# check: the store reads, acked domains are complete, nothing twice.
check() {
	"$BIN/mira" flows --db "$DB" --format csv >"$WORK/all.csv" 2>"$WORK/flows.err" || fail "mira flows: $(cat "$WORK/flows.err")"
	[ ! -s "$WORK/flows.err" ] || fail "mira flows said: $(cat "$WORK/flows.err")"
	"$BIN/mira" report --db "$DB" --format json >"$WORK/report.json" 2>"$WORK/report.err" || fail "mira report: $(cat "$WORK/report.err")"
	! grep -q '"store_errors"' "$WORK/report.json" || fail "decode errors: $(grep -A4 '"store_errors"' "$WORK/report.json")"
	# Spooled runs lose nothing in transit: their replays after a restart
	# are not sequence gaps (the collector re-seeds, not counts).
	! grep -q '"sequence": *[1-9]' "$WORK/report.json" || fail "sequence loss counted with spools: $(grep -o '"sequence": *[0-9]*' "$WORK/report.json" | head -1)"
	tail -n +2 "$WORK/all.csv" | sort | uniq -d >"$WORK/dups"
	[ ! -s "$WORK/dups" ] || fail "$(wc -l <"$WORK/dups") records stored twice, e.g. $(head -1 "$WORK/dups")"
	tail -n +2 "$WORK/all.csv" | awk -F, '{n[$17]++} END{for (d in n) print d, n[d]}' | sort -n >"$WORK/counts"
	if [ -f "$WORK/acked" ]; then
		for d in $(cat "$WORK/acked"); do
			# The records the run exported (a run at --speed meters
			# as live: its records may differ from the clean run's).
			want=$(sed -n 's/.*capture done.* records=\([0-9]*\).*/\1/p' "$WORK/probes/$d.log")
			got=$(awk -v d=$d '$1 == d {print $2}' "$WORK/counts")
			[ "${got:-0}" -eq "${want:--1}" ] || fail "acked probe run (domain $d) has ${got:-0} of ${want:-?} records"
		done
	fi
	awk -v n=$N '$2 > n + n/10 {print "domain " $1 " has " $2 " records, more than " n; bad=1} END{exit bad}' "$WORK/counts" || fail "too many records"
}

s1= s2= cpid=
trap 'touch "$WORK/stop"; for s in $s1 $s2; do kill -KILL $(pgrep -P $s) $s 2>/dev/null || true; done; kill $cpid 2>/dev/null || true' EXIT
start
sender 1000 2 "" &
s1=$!
sender 1001 2 40 &
s2=$!
r=0
while [ $r -lt "$ROUNDS" ]; do
	r=$((r + 1))
	sleep "$(awk -v s=$$$r 'BEGIN{srand(s); printf "%.2f", 0.3 + rand() * 2.5}')"
	kill -KILL $cpid; wait $cpid 2>/dev/null || true
	check
	echo "round $r: $(wc -l <"$WORK/all.csv") records, $(cat "$WORK/acked" 2>/dev/null | wc -l) acked runs, segments $(ls "$DB.seg" | wc -l)"
	start
done
touch "$WORK/stop"
wait $s1 $s2 || true
kill -TERM $cpid; wait $cpid || true
check
# A run that exited 0 has exactly the clean run's records; one the kill
# broke (the probe failed, counting what it did not send) a subset.
rm -rf "$WORK/dom" && mkdir "$WORK/dom"
tail -n +2 "$WORK/all.csv" | awk -F, -v w="$WORK/dom" '{f = w "/" $17; print > f}'
for d in $(awk '{print $1}' "$WORK/counts"); do
	cut -d, -f1-15,18 "$WORK/dom/$d" | sort >"$WORK/dom.csv"
	if [ $((d % 2)) -eq 1 ]; then
		continue # at --speed: counted above
	elif grep -qx "$d" "$WORK/acked"; then
		cmp -s "$WORK/dom.csv" "$WORK/clean.csv" || fail "domain $d: $(wc -l <"$WORK/dom.csv") records differ from the clean run's $N"
	else
		[ -z "$(comm -23 "$WORK/dom.csv" "$WORK/clean.csv")" ] || fail "domain $d (broken run) holds records the clean run has not"
	fi
done
echo "ok: $ROUNDS kills; $(wc -l <"$WORK/acked") acknowledged probe runs stored exactly ($N records each), $(cat "$WORK/failed" 2>/dev/null | wc -l) broken runs stored in part, nothing twice"

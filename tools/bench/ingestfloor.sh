#!/bin/sh
# The floor under issue 13 goal 3 (collector ingest >= 1.5x nfcapd): what
# receiving collector.sh's IPFIX stream and writing it durably costs with
# no decoding at all, beside nfcapd, in interleaved rounds, pinned to one
# core:
#
#   tools/bench/ingestfloor.sh [ROUNDS] [RATE] [LOOPS]
#
#  - nfcapd (as collector.sh runs it);
#  - ingestfloor -poll 0: blocking recvmmsg, every datagram appended to a
#    file as it came, fdatasync each second (a wake-up per datagram at
#    this rate, as nfcapd);
#  - ingestfloor -poll 5ms: the same read as mira-collector's (MSG_DONTWAIT,
#    sleep 5 ms when empty);
#  - ingestfloor -poll 100ms: the longest sleep of mira-collector's adaptive reader;
#  - ingestfloor -poll 100ms -nosync: the same, never synced (nfcapd never
#    syncs: the kernel's flusher threads write its pages back, on no
#    process's account);
#  - ingestfloor -poll 100ms -raw: the least a durable collector that keeps
#    the IPFIX data sets as they came must do: check each message and its
#    exporter's sequence number, keep templates, walk every record to its
#    end reading its flowEndMilliseconds, append each message as a frame
#    with its bounds and a CRC-32C (a commit carries the templates it
#    uses), and per second sync the data and an index file;
#  - mira-collector (ROLLUPS=off, as collector.sh).
#
# CPU seconds are counted as collector.sh does (/proc/PID/stat from
# before the replay until the socket is drained). It prints each
# program's median and its ratio to nfcapd in records per CPU-second
# (every program gets the same 803,284 records), and what 1.5x nfcapd
# leaves: the budget minus the floor is what decoding and storing records
# may cost at most. WORK as collector.sh (default: a new temporary
# directory; the stream is made once there).
set -eu
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
RATE=${2:-500}
LOOPS=${3:-2}
WORK=${WORK:-$(mktemp -d /tmp/mira-ingestfloor.XXXXXX)}
CORE=${CORE:-1}
command -v nfcapd >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y nfdump >/dev/null
. tools/bench/lib.sh
build_stream ""
go build -o "$WORK/ingestfloor" ./tools/bench/ingestfloor
printf 'rollups: {enabled: false}\n' >"$WORK/collector-floor.yaml"
echo "stream: $IPFIX ($(wc -c <"$IPFIX") bytes), $LOOPS times at $RATE messages/s, $ROUNDS rounds, core $CORE"

port=$((20000 + $$ % 20000))
rm -f "$WORK"/*.fcpu
# one NAME CMD...: runs CMD (which must listen on $port) pinned, replays
# the stream into it and appends its CPU seconds to NAME.fcpu.
one() {
	name=$1
	shift
	port=$((port + 1))
	rm -rf "$WORK/floor.out" "$WORK/floor.out.idx" "$WORK/nf" "$WORK/floor.db" "$WORK/floor.db.seg"
	mkdir -p "$WORK/nf"
	# shellcheck disable=SC2046
	taskset -c "$CORE" "$@" >"$WORK/$name.log" 2>&1 &
	pid=$!
	wait_bound $port
	c0=$(cpu $pid)
	"$WORK/ipfixreplay" -to "127.0.0.1:$port" -rate "$RATE" -loops "$LOOPS" "$IPFIX" 2>/dev/null
	wait_drained $port
	c1=$(cpu $pid)
	d=$(drops $port)
	kill -TERM $pid
	wait $pid 2>/dev/null || true
	[ "$d" = 0 ] || echo "WARNING: $name: $d datagrams dropped"
	echo "$(secs "$c0" "$c1")" >>"$WORK/$name.fcpu"
}
# (lib.sh's wait loops use $i: the round counter is $round.)
round=0
while [ $round -lt "$ROUNDS" ]; do
	round=$((round + 1))
	one nfcapd nfcapd -b 127.0.0.1 -p $((port + 1)) -w "$WORK/nf" -t 3600 -B 4194304
	one block "$WORK/ingestfloor" -listen 127.0.0.1:$((port + 1)) -out "$WORK/floor.out" -poll 0
	one poll5ms "$WORK/ingestfloor" -listen 127.0.0.1:$((port + 1)) -out "$WORK/floor.out" -poll 5ms
	one poll100ms "$WORK/ingestfloor" -listen 127.0.0.1:$((port + 1)) -out "$WORK/floor.out" -poll 100ms
	one nosync100ms "$WORK/ingestfloor" -listen 127.0.0.1:$((port + 1)) -out "$WORK/floor.out" -poll 100ms -nosync
	one raw100ms "$WORK/ingestfloor" -listen 127.0.0.1:$((port + 1)) -out "$WORK/floor.out" -poll 100ms -raw
	one mira-collector "$WORK/mira-collector" --config "$WORK/collector-floor.yaml" --listen udp://127.0.0.1:$((port + 1)) \
		--db "$WORK/floor.db" --log-level warn
	echo "round $round: $(for n in nfcapd block poll5ms poll100ms nosync100ms raw100ms mira-collector; do printf '%s %s  ' $n "$(tail -1 "$WORK/$n.fcpu")"; done)"
done
rm -rf "$WORK/floor.out" "$WORK/floor.out.idx" "$WORK/nf" "$WORK/floor.db" "$WORK/floor.db.seg"
median() { sort -n "$WORK/$1.fcpu" | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
nf=$(median nfcapd)
for n in nfcapd block poll5ms poll100ms nosync100ms raw100ms mira-collector; do
	m=$(median $n)
	echo "$n $m $nf" | awk '{printf "%-15s median cpu %6.3fs  (%s)  %.2fx nfcapd records/cpu-s\n", $1, $2, "'"$(tr '\n' ' ' <"$WORK/$n.fcpu")"'", ($2 > 0 ? $3/$2 : 0)}'
done
echo "$nf" | awk '{printf "1.5x nfcapd leaves %.3f cpu-s for the whole collector\n", $1/1.5}'

#!/bin/sh
# The floors under issue 13 goal 3 (collector ingest >= 1.5x nfcapd):
# what receiving collector.sh's IPFIX stream, decoding it with MIRA's
# decoder, and writing it durably each cost on their own, beside nfcapd
# and mira-collector, in interleaved rounds, pinned to one core:
#
#   tools/bench/ingestfloor.sh [ROUNDS] [RATE] [LOOPS]
#
#  - nfcapd (as collector.sh runs it);
#  - discard: receive every datagram, nothing else;
#  - decode: receive and decode with MIRA's decoder (ipfix.Session.DecodeEach,
#    as mira-collector), records discarded: what any collector that decodes
#    MIRA's records at ingest pays before it stores anything;
#  - encode: decode as decode does, encode each record in the store's record
#    encoding and append them in arrival order to a file synced each
#    second: the least a durable collector that decodes into MIRA's stored
#    encoding does (no sort, no chunks, no index, no commit transaction);
#  - append: receive and append each datagram as it came to a file synced
#    (fdatasync) each second;
#  - nosync: the same, never synced (nfcapd never syncs: the kernel's
#    flusher threads write its pages back, on no process's account);
#  - direct: append with O_DIRECT in 4 KiB-aligned blocks, synced each second;
#  - raw: the least a durable collector that keeps the IPFIX data sets as
#    they came must do: check each message and its exporter's sequence
#    number, keep templates, walk every record to its end reading its
#    flowEndMilliseconds, append each message as a frame with its bounds
#    and a CRC-32C (a commit carries the templates it uses), and per second
#    sync the data and an index file;
#  - mira-collector (ROLLUPS=off, as collector.sh).
# Every ingestfloor mode reads with MSG_DONTWAIT and sleeps 100 ms when
# the socket is empty (the longest sleep of mira-collector's adaptive
# reader; POLL=0 blocks in recvmmsg instead, a wake-up per datagram as
# nfcapd). MODES picks the programs (default: all of the above).
#
# CPU seconds are counted from before the replay until the socket is
# drained, as collector.sh does, but exactly: the threads' run time from
# /proc/PID/task/*/schedstat instead of /proc/PID/stat's 10 ms ticks. It prints each
# program's median and its ratio to nfcapd in records per CPU-second
# (every program gets the same 803,284 records) per round and over the
# medians, and what 1.5x nfcapd leaves for the whole collector. WORK as
# collector.sh (default: a new temporary directory; the stream is made
# once there).
set -eu
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
RATE=${2:-500}
LOOPS=${3:-2}
WORK=${WORK:-$(mktemp -d /tmp/mira-ingestfloor.XXXXXX)}
CORE=${CORE:-1}
POLL=${POLL:-100ms}
MODES=${MODES:-nfcapd discard decode encode append nosync direct raw mira-collector}
command -v nfcapd >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y nfdump >/dev/null
. tools/bench/lib.sh
build_stream ""
go build -o "$WORK/ingestfloor" ./tools/bench/ingestfloor
printf 'rollups: {enabled: false}\n' >"$WORK/collector-floor.yaml"
echo "stream: $IPFIX ($(wc -c <"$IPFIX") bytes), $LOOPS times at $RATE messages/s, $ROUNDS rounds, core $CORE, poll $POLL"

port=$((20000 + $$ % 20000))
rm -f "$WORK"/*.fcpu
clean() { rm -rf "$WORK/floor.out" "$WORK/floor.out.idx" "$WORK/nf" "$WORK/floor.db" "$WORK/floor.db.seg"; }
# cpuns PID: nanoseconds PID's threads have run (the sum of
# /proc/PID/task/*/schedstat's first fields: exact, where /proc/PID/stat
# counts 10 ms ticks).
cpuns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END{printf "%d\n", s}'; }
# one NAME: runs NAME (listening on $port) pinned, replays the stream
# into it and appends its CPU seconds to NAME.fcpu.
one() {
	name=$1
	port=$((port + 1))
	clean
	mkdir -p "$WORK/nf"
	floor="$WORK/ingestfloor -listen 127.0.0.1:$port -poll $POLL"
	case $name in
	nfcapd) set -- nfcapd -b 127.0.0.1 -p $port -w "$WORK/nf" -t 3600 -B 4194304 ;;
	discard) set -- $floor -mode discard ;;
	decode) set -- $floor -mode decode ;;
	encode) set -- $floor -mode encode -out "$WORK/floor.out" ;;
	append) set -- $floor -mode append -out "$WORK/floor.out" ;;
	nosync) set -- $floor -mode append -out "$WORK/floor.out" -nosync ;;
	direct) set -- $floor -mode append -out "$WORK/floor.out" -direct ;;
	raw) set -- $floor -mode raw -out "$WORK/floor.out" ;;
	mira-collector) set -- "$WORK/mira-collector" --config "$WORK/collector-floor.yaml" --listen udp://127.0.0.1:$port \
		--db "$WORK/floor.db" --log-level warn ;;
	*) echo "unknown program $name" >&2; exit 2 ;;
	esac
	taskset -c "$CORE" "$@" >"$WORK/$name.log" 2>&1 &
	pid=$!
	wait_bound $port
	c0=$(cpuns $pid)
	"$WORK/ipfixreplay" -to "127.0.0.1:$port" -rate "$RATE" -loops "$LOOPS" "$IPFIX" 2>/dev/null
	wait_drained $port
	c1=$(cpuns $pid)
	d=$(drops $port)
	kill -TERM $pid
	wait $pid 2>/dev/null || true
	[ "$d" = 0 ] || echo "WARNING: $name: $d datagrams dropped"
	echo "$c0 $c1" | awk '{printf "%.3f\n", ($2-$1)/1e9}' >>"$WORK/$name.fcpu"
}
# (lib.sh's wait loops use $i: the round counter is $round.)
round=0
while [ $round -lt "$ROUNDS" ]; do
	round=$((round + 1))
	for n in $MODES; do one $n; done
	nf=$(tail -1 "$WORK/nfcapd.fcpu" 2>/dev/null || echo 0)
	echo "round $round: $(for n in $MODES; do c=$(tail -1 "$WORK/$n.fcpu"); printf '%s %s (%s)  ' $n $c "$(echo "$nf $c" | awk '{printf "%.2fx", ($2 > 0 ? $1/$2 : 0)}')"; done)"
done
clean
median() { sort -n "$WORK/$1.fcpu" | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
nf=$(median nfcapd)
for n in $MODES; do
	m=$(median $n)
	echo "$n $m $nf" | awk '{printf "%-15s median cpu %6.3fs  (%s)  %.2fx nfcapd records/cpu-s\n", $1, $2, "'"$(tr '\n' ' ' <"$WORK/$n.fcpu")"'", ($2 > 0 ? $3/$2 : 0)}'
done
echo "$nf" | awk '{printf "1.5x nfcapd leaves %.3f cpu-s for the whole collector\n", $1/1.5}'

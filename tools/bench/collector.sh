#!/bin/sh
# Collector-ingest benchmark: mira-collector against nfcapd on the same
# IPFIX stream, in one run.
#
#   tools/bench/collector.sh [PCAP] [RATE] [LOOPS]
#
# mira-probe turns PCAP (default: `mira synth --large`, shared with
# flowmeter.sh through $WORK) into an RFC 5655 file once; ipfixreplay then
# sends its messages over UDP at RATE messages/s (default 500; a message
# of the file export holds ~128 records), LOOPS times (default 2, each
# pass in its own observation domains), to each
# collector in turn, both pinned to one core. For each it prints the
# records stored, the datagrams the kernel dropped, the CPU seconds the
# collector process used (/proc/PID/stat utime+stime, from before the
# replay until it has drained its socket; the store flush at exit is not
# included for either), records per CPU-second and the ratio; then the
# same over each process's whole life (/usr/bin/time: start, ingest and
# the flush at exit), which holds the rollups' work that waits for their
# horizon (most of it on a replay this short).
#
# ROLLUPS=off runs mira-collector with collector.yaml `rollups: {enabled:
# false}`; the default (ROLLUPS=on) keeps them, as a default install does.
set -eu
cd "$(dirname "$0")/../.."
RATE=${2:-500}
LOOPS=${3:-2}
WORK=${WORK:-$(mktemp -d /tmp/mira-bench.XXXXXX)}
CORE=${CORE:-1}
ROLLUPS=${ROLLUPS:-on}
case $ROLLUPS in on) enabled=true ;; off) enabled=false ;; *) echo "ROLLUPS=on or off" >&2; exit 2 ;; esac
need() { command -v "$1" >/dev/null 2>&1; }
if ! need nfcapd; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y nfdump >/dev/null
fi
. tools/bench/lib.sh
build_stream "${1:-}"
echo "stream: $IPFIX ($(wc -c <"$IPFIX") bytes), sent $LOOPS times at $RATE messages/s; rollups $ROLLUPS"
printf 'rollups: {enabled: %s}\n' $enabled >"$WORK/collector-bench.yaml"


# bench NAME PORT PID: replay into PORT, print "NAME cpu_s drops".
bench() {
	wait_bound "$2"
	c0=$(cpu "$3")
	"$WORK/ipfixreplay" -to "127.0.0.1:$2" -rate "$RATE" -loops "$LOOPS" "$IPFIX" 2>>"$WORK/replay.log"
	wait_drained "$2"
	c1=$(cpu "$3")
	echo "$1 $(echo "$c0 $c1 $HZ" | awk '{printf "%.3f", ($2-$1)/$3}') $(drops "$2")"
}

port=$((20000 + $$ % 20000))
rm -rf "$WORK/nf" && mkdir -p "$WORK/nf"
# child PID: the process that taskset exec'd under /usr/bin/time.
child() {
	i=0
	while ! pgrep -P "$1" >/dev/null; do
		i=$((i + 1)); [ $i -lt 500 ] || { echo "no child of $1" >&2; exit 1; }
		sleep 0.02
	done
	pgrep -P "$1"
}
/usr/bin/time -f "%U %S" -o "$WORK/nfcapd.time" taskset -c "$CORE" nfcapd -b 127.0.0.1 -p $port -w "$WORK/nf" -t 3600 -B 4194304 >"$WORK/nfcapd.log" 2>&1 &
tpid=$!
nfpid=$(child $tpid)
nf=$(bench nfcapd $port $nfpid)
kill -TERM $nfpid && wait $tpid || true
nfrecs=$(nfdump -R "$WORK/nf" -q -o csv | grep -c . || true)

port=$((port + 1))
rm -rf "$WORK/collector.db" "$WORK/collector.db.seg"
/usr/bin/time -f "%U %S" -o "$WORK/collector.time" taskset -c "$CORE" "$WORK/mira-collector" --config "$WORK/collector-bench.yaml" \
	--listen udp://127.0.0.1:$port --db "$WORK/collector.db" --log-level warn >"$WORK/collector.log" 2>&1 &
tpid=$!
mcpid=$(child $tpid)
mc=$(bench mira-collector $port $mcpid)
kill -TERM $mcpid && wait $tpid || true
mcrecs=$("$WORK/mira" flows --db "$WORK/collector.db" --format json --limit 1 | awk -F': *' '/"flows": [0-9]/{gsub(/,/, "", $2); print $2; exit}')

sent=$(awk '{n=$0} END{print n}' "$WORK/replay.log")
echo "replay: $sent"
echo "$nf $nfrecs" | awk '{printf "%-15s stored %9d records, %6d datagrams dropped, cpu %7.3fs, %10.0f records/cpu-s\n", $1, $4, $3, $2, ($2 > 0 ? $4/$2 : 0)}'
echo "$mc $mcrecs" | awk '{printf "%-15s stored %9d records, %6d datagrams dropped, cpu %7.3fs, %10.0f records/cpu-s\n", $1, $4, $3, $2, ($2 > 0 ? $4/$2 : 0)}'
echo "$nf $nfrecs $mc $mcrecs" | awk '$2 > 0 && $6 > 0 {printf "ratio mira-collector/nfcapd: %.2fx records per cpu-second\n", ($8/$6)/($4/$2)}'
nfl=$(awk '{printf "%.2f", $1 + $2}' "$WORK/nfcapd.time")
mcl=$(awk '{printf "%.2f", $1 + $2}' "$WORK/collector.time")
echo "whole life: nfcapd cpu ${nfl}s, mira-collector cpu ${mcl}s"
echo "$nfl $nfrecs $mcl $mcrecs" | awk '$1 > 0 && $3 > 0 {printf "ratio over the whole life: %.2fx records per cpu-second\n", ($4/$3)/($2/$1)}'
echo "$nf $mc" | awk '$3 > 0 || $6 > 0 {print "WARNING: datagrams were dropped: a collector did not keep up at this rate; lower RATE for a per-CPU comparison"}'
echo "work dir: $WORK"

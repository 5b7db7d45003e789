#!/bin/sh
# The limit of issue 13 goal 1 (mira-probe -r with the default symptom
# database >= 3x softflowd), measured on one trace, pinned to one core,
# in interleaved rounds beside softflowd:
#
#   tools/bench/scanfloor.sh PCAP [RUNS]
#
#  - softflowd -r PCAP exporting to nfcapd (as flowmeter.sh runs it);
#  - the least reading the trace can cost (pcapfloor walk) and a toy
#    meter on top (pcapfloor meter: IPv4 5-tuple counters only, no
#    timeouts, records or export);
#  - vectorscan (hsbench, block mode) scanning exactly the payloads
#    mira-probe scans (tools/hsbench/payloads: every datagram, TCP up to
#    the TLS bypass; their bytes equal the probe's scanned_octets) for the
#    default database's literal patterns only: less than the probe's
#    matcher does, so a lower bound on any scan of them;
#  - the Go matcher (payloads -scan) on the same blocks.
#
# It prints each figure's median CPU seconds, softflowd's / 3 (the
# budget 3x leaves), and the sum toy meter + vectorscan against it.
# WORK keeps the binaries and the payload corpus; CORE (default 1).
set -eu
cd "$(dirname "$0")/../.."
PCAP=$1
RUNS=${2:-5}
WORK=${WORK:-$(mktemp -d /tmp/mira-floor.XXXXXX)}
CORE=${CORE:-1}
need() { command -v "$1" >/dev/null 2>&1; }
if ! need softflowd || ! need nfcapd || [ ! -f /usr/include/hs/hs.h ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y softflowd nfdump libvectorscan-dev >/dev/null
fi
. tools/bench/lib.sh
go build -o "$WORK/pcapfloor" ./tools/bench/pcapfloor
go build -o "$WORK/payloads" ./tools/hsbench/payloads
gcc -O2 -Wall -o "$WORK/hsbench" tools/hsbench/hsbench.c -lhs
corpus=$WORK/$(basename "$PCAP").payloads
if [ ! -f "$corpus" ] || [ "$PCAP" -nt "$corpus" ]; then
	"$WORK/payloads" -r "$PCAP" -o "$corpus" -patterns "$WORK/literals.txt"
fi

port=$((20000 + $$ % 20000))
rm -rf "$WORK/flows" && mkdir -p "$WORK/flows"
nfcapd -b 127.0.0.1 -p $port -w "$WORK/flows" -t 3600 -B 4194304 >"$WORK/nfcapd.log" 2>&1 &
nfpid=$!
trap 'kill $nfpid 2>/dev/null; rm -rf "$WORK/flows"' EXIT # the flows are not needed: only CPU time is
wait_bound $port
"$WORK/pcapfloor" walk "$PCAP" >/dev/null # into the page cache

rm -f "$WORK"/*.cpu
# timed NAME CMD...: one pinned run; appends its CPU seconds to NAME.cpu.
timed() {
	name=$1
	shift
	/usr/bin/time -f "%U %S" -o "$WORK/t1" taskset -c "$CORE" "$@" >"$WORK/$name.out" 2>&1 || { cat "$WORK/$name.out"; exit 1; }
	awk '{printf "%.3f\n", $1+$2}' "$WORK/t1" >>"$WORK/$name.cpu"
}
i=0
while [ $i -lt "$RUNS" ]; do
	timed softflowd softflowd -r "$PCAP" -n 127.0.0.1:$port -v 10 -A milli -d
	timed walk "$WORK/pcapfloor" walk "$PCAP"
	timed meter "$WORK/pcapfloor" meter "$PCAP"
	# hsbench and payloads -scan time their scan loops themselves
	# (thread CPU), without reading the corpus file.
	taskset -c "$CORE" "$WORK/hsbench" "$WORK/literals.txt" "$corpus" lp 1 >"$WORK/hs.out"
	sed -n 's/.*cpu_s_median=\([0-9.]*\).*/\1/p' "$WORK/hs.out" >>"$WORK/vectorscan.cpu"
	taskset -c "$CORE" "$WORK/payloads" -scan "$corpus" >"$WORK/go.out"
	sed -n 's/.*cpu_s=\([0-9.]*\).*/\1/p' "$WORK/go.out" >>"$WORK/gomatch.cpu"
	i=$((i + 1))
done
med() { sort -n "$WORK/$1.cpu" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
sf=$(med softflowd)
echo "trace: $PCAP ($(sed -n 's/.*packets=\([0-9]*\).*/\1/p' "$WORK/walk.out") packets); $(head -1 "$WORK/hs.out" | sed 's/^run 1: //')"
echo "payloads scanned: $(sed -n 's/.*blocks=\([0-9]*\) bytes=\([0-9]*\).*/\1 blocks, \2 bytes/p' "$WORK/go.out")"
for n in softflowd walk meter vectorscan gomatch; do
	printf '%-11s median %s CPU-s, rounds: %s\n' "$n" "$(med $n)" "$(tr '\n' ' ' <"$WORK/$n.cpu")"
done
echo "$sf $(med meter) $(med vectorscan) $(med walk)" | awk '{
	printf "3x softflowd leaves %.3f CPU-s\n", $1/3
	printf "toy meter + vectorscan on the scanned payloads: %.3f CPU-s = %.2fx softflowd\n", $2+$3, $1/($2+$3)
	printf "pcap walk + vectorscan alone: %.3f CPU-s = %.2fx softflowd\n", $4+$3, $1/($4+$3)
}'
echo "work dir: $WORK"

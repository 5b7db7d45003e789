#!/bin/sh
# Flow-metering benchmark: mira-probe beside softflowd -r on the same large
# synthetic pcap, both exporting IPFIX to the same nfcapd, each pinned to one
# core, in one run. Prints packets per second (wall and CPU) and the ratio.
#
#   tools/bench/flowmeter.sh [PCAP] [RUNS]
#
# Without PCAP it synthesises the large trace with `mira synth --large`.
set -eu
cd "$(dirname "$0")/../.."
RUNS=${2:-3}
WORK=${WORK:-$(mktemp -d /tmp/mira-bench.XXXXXX)}
need() { command -v "$1" >/dev/null 2>&1; }
if ! need softflowd || ! need nfcapd; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y softflowd nfdump >/dev/null
fi
go build -o "$WORK/mira-probe" ./cmd/mira-probe
go build -o "$WORK/mira" ./cmd/mira
PCAP=${1:-$WORK/large.pcap}
if [ ! -f "$PCAP" ]; then
	echo "synthesising $PCAP ..."
	"$WORK/mira" synth --large -o "$PCAP"
fi
PKTS=$(tshark -r "$PCAP" -T fields -e frame.number 2>/dev/null | tail -1 || true)
[ -n "$PKTS" ] || PKTS=$(capinfos -c -M "$PCAP" 2>/dev/null | awk '/Number of packets/{print $NF}')
echo "trace: $PCAP, $PKTS packets"

port=$((20000 + $$ % 20000))
mkdir -p "$WORK/flows"
nfcapd -b 127.0.0.1 -p $port -w "$WORK/flows" -t 3600 -P "$WORK/nfcapd.pid" -D
sleep 0.5

# run CMD...: prints "wall_s cpu_s" of the median run
measure() {
	i=0
	: >"$WORK/times"
	while [ $i -lt "$RUNS" ]; do
		/usr/bin/time -f "%e %U %S" -o "$WORK/t1" taskset -c 1 "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err"; exit 1; }
		awk '{printf "%s %.3f\n", $1, $2+$3}' "$WORK/t1" >>"$WORK/times"
		i=$((i + 1))
	done
	sort -n "$WORK/times" | awk -v n="$RUNS" 'NR==int((n+1)/2){print}'
}
taskset -c 1 "$WORK/mira-probe" -r "$PCAP" >/dev/null 2>&1 || true # warm the page cache
sf=$(measure softflowd -r "$PCAP" -n 127.0.0.1:$port -v 10 -A milli -d)
mp=$(measure "$WORK/mira-probe" -r "$PCAP" --export udp://127.0.0.1:$port --log-level warn)
kill "$(cat "$WORK/nfcapd.pid")" || true

echo "$sf" | awk -v p="$PKTS" '{printf "softflowd -r : wall %.2fs cpu %.2fs  %.2f Mpps (wall) %.2f Mpps (cpu)\n", $1, $2, p/$1/1e6, p/$2/1e6}'
echo "$mp" | awk -v p="$PKTS" '{printf "mira-probe -r: wall %.2fs cpu %.2fs  %.2f Mpps (wall) %.2f Mpps (cpu)\n", $1, $2, p/$1/1e6, p/$2/1e6}'
echo "$sf $mp" | awk '{printf "ratio mira/softflowd: %.2fx (wall) %.2fx (cpu)\n", $1/$3, $2/$4}'
echo "work dir: $WORK"

#!/bin/sh
# Flow-metering benchmark: mira-probe beside softflowd -r on the same large
# synthetic pcap, both exporting IPFIX to the same nfcapd, each pinned to one
# core, in one run, taking turns (RUNS rounds; medians by CPU time). Prints packets per second (wall and CPU), the ratio,
# and what each tool processed and exported, so a fast but wrong run
# shows.
#
#   tools/bench/flowmeter.sh [PCAP] [RUNS]
#
# Without PCAP it synthesises the large trace with `mira synth --large`
# (kept in $WORK, shared with collector.sh); with MIX=realistic it
# synthesises `mira synth --large --payload-mix realistic` (the issue 13
# reference trace's payload sizes, most bytes TLS) as realistic.pcap. CORE (default 1) is the core
# both tools are pinned to. BEFORE, a mira-probe binary built at another
# commit, joins the rounds (same flags) for a before/after comparison.
# The nfcapd sink is removed once its flows are counted (KEEP_FLOWS=1 keeps
# it in $WORK/flows).
set -eu
cd "$(dirname "$0")/../.."
RUNS=${2:-3}
WORK=${WORK:-$(mktemp -d /tmp/mira-bench.XXXXXX)}
CORE=${CORE:-1}
need() { command -v "$1" >/dev/null 2>&1; }
if ! need softflowd || ! need nfcapd; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y softflowd nfdump >/dev/null
fi
go build -o "$WORK/mira-probe" ./cmd/mira-probe
go build -o "$WORK/mira" ./cmd/mira
MIX=${MIX:-synthetic}
case $MIX in
synthetic) PCAP=${1:-$WORK/large.pcap} ;;
*) PCAP=${1:-$WORK/$MIX.pcap} ;;
esac
if [ ! -f "$PCAP" ]; then
	echo "synthesising $PCAP ..."
	"$WORK/mira" synth --large --payload-mix "$MIX" -o "$PCAP"
fi

# udpline PORT: the /proc/net/udp line of the socket bound to PORT.
udpline() { awk -v p="$(printf ':%04X' "$1")" 'substr($2, length($2)-4) == p' /proc/net/udp; }
rxq() { printf '%d\n' "0x$(udpline "$1" | awk '{split($5, q, ":"); print q[2]}')"; }

port=$((20000 + $$ % 20000))
rm -rf "$WORK/flows" && mkdir -p "$WORK/flows"
nfcapd -b 127.0.0.1 -p $port -w "$WORK/flows" -t 3600 -B 4194304 >"$WORK/nfcapd.log" 2>&1 &
nfpid=$!
i=0
while [ -z "$(udpline $port)" ]; do
	i=$((i + 1)); [ $i -lt 500 ] || { echo "nfcapd did not bind udp port $port" >&2; exit 1; }
	sleep 0.02
done

# The warm-up run reads the trace into the page cache and counts its
# packets (mira-probe's own count; tshark would take minutes).
taskset -c "$CORE" "$WORK/mira-probe" -r "$PCAP" --log-level info 2>"$WORK/warm.log" >/dev/null
PKTS=$(sed -n 's/.*msg="capture ended" packets=\([0-9]*\).*/\1/p' "$WORK/warm.log")
[ -n "$PKTS" ] || { cat "$WORK/warm.log"; exit 1; }
echo "trace: $PCAP, $PKTS packets"

# run NAME CMD...: one timed run of CMD pinned to $CORE; appends
# "wall_s cpu_s run" to $WORK/NAME.times and keeps its stderr as
# $WORK/NAME.RUN.err.
run() {
	name=$1
	shift
	/usr/bin/time -f "%e %U %S" -o "$WORK/t1" taskset -c "$CORE" "$@" >/dev/null 2>"$WORK/$name.$i.err" || { cat "$WORK/$name.$i.err"; exit 1; }
	awk -v i=$i '{printf "%s %.3f %d\n", $1, $2+$3, i}' "$WORK/t1" >>"$WORK/$name.times"
}
# median NAME: "wall_s cpu_s" of NAME's median run (by CPU time); keeps
# that run's stderr as $WORK/NAME.err.
median() {
	med=$(sort -k2 -n "$WORK/$1.times" | awk -v n="$RUNS" 'NR==int((n+1)/2){print}')
	cp "$WORK/$1.$(echo "$med" | awk '{print $3}').err" "$WORK/$1.err"
	echo "$med" | awk '{print $1, $2}'
}
# Like for like: softflowd meters flows but scans no payload.
printf 'symptoms:\n  disabled: true\n' >"$WORK/noscan.yaml"
# The tools take turns, round after round, so that a drift in the
# machine's speed (other tenants, frequency) weighs on all of them alike.
rm -f "$WORK"/*.times
i=0
while [ $i -lt "$RUNS" ]; do
	run softflowd softflowd -r "$PCAP" -n 127.0.0.1:$port -v 10 -A milli -d
	run mira-probe "$WORK/mira-probe" -r "$PCAP" --export udp://127.0.0.1:$port --log-level info
	run mira-noscan "$WORK/mira-probe" --config "$WORK/noscan.yaml" -r "$PCAP" --export udp://127.0.0.1:$port --log-level info
	if [ -n "${BEFORE:-}" ]; then
		run mira-before "$BEFORE" -r "$PCAP" --export udp://127.0.0.1:$port --log-level info
	fi
	i=$((i + 1))
done
sf=$(median softflowd)
mp=$(median mira-probe)
mn=$(median mira-noscan)
while [ "$(rxq $port)" != 0 ]; do sleep 0.02; done
drops=$(udpline $port | awk '{print $NF}')
kill -TERM $nfpid && wait $nfpid || true
stored=$(nfdump -R "$WORK/flows" -q -o csv | grep -c . || true)
# The sink holds every run's flows (several GB for 5 rounds of --large):
# counted, it goes, unless KEEP_FLOWS=1.
[ "${KEEP_FLOWS:-0}" = 1 ] || rm -rf "$WORK/flows"

mppk=$(sed -n 's/.*msg="capture ended" packets=\([0-9]*\).*/\1/p' "$WORK/mira-probe.err")
mpfl=$(sed -n 's/.*msg="capture ended" .* records=\([0-9]*\).*/\1/p' "$WORK/mira-probe.err")

echo "$sf" | awk -v p="$PKTS" '{printf "softflowd -r : wall %.2fs cpu %.2fs  %.2f Mpps (wall) %.2f Mpps (cpu)\n", $1, $2, p/$1/1e6, p/$2/1e6}'
echo "$mp" | awk -v p="$PKTS" '{printf "mira-probe -r: wall %.2fs cpu %.2fs  %.2f Mpps (wall) %.2f Mpps (cpu)\n", $1, $2, p/$1/1e6, p/$2/1e6}'
echo "$mn" | awk -v p="$PKTS" '{printf "mira-probe -r, no symptom scan: wall %.2fs cpu %.2fs  %.2f Mpps (wall) %.2f Mpps (cpu)\n", $1, $2, p/$1/1e6, p/$2/1e6}'
echo "$sf $mp" | awk '{printf "ratio mira/softflowd: %.2fx (wall) %.2fx (cpu)\n", $1/$3, $2/$4}'
echo "$sf $mn" | awk '{printf "ratio mira (no symptom scan)/softflowd: %.2fx (wall) %.2fx (cpu)\n", $1/$3, $2/$4}'
paste "$WORK/softflowd.times" "$WORK/mira-probe.times" |
	awk '{r = r sprintf(" %.2f", $2/$5)} END{print "ratio (scanning) per round, CPU:" r}'
if [ -n "${BEFORE:-}" ]; then
	mb=$(median mira-before)
	echo "$mb" | awk -v p="$PKTS" '{printf "mira-probe -r, BEFORE: wall %.2fs cpu %.2fs  %.2f Mpps (wall) %.2f Mpps (cpu)\n", $1, $2, p/$1/1e6, p/$2/1e6}'
	echo "$sf $mb" | awk '{printf "ratio BEFORE/softflowd: %.2fx (cpu)\n", $2/$4}'
	paste "$WORK/softflowd.times" "$WORK/mira-before.times" |
		awk '{r = r sprintf(" %.2f", $2/$5)} END{print "ratio (BEFORE) per round, CPU:" r}'
fi
paste "$WORK/softflowd.times" "$WORK/mira-noscan.times" |
	awk '{r = r sprintf(" %.2f", $2/$5)} END{print "ratio (no symptom scan) per round, CPU:" r}'
echo "mira-probe: ${mppk:-?} packets processed, ${mpfl:-?} flows exported per run"
echo "nfcapd    : $stored flows stored from $RUNS runs of each (mira-probe twice${BEFORE:+, three times with BEFORE}), $drops datagrams dropped by the kernel"
# softflowd -r prints no statistics at EOF; what nfcapd stored tells.
[ "$drops" = 0 ] && [ -n "$mpfl" ] &&
	echo "softflowd : $(( (stored - ${BEFORE:+1 * RUNS * mpfl -} 2 * RUNS * mpfl) / RUNS )) flows exported per run (nfcapd's count less mira-probe's)"
echo "work dir: $WORK"

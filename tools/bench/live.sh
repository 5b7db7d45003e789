#!/bin/sh
# Live capture over veth (issue 12 benchmark): tcpreplay sends a capture
# from one network namespace at a given rate (pps, or "top" for
# --topspeed) into a veth pair; in the other namespace either mira-probe
# -i (fanout over WORKERS sockets, one per core, both cores) or
# `tcpdump -w /dev/null` captures it. Rounds alternate between the two.
# Prints, per round, the packets tcpreplay sent and its rate, what the
# capture counted, its kernel drops and its CPU time. Needs root.
#
#   tools/bench/live.sh [PCAP] [RATE] [ROUNDS]
#
# WORKERS (default 2), LOOPS (default 5: tcpreplay --loop).
set -eu
cd "$(dirname "$0")/../.."
WORK=${WORK:-$(mktemp -d /tmp/mira-live.XXXXXX)}
RATE=${2:-top}
ROUNDS=${3:-3}
WORKERS=${WORKERS:-2}
LOOPS=${LOOPS:-5}
go build -o "$WORK/" ./cmd/mira ./cmd/mira-probe
PCAP=${1:-$WORK/sample.pcap}
[ -f "$PCAP" ] || "$WORK/mira" synth --large --flows 3000 -o "$PCAP"
A=mlivea$$
B=mliveb$$
cleanup() { ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; }
trap cleanup EXIT
ip netns add $A
ip netns add $B
ip link add va$$ netns $A type veth peer name vb$$ netns $B
for ns in $A $B; do
	ip -n $ns link set lo up
	ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip -n $A link set va$$ up
ip -n $B link set vb$$ up
if [ "$RATE" = top ]; then rate="--topspeed"; else rate="--pps=$RATE"; fi
mport=$((30000 + $$ % 20000))

# send: tcpreplay from A; prints "sent_packets rate_pps".
send() {
	ip netns exec $A tcpreplay -i va$$ $rate --loop "$LOOPS" "$PCAP" 2>&1 |
		awk '/Actual:/{n=$2} /Rated:/{for(i=1;i<=NF;i++) if($i ~ /pps/) r=$(i-1)} END{print n, r}'
}
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; } # utime+stime, clock ticks

for round in $(seq "$ROUNDS"); do
	# mira-probe: WORKERS sockets in a fanout group.
	ip netns exec $B "$WORK/mira-probe" -i vb$$ --workers "$WORKERS" --metrics "127.0.0.1:$mport" --log-level info 2>"$WORK/probe.$round.log" &
	pid=$!
	i=0
	until ip netns exec $B curl -sf "http://127.0.0.1:$mport/metrics" >/dev/null; do
		i=$((i + 1)); [ $i -lt 300 ] || { cat "$WORK/probe.$round.log"; exit 1; }
		sleep 0.05
	done
	c0=$(cpu $pid)
	s=$(send)
	sleep 0.5 # the last frames reach the ring
	m=$(ip netns exec $B curl -s "http://127.0.0.1:$mport/metrics")
	c1=$(cpu $pid)
	kill -TERM $pid
	wait $pid || true
	pk=$(echo "$m" | awk '/^mira_probe_packets_total /{print $2}')
	dr=$(echo "$m" | awk '/^mira_probe_source_drops_total/{d+=$2} END{print d+0}')
	echo "round $round mira-probe: sent/rate $s captured $pk drops $dr cpu_ticks $((c1 - c0))"

	ip netns exec $B tcpdump -i vb$$ -w /dev/null -n 2>"$WORK/tcpdump.$round.log" &
	pid=$!
	i=0
	until grep -q listening "$WORK/tcpdump.$round.log"; do
		i=$((i + 1)); [ $i -lt 300 ] || { cat "$WORK/tcpdump.$round.log"; exit 1; }
		sleep 0.05
	done
	c0=$(cpu $pid)
	s=$(send)
	sleep 0.5
	c1=$(cpu $pid)
	kill -INT $pid
	wait $pid || true
	pk=$(awk '/packets captured/{print $1}' "$WORK/tcpdump.$round.log")
	dr=$(awk '/dropped by kernel/{print $1}' "$WORK/tcpdump.$round.log")
	echo "round $round tcpdump:    sent/rate $s captured $pk drops $dr cpu_ticks $((c1 - c0))"
done

#!/bin/sh
# Overload over veth (issue 12, "How it is checked": "the same over veth
# with tcpreplay in a network namespace"). tcpreplay --topspeed sends a
# synthetic capture from one network namespace into a veth pair; in the
# other, mira-probe -i (WORKERS fanout sockets, 1000 symptom patterns)
# meters it and exports to mira-collector. tcpreplay here offers at most
# ~0.35 Mpps, which the probe meters on one core, so a slower machine is
# made reproducibly with a CPU cgroup: the probe's process is confined
# to QUOTA microseconds of CPU per 100,000 (cgroup v1 cpu.cfs_quota_us,
# or v2 cpu.max). Each round replays once unconfined (the clean run)
# and once per quota. Per run it prints what tcpreplay sent and its rate,
# what the probe took in, its ring drops, queue drops, regulated-out
# packets and regulation changes, the report's estimate with its 95 %
# interval, estimate + ring drops + queue losses of the wire against
# what was sent, and the regulation state, sampling interval and changes
# /metrics and SNMP (MIRA-PROBE-MIB) showed while tcpreplay ran. Needs
# root. The cgroup and the namespaces are removed on exit.
#
#   tools/bench/overload_veth.sh [PCAP] [ROUNDS] [QUOTA...]
#
# Defaults: `mira synth --large --flows 20000`, 3 rounds, quotas 20000
# 10000 5000. WORKERS (default 2). SYMS: a symptom file (default the
# 1000-pattern one of tools/hsbench/gomatch).
set -eu
cd "$(dirname "$0")/../.."
WORK=${WORK:-$(mktemp -d /tmp/mira-oveth.XXXXXX)}
PCAP=${1:-$WORK/s20k.pcap}
ROUNDS=${2:-3}
WORKERS=${WORKERS:-2}
if [ $# -ge 2 ]; then shift 2; else shift $#; fi
QUOTAS=${*:-20000 10000 5000}
go build -o "$WORK/" ./cmd/mira ./cmd/mira-probe ./cmd/mira-collector
if [ -z "${SYMS:-}" ]; then
	go run ./tools/hsbench/gomatch -gen "$WORK" -size 4096
	SYMS=$WORK/symptoms-1000.yaml
fi
[ -f "$PCAP" ] || "$WORK/mira" synth --large --flows 20000 -o "$PCAP"

A=movea$$
B=moveb$$
if [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
	CGP=/sys/fs/cgroup/cpu
else
	CGP=/sys/fs/cgroup
	grep -qw cpu $CGP/cgroup.subtree_control || echo +cpu >$CGP/cgroup.subtree_control
fi
CG=$CGP/mira-oveth$$
cleanup() {
	kill $cpid 2>/dev/null || true
	if [ -d "$CG" ]; then
		for p in $(cat "$CG/cgroup.procs"); do echo "$p" >"$CGP/cgroup.procs" || true; done
		rmdir "$CG" || true
	fi
	ip netns del $A 2>/dev/null || true
	ip netns del $B 2>/dev/null || true
}
cpid=
trap cleanup EXIT
mkdir "$CG"
quota() { # quota QUOTA_US (-1: none)
	if [ "$CGP" = /sys/fs/cgroup/cpu ]; then
		echo 100000 >"$CG/cpu.cfs_period_us"
		echo "$1" >"$CG/cpu.cfs_quota_us"
	elif [ "$1" = -1 ]; then
		echo "max 100000" >"$CG/cpu.max"
	else
		echo "$1 100000" >"$CG/cpu.max"
	fi
}
ip netns add $A
ip netns add $B
ip link add va$$ netns $A type veth peer name vb$$ netns $B
for ns in $A $B; do
	ip -n $ns link set lo up
	ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip -n $A link set va$$ up
ip -n $B link set vb$$ up
M=http://127.0.0.1:9111/metrics
metric() { awk -v k="$1" '$1 == k {s += $2} index($1, k "{") == 1 {s += $2} END {print s + 0}'; }

# one NAME QUOTA: one replay into a probe confined to QUOTA (-1: none).
one() {
	name=$1
	quota "$2"
	db=$WORK/$name.db
	rm -f "$db"
	: >"$WORK/coll.log"
	ip netns exec $B "$WORK/mira-collector" --listen tcp://127.0.0.1:4739 --db "$db" 2>"$WORK/coll.log" &
	cpid=$!
	until grep -q 'msg=listening' "$WORK/coll.log"; do sleep 0.02; done
	: >"$WORK/$name.log"
	sh -c 'echo $$ >"$0" && exec "$@"' "$CG/cgroup.procs" ip netns exec $B "$WORK/mira-probe" -i vb$$ \
		--workers "$WORKERS" --symptoms "$SYMS" --export tcp://127.0.0.1:4739 --metrics 127.0.0.1:9111 \
		--snmp 127.0.0.1:9161 --log-level info 2>"$WORK/$name.log" &
	ppid=$!
	until grep -q 'capture started' "$WORK/$name.log"; do sleep 0.02; done
	: >"$WORK/$name.poll"
	(while :; do
		st=$(ip netns exec $B curl -s --max-time 5 $M | awk '/^mira_probe_regulation_state /{s=$2} /^mira_probe_regulation_sampling_interval /{i=$2} /^mira_probe_regulation_changes_total /{c=$2} END{print s, i, c}')
		mib=$(ip netns exec $B snmpget -v2c -c public -On -Oqv 127.0.0.1:9161 \
			1.3.6.1.4.1.32473.1.1.3.1.0 1.3.6.1.4.1.32473.1.1.3.2.0 1.3.6.1.4.1.32473.1.1.3.8.0 2>/dev/null | tr '\n' ' ')
		echo "metrics(state interval changes)=$st mib(state rate changes)=$mib" >>"$WORK/$name.poll"
		sleep 0.05
	done) &
	qpid=$!
	s=$(ip netns exec $A tcpreplay -i va$$ --topspeed "$PCAP" 2>&1 |
		awk '/Actual:/{n=$2} /Rated:/{for(i=1;i<=NF;i++) if($i ~ /pps/) r=$(i-1)} END{print n, r}')
	sent=${s% *}
	# wait until the probe has read its rings: taken in + ring drops = sent
	i=0
	while :; do
		m=$(ip netns exec $B curl -s --max-time 5 $M)
		got=$(($(echo "$m" | metric mira_probe_packets_total) + $(echo "$m" | metric mira_probe_source_drops_total)))
		[ "$got" -lt "$sent" ] || break
		i=$((i + 1)); [ $i -lt 600 ] || { echo "probe took in $got of $sent" >&2; break; }
		sleep 0.05
	done
	kill $qpid; wait $qpid 2>/dev/null || true
	kill -TERM $ppid; wait $ppid || true
	kill -TERM $cpid; wait $cpid || true
	cpid=
	"$WORK/mira" report --db "$db" --format json --limit 1 >"$WORK/$name.json"
	end=$(grep 'capture ended' "$WORK/$name.log" | sed 's/^.*msg="capture ended" //')
	python3 - "$WORK/$name.json" "$name" "$s" "$end" "$WORK/$name.poll" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))['summary']
name, (sent, rate), end = sys.argv[2], sys.argv[3].split(), dict(kv.split('=', 1) for kv in sys.argv[4].split())
sent = int(sent)
ring, q = s['loss']['ring'], s['queue_loss_scaled']
est, lo, hi = s['estimated_packets'], s['estimated_packets_low'], s['estimated_packets_high']
took = int(end['packets'])
acc = est + ring + q
# states seen, highest interval/rate and changes in /metrics and SNMP (1
# normal, 2 sampling, 3 shedding: /metrics numbers them as the MIB does)
hm, hs = [set(), 0, 0], [set(), 0, 0]
for l in open(sys.argv[5]):
    a, b = l.split('mib(state rate changes)=')
    for h, part in ((hm, a.split('=')[1]), (hs, b)):
        for i, x in enumerate(part.split()[:3]):
            if i == 0:
                h[0].add(int(float(x)))
            else:
                h[i] = max(h[i], int(float(x)))
mx = f"/metrics states {sorted(hm[0])}, 1 in {hm[1]}, {hm[2]} changes; SNMP states {sorted(hs[0])}, rate {hs[1]}, {hs[2]} changes"
print(f"{name}: sent {sent} at {rate} pps; took in {took}, ring drops {end['ring_drops']}, queue drops {end['queue_drops']} "
      f"(of the wire {q}), regulated out {end['regulated_out']}, changes {end['regulation_changes']} (report {s['regulation_changes']}); "
      f"metered {s['packets']}, estimate {est} [{lo}, {hi}] ({100*(est-took+q)/max(took-q,1):+.2f} % of taken in, inside {lo <= took-q <= hi}); "
      f"estimate+ring+queue {acc} ({100*(acc-sent)/sent:+.2f} % of sent); highest seen: {mx}")
PY
}

for round in $(seq "$ROUNDS"); do
	one "clean.$round" -1
	for q in $QUOTAS; do one "q$q.$round" "$q"; done
done
echo "files in $WORK"

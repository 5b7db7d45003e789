#!/bin/sh
# Overload check (issue 12, "How it is checked"): the large synthetic
# trace metered once at file speed (the clean run), then replayed with
# --speed SPEED by a probe pinned to one core and scanning 1000 patterns,
# so that it cannot keep up and regulates itself. Both export to
# mira-collector over TCP. Prints the clean run's packets, the overloaded
# run's estimate with its 95 % interval, the error, whether the truth is
# inside the interval, the loss ledger, the regulation changes in the
# report and what /metrics and SNMP (snmpget of MIRA-PROBE-MIB) showed
# while the probe regulated.
#
#   tools/bench/overload.sh [SPEED] [PCAP]
#
# CORE (default 1) is the core the probe is pinned to; WORK keeps the
# files (the trace is synthesised there when PCAP is not given).
set -eu
cd "$(dirname "$0")/../.."
SPEED=${1:-30}
WORK=${WORK:-$(mktemp -d /tmp/mira-overload.XXXXXX)}
CORE=${CORE:-1}
go build -o "$WORK/" ./cmd/mira ./cmd/mira-probe ./cmd/mira-collector
go run ./tools/hsbench/gomatch -gen "$WORK" -size 4096
SYMS=$WORK/symptoms-1000.yaml
PCAP=${2:-$WORK/large.pcap}
if [ ! -f "$PCAP" ]; then
	"$WORK/mira" synth --large -o "$PCAP"
fi
port=$((20000 + $$ % 20000))
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# collect DB: runs mira-collector on DB until the probe given after it ends.
collect() {
	db=$1
	shift
	rm -f "$db"
	"$WORK/mira-collector" --listen "tcp://127.0.0.1:$port" --db "$db" 2>"$db.log" &
	cpid=$!
	i=0
	until grep -q 'msg=listening' "$db.log"; do
		i=$((i + 1)); [ $i -lt 500 ] || { cat "$db.log"; exit 1; }
		sleep 0.02
	done
	"$@"
	kill -TERM $cpid
	wait $cpid
}
json() { python3 -c "import json,sys; s=json.load(open('$1'))['summary']; print($2)"; }

echo "clean run (file speed, 1000 patterns) ..."
collect "$WORK/clean.db" taskset -c "$CORE" "$WORK/mira-probe" -r "$PCAP" --symptoms "$SYMS" \
	--export "tcp://127.0.0.1:$port" --log-level info 2>"$WORK/clean.log"
"$WORK/mira" report --db "$WORK/clean.db" --format json --limit 1 >"$WORK/clean.json"
TRUTH=$(json "$WORK/clean.json" "s['packets']")

mport=$(free)
sport=$(free)
poll() {
	: >"$WORK/poll.log"
	while kill -0 "$1" 2>/dev/null; do
		st=$(curl -s "http://127.0.0.1:$mport/metrics" | awk '/^mira_probe_regulation_state /{s=$2} /^mira_probe_regulation_sampling_interval /{i=$2} /^mira_probe_regulation_changes_total /{c=$2} END{print s, i, c}')
		mib=$(snmpget -v2c -c public -On -Oqv 127.0.0.1:"$sport" \
			1.3.6.1.4.1.32473.1.1.3.1.0 1.3.6.1.4.1.32473.1.1.3.2.0 1.3.6.1.4.1.32473.1.1.3.8.0 2>/dev/null | tr '\n' ' ')
		echo "metrics(state interval changes)=$st mib(state rate changes)=$mib" >>"$WORK/poll.log"
		sleep 0.1
	done
}
overload() {
	taskset -c "$CORE" "$WORK/mira-probe" -r "$PCAP" --speed "$SPEED" --symptoms "$SYMS" \
		--export "tcp://127.0.0.1:$port" --metrics "127.0.0.1:$mport" --snmp "127.0.0.1:$sport" \
		--log-level info 2>"$WORK/over.log" &
	ppid=$!
	poll $ppid &
	qpid=$!
	wait $ppid
	wait $qpid
}
echo "overloaded run (--speed $SPEED, one core) ..."
collect "$WORK/over.db" overload
"$WORK/mira" report --db "$WORK/over.db" --format json --limit 1 >"$WORK/over.json"
grep 'capture ended' "$WORK/over.log" | sed 's/^.*msg="capture ended" //'
python3 - "$WORK/over.json" "$TRUTH" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))['summary']
truth = int(sys.argv[2])
est, lo, hi = s['estimated_packets'], s['estimated_packets_low'], s['estimated_packets_high']
print(f"clean run: {truth} packets")
print(f"overloaded: {s['packets']} packets metered, estimate {est} [{lo}, {hi}] (95 %)")
print(f"error {100*(est-truth)/truth:+.2f} %, truth inside the interval: {lo <= truth <= hi}")
print(f"loss: {s['loss']}")
q, ring = s['queue_loss_scaled'], s['loss']['ring']
acc = est + q + ring
print(f"estimate + ring loss + queue loss as packets of the wire ({q}): {acc}, {100*(acc-truth)/truth:+.2f} % of the truth; "
      f"truth inside the interval so shifted: {lo + q + ring <= truth <= hi + q + ring}")
print(f"regulation_changes in the report: {s['regulation_changes']}")
EOF
echo "while regulating (/metrics, SNMP), distinct samples:"
sort -u "$WORK/poll.log" | grep -v '=  *mib' | head -20
echo "files in $WORK"

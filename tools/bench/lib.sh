# lib.sh: what the collector benchmarks share (collector.sh, cluster.sh,
# rollups.sh source it from the repository's root, with WORK set).
#
# build_stream [PCAP]: builds mira-probe, mira-collector, mira and
# ipfixreplay into $WORK, synthesises PCAP (default $WORK/large.pcap,
# `mira synth --large`) when absent, and turns it into an RFC 5655 file
# once (kept in $WORK/ipfix, made again when PCAP is newer); sets PCAP
# and IPFIX.
build_stream() {
	go build -o "$WORK/mira-probe" ./cmd/mira-probe
	go build -o "$WORK/mira-collector" ./cmd/mira-collector
	go build -o "$WORK/mira" ./cmd/mira
	go build -o "$WORK/ipfixreplay" ./tools/bench/ipfixreplay
	PCAP=${1:-$WORK/large.pcap}
	if [ ! -f "$PCAP" ]; then
		echo "synthesising $PCAP ..."
		"$WORK/mira" synth --large -o "$PCAP"
	fi
	if ! ls "$WORK"/ipfix/*.ipfix >/dev/null 2>&1 || [ "$PCAP" -nt "$WORK/ipfix" ]; then
		rm -rf "$WORK/ipfix" && mkdir -p "$WORK/ipfix"
		"$WORK/mira-probe" -r "$PCAP" --export "file://$WORK/ipfix" --log-level warn
	fi
	IPFIX=$(ls "$WORK"/ipfix/*.ipfix)
}

HZ=$(getconf CLK_TCK)
# cpu PID: utime+stime of PID in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the parenthesised command name).
cpu() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# secs T0 T1: clock ticks to seconds.
secs() { echo "$1 $2 $HZ" | awk '{printf "%.3f", ($2-$1)/$3}'; }
# udpline PORT: the /proc/net/udp line of the socket bound to PORT.
udpline() { awk -v p="$(printf ':%04X' "$1")" 'substr($2, length($2)-4) == p' /proc/net/udp; }
# rxq PORT: bytes waiting in the socket's receive queue.
rxq() { printf '%d\n' "0x$(udpline "$1" | awk '{split($5, q, ":"); print q[2]}')"; }
# drops PORT: datagrams the kernel dropped on the socket.
drops() { udpline "$1" | awk '{print $NF}'; }
# wait_bound PORT: until something binds UDP PORT (10 s at most).
wait_bound() {
	i=0
	while [ -z "$(udpline "$1")" ]; do
		i=$((i + 1)); [ $i -lt 500 ] || { echo "nothing bound udp port $1" >&2; exit 1; }
		sleep 0.02
	done
}
# wait_drained PORT: until the receiver has read everything queued.
wait_drained() { while [ "$(rxq "$1")" != 0 ]; do sleep 0.02; done; }

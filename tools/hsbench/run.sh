#!/bin/sh
# run.sh: MIRA's symptom matcher against vectorscan, side by side, on one
# core, on the same deterministic workload (tools/hsbench/gomatch -gen).
#
#   tools/hsbench/run.sh [WORKDIR] [ROUNDS]
#
# For each pattern set (100, 1000) and chunk size (1460, 200) it runs the C
# reference (hsbench, vectorscan block mode) and the Go matcher (gomatch,
# each chunk a fresh flow direction) alternately ROUNDS times (3 runs each),
# checks that both count the same matches, and prints the median throughput
# by wall clock and by thread CPU time, and the Go/vectorscan ratio. The CPU
# figure is the fair one on a shared machine. Then it checks cross-packet
# matching: Go streaming the corpus in small chunks must count what
# vectorscan counts on the whole corpus in one block.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-/tmp/mira-hsbench}
rounds=${2:-3}
cpu=${CPU:-1}
mkdir -p "$work"
gcc -O2 -Wall -o "$work/hsbench" "$here/hsbench.c" -lhs
(cd "$root" && go build -o "$work/gomatch" ./tools/hsbench/gomatch)
[ -f "$work/corpus.bin" ] || "$work/gomatch" -gen "$work" -size $((64 << 20))

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

printf '%-8s %-6s %10s %10s %10s %10s %8s %8s %s\n' patterns chunk hs_wall go_wall hs_cpu go_cpu ratio_w ratio_c matches
for n in 100 1000; do
	for chunk in 1460 200; do
		: >"$work/hs.out"
		: >"$work/go.out"
		r=0
		while [ $r -lt "$rounds" ]; do
			taskset -c "$cpu" "$work/hsbench" "$work/patterns-$n.txt" "$work/corpus.bin" "$chunk" 3 | tail -1 >>"$work/hs.out"
			taskset -c "$cpu" "$work/gomatch" -patterns "$work/patterns-$n.txt" -corpus "$work/corpus.bin" -chunk "$chunk" -runs 3 | tail -1 >>"$work/go.out"
			r=$((r + 1))
		done
		hm=$(field matches <"$work/hs.out" | sort -u)
		gm=$(field matches <"$work/go.out" | sort -u)
		if [ "$hm" != "$gm" ]; then
			echo "MISMATCH patterns=$n chunk=$chunk: vectorscan $hm matches, Go $gm" >&2
			exit 1
		fi
		hw=$(field mbps_median <"$work/hs.out" | median)
		gw=$(field mbps_median <"$work/go.out" | median)
		hc=$(field mbps_cpu_median <"$work/hs.out" | median)
		gc=$(field mbps_cpu_median <"$work/go.out" | median)
		printf '%-8s %-6s %10s %10s %10s %10s %7.0f%% %7.0f%% %s\n' "$n" "$chunk" "$hw" "$gw" "$hc" "$gc" \
			"$(echo "100*$gw/$hw" | bc -l)" "$(echo "100*$gc/$hc" | bc -l)" "$hm"
	done
done
# Cross-packet check: the whole corpus as one block in vectorscan must give
# the same count as the Go matcher fed the corpus as one stream of chunks.
for n in 100 1000; do
	want=$("$work/hsbench" "$work/patterns-$n.txt" "$work/corpus.bin" 0 1 | tail -1 | field matches)
	for chunk in 1460 200 7; do
		got=$("$work/gomatch" -stream -patterns "$work/patterns-$n.txt" -corpus "$work/corpus.bin" -chunk "$chunk" -runs 1 | tail -1 | field matches)
		if [ "$want" != "$got" ]; then
			echo "STREAM MISMATCH patterns=$n chunk=$chunk: vectorscan whole-corpus $want, Go streamed $got" >&2
			exit 1
		fi
	done
	echo "stream check patterns=$n: whole-corpus vectorscan $want matches = Go streamed in 1460/200/7-byte chunks"
done
echo "compile (ms): $(grep -h -o 'compile_ms=[0-9.]*' "$work/hs.out" | tail -1) (vectorscan, last set); Go: $(grep -h -o 'compile_ms=[0-9.]*' "$work/go.out" | tail -1)"

#!/bin/sh
# A/B collector-ingest benchmark: collector.sh on a base commit and on
# this checkout, alternating, so that both meet the same machine load.
#
#   BASE=<commit> [ROUNDS=2] [ROLLUPS=off|on] [WORK=dir] [CORE=1] tools/bench/collector-ab.sh [PCAP]
#
# The base is checked out into a temporary git worktree ($WORK/base-src,
# removed at the end); both sides replay the same RFC 5655 stream (made
# once in $WORK by collector.sh's build_stream, linked into the base's
# work directory). Each round prints collector.sh's lines for base, then
# for this checkout.
set -eu
cd "$(dirname "$0")/../.."
: "${BASE:?BASE=<commit> is required}"
ROUNDS=${ROUNDS:-2}
WORK=${WORK:-$(mktemp -d /tmp/mira-ab.XXXXXX)}
export CORE=${CORE:-1} ROLLUPS=${ROLLUPS:-off}
. tools/bench/lib.sh
build_stream "${1:-}"
src=$WORK/base-src
git worktree remove --force "$src" 2>/dev/null || true
git worktree add --detach "$src" "$BASE" >/dev/null
trap 'git worktree remove --force "$src"' EXIT
mkdir -p "$WORK/base"
ln -sfn "$WORK/ipfix" "$WORK/base/ipfix"
ln -sf "$PCAP" "$WORK/base/$(basename "$PCAP")"
for i in $(seq 1 "$ROUNDS"); do
	echo "== round $i: base $BASE"
	(cd "$src" && WORK=$WORK/base sh tools/bench/collector.sh "$WORK/base/$(basename "$PCAP")" | grep -E 'stored|ratio|whole life')
	echo "== round $i: $(git rev-parse --short HEAD)"
	WORK=$WORK sh tools/bench/collector.sh "$PCAP" | grep -E 'stored|ratio|whole life'
done

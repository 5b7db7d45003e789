#!/bin/sh
# Ranged report benchmark (issue 13 goal 4): `mira report --source auto`
# with --from/--to over a large store, where records lie across the
# bounds (and the bounds are inside minutes), at commit BASE and at the
# work tree, interleaved, pinned to core $CORE; then whether both
# answered the same usage table and summary.
#
#   BASE=1d1aa2b ROUNDS=2 tools/bench/rangedreport.sh [FROM] [TO]
#
# The store: $DB, else tools/bench/flowstore -n $N (default 10,000,000
# records over 24 h, starting 2026-12-01) made once in $WORK. FROM and TO
# default to a 6 h range inside minutes. Before composing (fb4cd06 to
# 1d1aa2b) auto read the records for such a range.
set -eu
cd "$(dirname "$0")/../.."
WORK=${WORK:-$(mktemp -d /tmp/mira-bench.XXXXXX)}
CORE=${CORE:-1}
ROUNDS=${ROUNDS:-2}
BASE=${BASE:-1d1aa2b}
N=${N:-10000000}
FROM=${1:-2026-12-01T03:17:20.5Z}
TO=${2:-2026-12-01T09:17:20.5Z}
go build -o "$WORK/mira-new" ./cmd/mira
rm -rf "$WORK/base" && mkdir -p "$WORK/base"
git archive "$BASE" | tar -x -C "$WORK/base"
(cd "$WORK/base" && go build -o "$WORK/mira-base" ./cmd/mira)
DB=${DB:-$WORK/flows.db}
if [ ! -e "$DB" ]; then
	go run ./tools/bench/flowstore -o "$DB" -n "$N" -span 24h
fi
args="--db $DB --from $FROM --to $TO --by aggregate,category --bucket 1h --format json --limit 1 --source auto"
r=0
while [ $r -lt "$ROUNDS" ]; do
	r=$((r + 1))
	for v in base new; do
		/usr/bin/time -f "$v %U user-s %S sys-s %e wall-s %M KB" -o "$WORK/time.$v" taskset -c "$CORE" "$WORK/mira-$v" report $args >"$WORK/out.$v.json"
		cat "$WORK/time.$v"
	done
done
python3 - "$WORK" <<'P'
import json, sys
w = sys.argv[1]
a, b = json.load(open(w + "/out.base.json")), json.load(open(w + "/out.new.json"))
ks = [k for k in a["summary"] if k not in ("rollup", "listed", "offset", "next_offset")]
print("base answered from:", "rollups" if a["summary"].get("rollup") else "records")
print("new answered from:", b["summary"].get("rollup"))
print("usage equal:", a["usage"] == b["usage"], "(%d rows); summary equal:" % len(a["usage"]),
      all(a["summary"].get(k) == b["summary"].get(k) for k in ks), "(%d biflows, %d records)" % (a["summary"]["biflows"], a["summary"]["flows"]))
P
echo "work dir: $WORK"

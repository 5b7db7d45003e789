#!/bin/sh
# Upgrade check of the collector's store, as a user meets it: a store
# written by mira-collector at OLD (default e771a21, schema 3: records in
# the bbolt file) is opened by this tree's binaries. Checks: this tree's
# mira reports on it equal OLD's byte for byte (report, report --by probe,
# flows, as JSON), before and after this tree's collector has opened it
# for writing; new records append (in segments) and read as the old ones
# do; retention by age and by size prunes old chunks and segments; OLD's
# binaries refuse the upgraded store with a clear error.
#
#   tools/storecheck/upgrade.sh [OLD]     (WORK=dir to keep files)
set -eu
cd "$(dirname "$0")/../.."
OLD=${1:-e771a21}
WORK=${WORK:-$(mktemp -d /tmp/mira-upgrade.XXXXXX)}
fail() { echo "FAIL: $*" >&2; exit 1; }
mkdir -p "$WORK/new" "$WORK/old"
go build -o "$WORK/new/" ./cmd/mira-collector ./cmd/mira ./cmd/mira-probe
rm -rf "$WORK/src" && mkdir -p "$WORK/src"
git archive "$OLD" | tar -x -C "$WORK/src"
(cd "$WORK/src" && go build -o "$WORK/old/" ./cmd/mira-collector ./cmd/mira)
PCAP=$WORK/s.pcap
[ -f "$PCAP" ] || "$WORK/new/mira" synth --flows 3000 --seed 7 -o "$PCAP" >/dev/null
PORT=${PORT:-$((23000 + $$ % 20000))}
DB=$WORK/u.db
rm -rf "$DB" "$DB.seg"

collect() { # BIN DOMAINS...: a collector from BIN stores a probe run per domain
	bin=$1; shift
	"$bin/mira-collector" --listen tcp://127.0.0.1:$PORT --db "$DB" --log-level warn 2>>"$WORK/collector.log" &
	cp=$!
	i=0
	while ! ss -ltn "sport = :$PORT" | grep -q LISTEN; do
		i=$((i + 1)); [ $i -lt 200 ] || fail "collector did not listen"; sleep 0.05
	done
	for d in "$@"; do
		"$WORK/new/mira-probe" -r "$PCAP" --domain $d --export tcp://127.0.0.1:$PORT --log-level error
	done
	kill -TERM $cp; wait $cp || fail "collector ($bin) failed: $(tail -3 "$WORK/collector.log")"
}
reports() { # BIN TAG
	"$1/mira" report --db "$DB" --format json >"$WORK/report.$2.json"
	"$1/mira" report --db "$DB" --by probe --format json >"$WORK/probe.$2.json"
	"$1/mira" flows --db "$DB" --format json >"$WORK/flows.$2.json"
}
same() { # TAG1 TAG2
	for r in report probe flows; do
		cmp -s "$WORK/$r.$1.json" "$WORK/$r.$2.json" || fail "$r: $1 and $2 differ"
	done
}

collect "$WORK/old" 1 2
reports "$WORK/old" old
reports "$WORK/new" new
same old new
for d in 1 2; do "$WORK/old/mira" flows --db "$DB" --domain $d --format json >"$WORK/flows.d$d.old.json"; done
echo "schema 3 store: this tree's reports equal $OLD's byte for byte"

collect "$WORK/new" 3
[ -n "$(ls "$DB.seg")" ] || fail "no segment after this tree's collector stored records"
"$WORK/old/mira" flows --db "$DB" --format json >/dev/null 2>"$WORK/old.err" && fail "$OLD's mira read the upgraded store"
grep -q "schema is newer" "$WORK/old.err" || fail "$OLD's mira: $(cat "$WORK/old.err")"
"$WORK/old/mira-collector" --listen tcp://127.0.0.1:$PORT --db "$DB" 2>"$WORK/old.err" && fail "$OLD's collector ran on the upgraded store"
grep -q "schema is newer" "$WORK/old.err" || fail "$OLD's collector: $(cat "$WORK/old.err")"
echo "$OLD refuses the upgraded store: $(grep -o 'database schema.*' "$WORK/old.err" | head -1)"
# The old records read as before; the new run (domain 3, in segments)
# reads as the same run in the old layout (domain 1).
"$WORK/new/mira" flows --db "$DB" --domain 1 --format csv | cut -d, -f1-16,18 >"$WORK/d1.csv"
"$WORK/new/mira" flows --db "$DB" --domain 3 --format csv | cut -d, -f1-16,18 >"$WORK/d3.csv"
cmp -s "$WORK/d1.csv" "$WORK/d3.csv" || fail "records in segments read differently from the same records in the bbolt file"
for d in 1 2; do
	"$WORK/new/mira" flows --db "$DB" --domain $d --format json >"$WORK/flows.d$d.new.json"
	cmp -s "$WORK/flows.d$d.old.json" "$WORK/flows.d$d.new.json" || fail "domain $d: flows after the upgrade differ from $OLD's before"
done
n=$(wc -l <"$WORK/d1.csv")
echo "upgraded: old records read as $OLD read them (byte for byte), a new run appended in segments reads the same ($((n - 1)) records)"

# Retention prunes old chunks (bbolt) and segments: by size, then by age.
cp "$DB" "$WORK/keep.db" && rm -rf "$WORK/keep.db.seg" && cp -r "$DB.seg" "$WORK/keep.db.seg"
total=$(stat -c %s "$DB.seg"/*.seg | awk '{n+=$1} END{print n}')
printf 'retention:\n  max_size: %s\n' $((total * 2)) >"$WORK/size.yaml"
"$WORK/new/mira-collector" --config "$WORK/size.yaml" --listen tcp://127.0.0.1:$PORT --db "$DB" --log-level info 2>"$WORK/ret.log" &
cp=$!
i=0
until grep -q "retention: pruned" "$WORK/ret.log"; do
	i=$((i + 1)); [ $i -lt 200 ] || fail "no retention by size: $(tail -3 "$WORK/ret.log")"; sleep 0.05
done
kill -TERM $cp; wait $cp
"$WORK/new/mira" flows --db "$DB" --format csv | awk -F, 'NR > 1 {n[$17]++} END {for (d in n) print d, n[d]}' | sort -n >"$WORK/counts"
[ "$(awk '$1 == 3 {print $2}' "$WORK/counts")" = $((n - 1)) ] || fail "retention by size pruned the newest records: $(cat "$WORK/counts")"
[ "$(awk '$1 != 3 {s += $2} END {print s + 0}' "$WORK/counts")" -lt $((2 * (n - 1))) ] || fail "retention by size pruned no old chunk: $(cat "$WORK/counts")"
echo "retention by size: old chunks pruned first ($(tr '\n' ' ' <"$WORK/counts"))"
printf 'retention:\n  max_age: 24h\n' >"$WORK/age.yaml"
"$WORK/new/mira-collector" --config "$WORK/age.yaml" --listen tcp://127.0.0.1:$PORT --db "$DB" --log-level info 2>"$WORK/ret.log" &
cp=$!
i=0
until grep -q "retention: pruned" "$WORK/ret.log"; do
	i=$((i + 1)); [ $i -lt 200 ] || fail "no retention by age: $(tail -3 "$WORK/ret.log")"; sleep 0.05
done
kill -TERM $cp; wait $cp
left=$("$WORK/new/mira" flows --db "$DB" --format json --limit 1 | awk -F': *' '/"flows": [0-9]/{gsub(/,/, "", $2); print $2; exit}')
[ "$left" = 0 ] || fail "retention by age (the capture is older than 24 h) left $left records"
[ -z "$(ls "$DB.seg")" ] || fail "retention by age left segment files: $(ls "$DB.seg")"
echo "retention by age: every record pruned, no segment file left"
echo ok

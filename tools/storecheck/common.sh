# Sourced by the storecheck scripts: builds the binaries into $WORK/bin
# (BIN) and makes the shared input once: a 3000-flow synthetic capture
# ($WORK/s.pcap, PCAP) exported by mira-probe as IPFIX files in
# $WORK/ipfix. Needs WORK set and the repository root as the directory.
BIN=$WORK/bin
mkdir -p "$BIN"
go build -o "$BIN/" ./cmd/mira-collector ./cmd/mira ./cmd/mira-probe ./tools/bench/ipfixreplay
# COLLECTOR=path checks another mira-collector build (an older commit's).
[ -z "${COLLECTOR:-}" ] || cp "$COLLECTOR" "$BIN/mira-collector"
PCAP=$WORK/s.pcap
[ -f "$PCAP" ] || "$BIN/mira" synth --flows 3000 --seed 7 -o "$PCAP" >/dev/null
if ! ls "$WORK"/ipfix/*.ipfix >/dev/null 2>&1; then
	mkdir -p "$WORK/ipfix"
	"$BIN/mira-probe" -r "$PCAP" --export "file://$WORK/ipfix" --log-level warn
fi

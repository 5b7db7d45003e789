// Package e2e holds MIRA's end-to-end acceptance tests. They build the
// real binaries (mira, mira-probe, mira-collector) into a temporary
// directory and run them against the real peer programs (nfcapd and
// nfdump, ipfixDump, tshark, tcpdump) on real captures shipped in
// testdata/corpus and on synthetic traces whose ground truth is known.
//
// The package has no non-test code. Tests skip when a peer program or a
// privilege (FUSE, packet sockets) is missing, and fail instead under
// MIRA_REQUIRE_PEERS=1 (see tools/peertest). They synchronise on observable state only: a listener
// log line, a socket's receive queue in /proc/net/udp, a counter on
// /metrics, a process exit, the packet count of a capture file.
//
// Hazard: bbolt locks the store file, so `mira flows` and `mira report`
// read a mira-collector store only after the collector has exited.
package e2e

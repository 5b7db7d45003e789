// Package collector is MIRA's IPFIX collecting process: UDP and TCP
// listeners and byte-stream (RFC 5655 file) readers that keep template
// and sequence state per transport session and hand decoded flow records
// to a Consumer.
//
// Sessions: a UDP session is one exporter address:port (idle sessions are
// forgotten after Config.UDPSessionTimeout); a TCP session is one
// connection; ServeStream is one session. Template state is per session
// and observation domain.
//
// UDP: one goroutine per socket reads datagrams in batches (recvmmsg on
// Linux) and hands them to a decoding goroutine through a bounded ring of
// buffers, so decoding never holds up the socket. The receive buffer is
// Config.ReadBuffer (SO_RCVBUFFORCE when net.core.rmem_max is lower and
// the process has CAP_NET_ADMIN); datagrams the kernel drops when it is
// full are counted in Stats.SocketDrops (SO_MEMINFO). On Linux the
// reader drains the socket and sleeps between looks as long as the
// buffer's fill rate allows (at most 100 ms), and waits in Go's poller
// once the socket has been empty for 200 ms (udp_linux.go).
//
// State is bounded (Config limits, collector.yaml "limits"): templates
// and observation-domain state per session and templates in all, least
// recently used evicted first; UDP exporters with state, least recently
// active evicted first; TCP/TLS connections served at once (more are
// closed and counted); UDP templates not refreshed within the template
// lifetime (default 30 minutes, three times the 10-minute refresh common
// among exporters; RFC 7011 §8.4) expire. Evictions are counted in Stats
// (mira_collector_evicted_total{kind}, the report summary's "Collector
// evictions"). Under a flood from spoofed sources an exporter keeps its
// state while it stays among the most recently active ones.
//
// Implausible records (see package ipfix: counts beyond 2^40 packets,
// more octets than packets × 65535, times outside the window that the
// message's export time allows) are dropped and counted in
// Stats.Malformed by reason ("implausible-count", "implausible-octets",
// "implausible-time"), which mira-collector shows in /metrics and stores
// for the report summary.
//
// Hazards: Consumer.Consume is called serially for one session but
// concurrently for different sessions (each TCP connection has its own
// goroutine). The recs slice and the records' Symptoms slices are reused
// after Consume returns; copy what you keep. Cancelling the context of
// ListenUDP/ListenTCP stops them asynchronously: call Wait before
// treating the Consumer's input as complete (for example before a final
// commit). A Consumer that implements StreamConsumer learns when a TCP
// or TLS connection ends, before the collector closes it (mira-collector
// commits its store there). A Consumer that implements BatchConsumer
// gets each message's records in a Batch of its own instead (a store's
// record encoding, filled while the message is decoded:
// ipfix.Session.DecodeEach), with the same serial-per-session calls; a
// record handed to Batch.Add, its Symptoms and App strings are valid only
// during that call (the strings alias the datagram). mira-collector's
// server takes them so unless it forwards records.
package collector

// Package afpacket captures live traffic from a Linux network interface
// through an AF_PACKET socket with a TPACKET_V3 memory-mapped receive
// ring, without cgo.
//
// Source implements drivers.Source. Next returns frames that alias the
// kernel ring: a frame is valid only until the next call to Next or
// Close, after which the kernel may overwrite it. Callers that keep bytes
// must copy them. Next is not safe for concurrent use, but Close and Stats
// may be called from any goroutine: Close wakes a Next blocked in poll,
// which then returns ErrClosed, so a reader loop ends cleanly.
//
// The socket asks for promiscuous mode as a PACKET_MR_PROMISC membership,
// which the kernel counts and drops when the socket closes, so a crashed
// probe leaves no interface promiscuous. The snaplen is applied in the
// kernel by a classic BPF program, which on a loopback interface also
// refuses the outgoing copy of each packet (the kernel shows a packet
// socket every loopback packet twice). NextBatch hands over several
// frames of one ring block at once, valid together until the next call;
// OpenFanout opens one socket per worker in a kernel-chosen fanout
// group; Backlog says how full the ring is. Kernel drop counters
// (PACKET_STATISTICS) reset on every read; Source accumulates them.
//
// Opening a Source needs CAP_NET_RAW (and CAP_NET_ADMIN for fanout on
// some kernels); without it Open returns an error matching
// os.ErrPermission. On other systems Open returns an error wrapping
// drivers.ErrUnsupported.
//
// The socket belongs to the network namespace of the thread that calls
// Open; package vethtest uses this to capture inside a test namespace.
package afpacket

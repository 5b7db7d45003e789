//go:build !linux

package exporter

// peerQueue is Linux only (NETLINK_SOCK_DIAG): elsewhere UDP export is
// paced by rate alone.
type peerQueue struct{}

func (t *udpTransport) receiverQueue() queueReader { return nil }

func (t *udpTransport) closePeer() {}

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
// Hazards: Consumer.Consume is called serially for one session but
// concurrently for different sessions (each TCP connection has its own
// goroutine). The recs slice and the records' Symptoms slices are reused
// after Consume returns; copy what you keep.
package collector

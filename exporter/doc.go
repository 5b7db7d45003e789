// Package exporter is MIRA's IPFIX exporting process: it packs flow
// records into IPFIX messages with the ipfix package's flow templates and
// sends them over a Transport (UDP, TCP, RFC 5655 files, or any
// io.Writer byte stream).
//
// Templates go out before the first data record that needs them on every
// transport session (each TCP connection, each file), and over UDP again
// after Config.TemplateRefresh or Config.TemplateRefreshMessages.
// Sequence numbers count data records (options records included) per
// observation domain (RFC 7011 §3.1). UDP messages stay within the path
// MTU that the kernel reports for the collector's route (IP_MTU / IPV6_MTU
// of the connected socket, less IP and UDP headers: 1472 bytes on an
// Ethernet path, 65,507 on loopback) or within Config.MTU when set; a set
// is never split across messages.
//
// Export sends every record before it returns (each observation domain
// fills its own message; nothing is held back between calls), so call it
// with batches, not single records. Records are encoded with the flow
// templates of the ipfix package: one template per field set (IPv4/IPv6,
// ICMP, tunnel outer family, symptoms, known direction, ATM circuit),
// built and sent on first use.
//
// An Exporter is safe for concurrent use; calls are serialised. Transport
// is the seam for a spooling transport (bbolt) to be added later: a
// Transport reports its session number from Begin, and the Exporter sends
// templates again whenever it changes.
package exporter

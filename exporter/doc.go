// Package exporter is MIRA's IPFIX exporting process: it packs flow
// records into IPFIX messages with the ipfix package's flow templates and
// sends them over a Transport (UDP, TCP, RFC 5655 files, or any
// io.Writer byte stream).
//
// Templates go out before the first data record that needs them on every
// transport session (each TCP connection, each file), and over UDP again
// after Config.TemplateRefresh or Config.TemplateRefreshMessages.
// Sequence numbers count data records (options records included) per
// observation domain (RFC 7011 §3.1). UDP messages stay within
// Config.MTU (DefaultUDPMessageSize, 1400 bytes, when not set) and within
// the path MTU that the kernel reports for the collector's route (IP_MTU
// / IPV6_MTU of the connected socket, less IP and UDP headers: 1472 bytes
// on an Ethernet path, 65,507 on loopback); a set is never split across
// messages. UDP messages are paced (Config.UDPRate): to a collector on
// this host by its socket's receive queue, to one elsewhere by a token
// bucket (DefaultUDPRate), so that a burst of records does not overflow
// the collector's socket buffer.
//
// Export sends every record before it returns (each observation domain
// fills its own message; nothing is held back between calls), so call it
// with batches, not single records. Records are encoded with the flow
// templates of the ipfix package: one template per field set (IPv4/IPv6,
// ICMP, tunnel outer family, symptoms, known direction, ATM circuit),
// built and sent on first use.
//
// An Exporter is safe for concurrent use; calls are serialised. A
// Transport reports its session number from Begin, and the Exporter sends
// templates again whenever it changes.
//
// Spool (Config.Spool, probe.yaml export[].spool) is a Transport in front
// of TCP or TLS that keeps every message in a bbolt file until its
// delivery is known, and replays, after each reconnect and after a
// restart over the same directory, everything not known delivered: first
// a message with the templates it has seen and a spool-instance options
// record (ipfix.SpoolOptionsTemplate), then the messages in order, under
// their original sequence numbers (the spool keeps each domain's next
// number, and a new Exporter resumes from it). Delivery is known when
// the collector answers the end of the stream with collector.StoredAck
// (MIRA's collector commits first), or when the connection outlived a
// message by SpoolConfig.Window after the collector's host acknowledged
// its bytes. IPFIX has no acknowledgement, so replays resend records the
// collector may have; MIRA's collector drops those by (exporter, domain,
// instance, sequence number). Hazards: a message is sent only once saved
// (at most 100 ms or 1 MiB after Export), so a killed process loses what
// it had not saved yet, as it loses its flow table. A full spool first
// forgets the oldest messages already sent on the live connection
// (counted dropped only if that connection fails before outliving them
// by Window: a collector counts no sequence gap at a spool's replay),
// sends what waits if connected, and only then drops the oldest
// messages, counting their records (Stats.SpoolDropped). What it counts
// is what may be lost: records sent on a connection that failed may
// have been stored by the collector before it went away.
//
// Config.Ledger sends the probe's loss ledger (ipfix.LedgerOptionsTemplate)
// with the options, periodically on streams, and after the last data.
package exporter

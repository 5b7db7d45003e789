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
// Config.MTU; a set is never split across messages.
//
// An Exporter is safe for concurrent use; calls are serialised. Transport
// is the seam for a spooling transport (bbolt) to be added later.
package exporter

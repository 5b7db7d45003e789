// Package pcapfile reads and writes packet capture files.
//
// Reader implements drivers.Source over classic pcap (microsecond and
// nanosecond magic, either byte order) and pcapng (several sections, every
// interface description block with its own link type, snaplen and
// timestamp resolution; enhanced, simple and obsolete packet blocks).
// Gzip-compressed input is recognised by its magic bytes, whatever the
// file is called. Writer writes classic little-endian pcap.
//
// Uncompressed classic pcap files opened with Open are read from a
// read-only mapping of the file; Next prefetches the mapping a few KiB
// ahead of the record it returns (prefetch_amd64.s), since the hardware
// prefetcher stops at each page of the mapping.
//
// Hazard: the slice returned by Reader.Next aliases the reader's buffer and
// is valid only until the next call to Next or Close. Callers that keep
// packet bytes must copy them. Neither Reader nor Writer is safe for
// concurrent use.
//
// Records whose captured length exceeds 256 KiB, or the interface snaplen
// plus a small slack, are rejected with an error naming the file and byte
// offset rather than allocated. A final record cut short by the end of the
// file yields an error wrapping io.ErrUnexpectedEOF and counts in
// Stats.Errors.
//
// Records are delivered as stored: a SunATM record keeps its 4-byte
// pseudo-header (tshark does not count it in frame.len). LINKTYPE 100
// (ATM_RFC1483) is reported as drivers.LinkATMRFC1483 (11). A classic pcap
// timestamp whose fraction is out of range (1e6 µs or more, 1e9 ns or
// more) is taken as seconds plus fraction, as tcpdump prints it.
// CaptureInfo.Interface indexes Interfaces(), which numbers pcapng
// interfaces across sections (tshark restarts at 0 in each section).
// Stats().Octets sums wire lengths; every record not delivered is counted
// by reason in ErrorCounts, whose total is Stats().Errors.
//
// For pcapng, an interface whose link type MIRA cannot decode is reported
// when the first packet of that interface arrives, not at its interface
// description block, so files mixing supported and unsupported interfaces
// can be read until the first unsupported packet.
package pcapfile

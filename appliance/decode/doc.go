// Package decode parses captured frames from the link layer down to the
// transport header of the innermost IP packet, decapsulating tunnels, so the
// flow meter can key each packet on its innermost 5-tuple.
//
// Link types: Ethernet (Ethernet II and 802.3 LLC/SNAP), Linux SLL and SLL2,
// RAW/IPV4/IPV6, NULL and LOOP, PPP and PPP_HDLC (also Cisco HDLC, link
// type 104), NFLOG (239), ATM RFC 1483 (LLC/SNAP routed and bridged) and
// SunATM (VPI/VCI from the pseudo-header). Below them: 802.1Q/802.1ad/QinQ
// tags, VN-Tag, FabricPath, PBB, Cisco MetaData, NSH (RFC 8300), MPLS
// (with pseudowire Ethernet, control word optional), PPPoE sessions; IPv4
// with options and AH, IPv6 with extension headers; TCP, UDP, UDP-Lite,
// DCCP, SCTP, ICMP and ICMPv6. ESP and other protocols end the walk with
// ports 0.
//
// Tunnels are decapsulated to the innermost IP header (at most
// Config.MaxDepth deep): IPv4/IPv6 in IPv4/IPv6, GRE (version 0 with IP,
// MPLS, Ethernet, PPP, Cisco MetaData, Aruba 802.11, WCCP and ERSPAN
// I/II/III payloads; version 1 PPTP with PPP), VXLAN, Geneve, GTP-U,
// Teredo and VXLAN-GPE (with IP, Ethernet, NSH or MPLS; reported as
// flow.TunnelVXLAN). VXLAN and Geneve are matched on the UDP destination
// port, or on the source port when the destination names no tunnel, as
// Wireshark does; VXLAN-GPE on either port, last. Packet.Tunnel names the
// outermost tunnel and TunnelSrc/TunnelDst its IP endpoints.
//
// An IPv6 payload length of 0 means "the rest of the frame" only before a
// TCP header (BIG TCP, GSO) or a hop-by-hop header (jumbogram); before
// anything else it means an empty payload, the rest being link padding.
//
// A Decoder is owned by one worker goroutine and is not safe for concurrent
// use, except for Counters, which may be called from any goroutine. Decode
// allocates nothing per packet.
//
// Hazards:
//   - Packet.Payload aliases the frame passed to Decode; it is valid only as
//     long as that frame is (for ring and file sources, until the source's
//     next call to Next).
//   - A *Error returned by Decode belongs to the Decoder and is overwritten by
//     the next call to Decode; copy it to keep it.
//   - Tunnel payloads that cannot be decoded (malformed, truncated by the
//     snap length, or not IP) do not fail the packet: it is returned as the
//     flow of the deepest IP header that did decode, and the event is
//     counted (bad-tunnel, tunnel-non-ip).
//   - Later IP fragments take their ports (and, when the first fragment was
//     tunnelled, the whole inner identity) from a small bounded table filled
//     by first fragments; a later fragment seen before its first fragment
//     keeps ports 0 and is counted as fragment-without-first.
package decode

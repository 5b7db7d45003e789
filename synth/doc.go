// Package synth generates realistic, deterministic packet traffic with
// ground truth: the sample capture behind `mira analyze` (Default), the
// benchmark trace (Large), the same shape with the application mix of
// today's links (Realistic: most bytes TLS) and `mira synth`.
//
// Every packet is built byte by byte: Ethernet (optionally 802.1Q tagged),
// IPv4 or IPv6, optionally tunnelled (6in4, IPIP, GRE, VXLAN), TCP with a
// handshake, consistent sequence and acknowledgement numbers and a FIN or
// RST teardown, UDP (a few datagrams IPv4-fragmented) or ICMP echo, all
// checksums correct. Application payloads follow their protocols (SMTP,
// HTTP with MP3/MP4/PE bodies, FTP control and data, DNS, TLS, SSH,
// BitTorrent and its DHT, eDonkey, Gnutella, a Quake-3 style game, IRC) or
// are pure random bytes, the control group that must raise no symptom.
//
// Generation streams: sessions are planned lazily when their start time
// comes and merged by next packet time through a heap, so memory grows with
// the number of concurrently active sessions, not with the trace. Only the
// Truth (one entry per unidirectional flow) grows with the trace.
//
// Use: WritePcap(Default(), w) is the built-in sample of `mira analyze`;
// `mira synth --seed N --flows N --large` maps to Config.Seed, Config.Flows
// and Large(); --payload-mix realistic to Config.WithPayloadMix. Truth.WriteJSON writes the ground truth.
//
// Ground truth counts IP octets as carried on the link (the outermost IP
// header's total length; Ethernet padding excluded) and the planted symptom
// markers listed by Markers. A marker is planted on purpose; random filler
// may, with probability about 2^-32 per byte and marker, contain a marker by
// chance, which the truth does not count.
//
// Hazard: the byte slice handed to PacketWriter.WritePacket is reused for
// the next packet; writers that keep it must copy it.
package synth

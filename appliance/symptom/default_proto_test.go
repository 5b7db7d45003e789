package symptom

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
)

// protoCases has payloads for the protocol symptoms (QUIC, VPN, REMOTE,
// DATABASE, NETMGMT and the protocol parts of VOIP, GAMES and P2P), each
// one whole first packet of a flow direction, built after the protocols'
// specifications or copied from the captures in ../shared/corpus (named).
func protoCases(noise func(int) []byte) map[string][][]byte {
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			panic(err)
		}
		return b
	}
	pad := func(b []byte, n int) []byte { return append(b, noise(n-len(b))...) }
	be16 := func(b []byte, at, v int) []byte { binary.BigEndian.PutUint16(b[at:], uint16(v)); return b }
	be32 := func(b []byte, at, v int) []byte { binary.BigEndian.PutUint32(b[at:], uint32(v)); return b }

	// SNMP v2c GetRequest (arkime/SNMPv2c_get_requests.pcap's first).
	snmp := unhex("3027020101040b5b52305f4340637469215da11502042b133f850201000201003007300506010105")
	snmp = append(snmp, 0x00)
	// IKEv2 IKE_SA_INIT: SPIs, next payload SA, version 2.0, exchange 34.
	ike := pad(unhex("e5bc67550fd4d3ea 0000000000000000 21 20 22 08 00000000 00000000"), 240)
	ike = be32(ike, 24, len(ike))
	ipfix := pad(unhex("000a0000 594ac59d 00000001 00000000 0002 0014"), 36)
	ipfix = be16(ipfix, 2, len(ipfix))
	tds := be16(pad(unhex("12 01 0000 0000 00 00"), 52), 2, 52)
	tns := be16(pad(unhex("0000 0000 01 00 0000"), 58), 0, 58)
	mongo := pad(unhex("00000000 98366e4d 00000000 d4070000 00000000"), 80)
	binary.LittleEndian.PutUint32(mongo, uint32(len(mongo)))
	mysql := append(unhex("00 00 00 00 0a"), "8.0.36\x00"...)
	mysql = pad(mysql, 78)
	mysql[0] = byte(len(mysql) - 4)
	return map[string][][]byte{
		"QUIC": {
			// IETF QUIC v1 client Initial (arkime/quicietf.pcap)
			pad(unhex("c700000001083233ff7a63cd9d380037004f4b86abfb112e"), 1200),
			// QUIC v2 (ndpi/quic-v2.pcapng)
			pad(unhex("d66b3343cf080726272642fc2eb20811fffdea452422b8"), 1232),
			// Google QUIC Q043 (arkime/quic43.pcap)
			pad(unhex("0da4b104dcf2fe28fa51303433"), 1350),
		},
		"VPN": {
			// OpenVPN hard resets without and with tls-auth
			// (arkime/openvpn_synthetic.pcap)
			unhex("38434c49454e5449440000000000"),
			unhex("4053455256455249440100000000434c49454e54494400000000"),
			unhex("38434c49454e5449448c2fc459efe6de34116f6e12614b322fed966f42 00000001 65000000 00 00000000"),
			// the same over TCP, behind its length
			unhex("002a 38434c49454e5449448c2fc459efe6de34116f6e12614b322fed966f42 00000001 65000000 00 00000000"),
			append(pad(unhex("01000000"), 132), make([]byte, 16)...),
			ike,
			append(unhex("00000000"), ike...),
			pad(unhex("009c00011a2b3c4d0001000001000000"), 156),
		},
		"REMOTE": {
			unhex("0300001 30ee00000000000010008000300 0000"),
			[]byte("RFB 003.008\n"),
			unhex("fffd03fffb18fffb1ffffb20fffb21fffb22fffb27fffd05fffb23"),
			[]byte("\x03\x00\x00\x2b\x26\xe0\x00\x00\x00\x00\x00Cookie: mstshash=administr\r\n"),
		},
		"DATABASE": {
			pad(unhex("00000029 00030000"), 41),
			unhex("00000008 04d2162f"),
			unhex("52000000 08 00000000"),
			mysql, tds, tns, mongo,
			[]byte("*1\r\n$4\r\nPING\r\n"),
		},
		"NETMGMT": {
			snmp,
			pad(unhex("23 02 06 e9 00000000 00000000"), 48),
			[]byte("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"),
			[]byte("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 - BOM'su root' failed"),
			ipfix,
			pad(unhex("00000005 00000001 ac152311 00000001"), 152),
			pad(unhex("ffffffffffffffffffffffffffffffff 001d 01 04"), 29),
		},
	}
}

// protoExtra are further cases for symptoms that existed before the
// protocol ones.
func protoExtra(noise func(int) []byte) map[string][][]byte {
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			panic(err)
		}
		return b
	}
	return map[string][][]byte{
		"VOIP": {
			append([]byte("TS3INIT1\x00\x65\x00\x00\x88"), noise(16)...),
			// IAX2 NEW (ndpi/iax.pcap)
			unhex("8004000000000001000006010b020002010c"),
			// SRTCP receiver report (ndpi/lru_ipv6_caches.pcapng)
			unhex("80c90001734e7b28800000051150ddd7bafeb9cbd7ce"),
			// RTCP sender report and source description
			append(append(unhex("80c80006"), noise(24)...), append(unhex("81ca0002"), noise(8)...)...),
			// RTP over TCP, RFC 4571 framing: one G.711 A-law packet
			// (ndpi/rtp.pcapng), and two packets in one segment
			append(unhex("00ac 8088c6236448eca900000000"), noise(160)...),
			append(append(unhex("001c 8000 0001 00000010 12345678"), noise(16)...), append(unhex("0010 8000 0002 00000020 12345678"), noise(4)...)...),
			// H.225 SETUP in TPKT
			append(unhex("0300001a 08 02 0001 05"), noise(17)...),
		},
		"RAKNET": {
			// a frame set with one unreliable frame (ndpi/raknet.pcap)
			unhex("8402000000008803000000000015e95e000000130c201546"),
			// acknowledgements of one number and of a range (ndpi/raknet.pcap)
			unhex("c0000100010000020000"),
			unhex("c00002 01 050000 00 060000 090000"),
			// two frames, reliable ordered and split
			append(unhex("8c 010000 60 0010 000000 000000 00 0aa0"), unhex("70 0018 010000 010000 00 00000002 0001 00000000 fe0102")...),
		},
		"GAMES": {
			append(unhex("32ab98640256"), noise(40)...),
			// Wild Rift client hello (ndpi/lol_wild_rift_udp.pcap: 69 bytes)
			append(unhex("040000002113e1d5fce112be33116bd11019c8bc08ac0e33"), noise(45)...),
			append(unhex("0102c8410000000100010000001e0004000441304231"), noise(0)...),
			// Among Us hello (ndpi/among_us.pcap)
			unhex("0800010080d9020306414141414141"),
			// Riot Games server datagram (ndpi/riotgames.pcap)
			unhex("7232420400000000ab597f811fcc00876bbc000016e37c4014000000aaaaaaaabbbbbbbb"),
			// Riot Games client connect datagram (ndpi/riotgames.pcap: 53 bytes)
			unhex("a49f9c31a03242040100000000000000000000000000000000000000000000000000000098b99eebc2e012d8953cb11f2dea23460c"),
			append(unhex("ffffffff214c5fa0"), noise(40)...),
		},
		"P2P": {
			append([]byte("\xf9\xbe\xb4\xd9version\x00\x00\x00\x00\x00"), noise(90)...),
			// uTP SYN and STATE (ndpi/bittorrent_utp.pcap), STATE with a
			// selective-ack extension
			unhex("41004567ed639296000000000010000023c60000"),
			unhex("21004567ed6393410000000000100000456723c6"),
			unhex("21014567ed6393410000000000100000456723c6 0004 ffffffff"),
			// Gnutella UDP DHT message (ndpi/gnutella.pcap)
			unhex("a745310289213ee47e649bbac302eb3a4400003a0000000547544b470000289d0a8d06deffc8263c33897c2c9179fd84ab61045d2fe235700901010000289d0a8d06deffc8263c33897c2c9179fd84ab61"),
			append([]byte("\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03\x00\x10\x00\x0a\x00\x08\x07bep/1.0"), noise(32)...),
		},
	}
}

// TestProtoLookalikes: first packets of other protocols that share a
// protocol validator's fixed bytes must not fire it.
func TestProtoLookalikes(t *testing.T) {
	db := Default()
	r := rand.New(rand.NewPCG(5, 6))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	}
	for name, p := range map[string][]byte{
		// a game's datagram with a little-endian sequence number 1 and
		// WireGuard's initiation size (synth's game-udp once was VPN)
		"game seq 1, 148 bytes": append([]byte{1, 0, 0, 0}, noise(144)...),
		"game seq 2, 92 bytes":  append([]byte{2, 0, 0, 0}, noise(88)...),
	} {
		var st State
		var c Counts
		db.Scan(&st, &c, p, 0)
		if c.Total() != 0 {
			t.Errorf("%s: %v", name, countsMap(&c))
		}
	}
}

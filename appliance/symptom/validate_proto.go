package symptom

import "encoding/binary"

// Protocol validators: binary protocol headers whose fixed bytes are too
// few for a mask alone. Each is meant for `anchor: start` (the first
// payload bytes of a flow direction, which for UDP is the first datagram
// and for TCP the first segment) and checks the structure against the
// packet's length, so random payload almost never passes: a length field
// that must equal the datagram's length is worth 16 bits or more.
//
// Each reads only p[start:] and only within bounds; none allocates.

var protoValidators = map[string]validatorDef{
	"quic":         {triggers: quicTriggers(), minLen: 7, check: checkQUIC},
	"snmp":         {triggers: []trigger{{[]byte{0x30}, 0}}, minLen: 8, check: checkSNMP},
	"ntp":          {triggers: ntpTriggers(), minLen: 48, check: checkNTP},
	"syslog":       {triggers: []trigger{{[]byte("<"), 0}}, minLen: 6, check: checkSyslog},
	"flow-export":  {triggers: []trigger{{[]byte{0, 5}, 0}, {[]byte{0, 7}, 0}, {[]byte{0, 9}, 0}, {[]byte{0, 10}, 0}, {[]byte{0, 0, 0, 5}, 0}}, minLen: 16, check: checkFlowExport},
	"ike":          {triggers: []trigger{{[]byte{0x10}, 17}, {[]byte{0x20}, 17}, {[]byte{0, 0, 0, 0}, 0}}, minLen: 28, check: checkIKE},
	"openvpn":      {triggers: []trigger{{[]byte{0x38}, 0}, {[]byte{0x40}, 0}, {[]byte{0x50}, 0}, {[]byte{0}, 0}}, minLen: 14, check: checkOpenVPN},
	"wireguard":    {triggers: []trigger{{[]byte{1, 0, 0, 0}, 0}, {[]byte{2, 0, 0, 0}, 0}}, minLen: 92, check: checkWireGuard},
	"rdp":          {triggers: []trigger{{[]byte{3, 0}, 0}}, minLen: 11, check: checkRDP},
	"h225":         {triggers: []trigger{{[]byte{3, 0}, 0}}, minLen: 9, check: checkH225},
	"telnet":       {triggers: []trigger{{[]byte{0xFF}, 0}}, minLen: 3, check: checkTelnet},
	"mysql":        {triggers: []trigger{{[]byte{0, 0x0A}, 3}}, minLen: 16, check: checkMySQL},
	"tds":          {triggers: []trigger{{[]byte{0x12}, 0}, {[]byte{0x10}, 0}, {[]byte{0x04}, 0}, {[]byte{0x01}, 0}, {[]byte{0x02}, 0}}, minLen: 8, check: checkTDS},
	"tns":          {triggers: []trigger{{[]byte{0, 0}, 2}}, minLen: 8, check: checkTNS},
	"mongodb":      {triggers: []trigger{{[]byte{0xD4, 0x07, 0, 0}, 12}, {[]byte{0xDD, 0x07, 0, 0}, 12}, {[]byte{0xDC, 0x07, 0, 0}, 12}, {[]byte{1, 0, 0, 0}, 12}}, minLen: 16, check: checkMongoDB},
	"redis":        {triggers: []trigger{{[]byte("*"), 0}}, minLen: 8, check: checkRedis},
	"iax2":         {triggers: []trigger{{[]byte{6}, 10}}, minLen: 12, check: checkIAX2},
	"rtcp":         {triggers: []trigger{{[]byte{200}, 1}, {[]byte{201}, 1}}, minLen: 8, check: checkRTCP},
	"rtp-framed":   {triggers: []trigger{{[]byte{0x80}, 2}}, minLen: 14, check: checkRTPFramed},
	"gnutella":     {triggers: []trigger{{[]byte{0, 0}, 21}}, minLen: 23, check: checkGnutella},
	"raknet":       {triggers: raknetTriggers(), minLen: 8, check: checkRakNet},
	"lol-wildrift": {triggers: []trigger{{[]byte{4, 0, 0, 0}, 0}, {[]byte{0x10, 0, 0, 0}, 0}}, minLen: 69, check: checkWildRift},
	"among-us":     {triggers: []trigger{{[]byte{8}, 0}}, minLen: 10, check: checkAmongUs},
	"utp":          {triggers: []trigger{{[]byte{0x11}, 0}, {[]byte{0x21}, 0}, {[]byte{0x31}, 0}, {[]byte{0x41}, 0}}, minLen: 20, check: checkUTP},
}

func init() {
	for k, v := range protoValidators {
		validators[k] = guarded(v)
	}
}

// guarded makes a protocol validator safe at any start: the checks read
// up to minLen bytes without testing the length themselves (the matcher
// calls them only where minLen bytes lie, but tests and fuzzing do not).
func guarded(v validatorDef) validatorDef {
	check, n := v.check, v.minLen
	v.check = func(p []byte, s int) bool { return s >= 0 && len(p)-s >= n && check(p, s) }
	return v
}

// QUIC versions whose long header the validator knows: 1 (RFC 9000),
// 2 (RFC 9369), the IETF drafts 0xff0000xx, and Google QUIC's "Q0dd"
// and "T0dd".
func quicVersion(v []byte) bool {
	switch binary.BigEndian.Uint32(v) {
	case 0x00000001, 0x6b3343cf:
		return true
	}
	if v[0] == 0xFF && v[1] == 0 && v[2] == 0 {
		return v[3] >= 0x0D && v[3] <= 0x22
	}
	return (v[0] == 'Q' || v[0] == 'T') && v[1] == '0' && isDigit(v[2]) && isDigit(v[3])
}

func quicTriggers() []trigger {
	return []trigger{
		{[]byte{0, 0, 0, 1}, 1}, {[]byte{0x6b, 0x33, 0x43, 0xcf}, 1}, {[]byte{0xFF, 0, 0}, 1},
		{[]byte("Q0"), 1}, {[]byte("T0"), 1},
		// Google QUIC before version 46: public flags, 8-byte connection
		// id, then the version.
		{[]byte("Q0"), 9},
	}
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// checkQUIC accepts a QUIC long-header packet of a known version, or a
// Google QUIC public header carrying the version (the client's first
// packets).
func checkQUIC(p []byte, s int) bool {
	q := p[s:]
	if len(q) < 13 {
		return false
	}
	// gQUIC public header: version flag 0x01, 8-byte CID flag 0x08, no
	// reserved bits, version at 9.
	if q[0]&0x89 == 0x09 && q[0]&0xC0 == 0 && q[9] == 'Q' && quicVersion(q[9:13]) {
		return len(q) >= 1200 || q[0]&0x01 != 0
	}
	if q[0]&0x80 == 0 || !quicVersion(q[1:5]) {
		return false
	}
	if q[1] == 'Q' || q[1] == 'T' {
		// gQUIC 46+ long header: connection id lengths in one byte.
		return q[5] == 0x50 || q[5] == 0x05 || q[5] == 0x00 || q[5] == 0x55
	}
	dl := int(q[5])
	if dl > 20 || 6+dl >= len(q) {
		return false
	}
	sl := int(q[6+dl])
	return sl <= 20 && 7+dl+sl <= len(q)
}

// berLen reads a BER definite length at q[i], returning the length and
// the index after it.
func berLen(q []byte, i int) (int, int, bool) {
	if i >= len(q) {
		return 0, 0, false
	}
	b := q[i]
	if b < 0x80 {
		return int(b), i + 1, true
	}
	n := int(b & 0x7F)
	if n == 0 || n > 2 || i+1+n > len(q) {
		return 0, 0, false
	}
	l := 0
	for _, x := range q[i+1 : i+1+n] {
		l = l<<8 | int(x)
	}
	return l, i + 1 + n, true
}

// checkSNMP accepts one SNMP message filling the datagram: a SEQUENCE,
// version 0, 1 or 3, then a community string and a PDU (v1, v2c) or
// the v3 header SEQUENCE.
func checkSNMP(p []byte, s int) bool {
	q := p[s:]
	if q[0] != 0x30 {
		return false
	}
	// The message fills the datagram, or runs past it when the capture
	// cut it short (a snap length; Arkime's synthetic trace).
	l, i, ok := berLen(q, 1)
	if !ok || i+l < len(q) || i+l > len(q)+64 || i+3 > len(q) {
		return false
	}
	if q[i] != 0x02 || q[i+1] != 0x01 {
		return false
	}
	v := q[i+2]
	i += 3
	if i+2 > len(q) {
		return false
	}
	switch v {
	case 0, 1:
		if q[i] != 0x04 {
			return false
		}
		cl, j, ok := berLen(q, i+1)
		if !ok || j+cl >= len(q) {
			return false
		}
		t := q[j+cl]
		return t >= 0xA0 && t <= 0xA8
	case 3:
		return q[i] == 0x30
	}
	return false
}

// ntpTriggers: the first byte of an NTP v3 or v4 packet in modes 1 to 5
// (symmetric, client, server, broadcast), synchronised or not.
func ntpTriggers() []trigger {
	var t []trigger
	for _, li := range [...]int{0, 3} {
		for vn := 3; vn <= 4; vn++ {
			for mode := 1; mode <= 5; mode++ {
				t = append(t, trigger{[]byte{byte(li<<6 | vn<<3 | mode)}, 0})
			}
		}
	}
	return t
}

// checkNTP accepts a 48-byte NTP header, alone or followed by a MAC
// (key id and MD5 or SHA-1 digest): stratum 0 to 16, a poll interval and
// precision in their usual ranges. A client's request may carry zeros.
func checkNTP(p []byte, s int) bool {
	q := p[s:]
	switch len(q) {
	case 48, 48 + 20, 48 + 24:
	default:
		return false
	}
	stratum, poll, prec := q[1], int8(q[2]), int8(q[3])
	if stratum > 16 || poll < 0 || poll > 17 || prec > 0 || prec < -32 {
		return false
	}
	// The root delay and dispersion are short 16.16 fractions: their
	// top byte is 0 in practice.
	return q[4] == 0 && q[8] == 0
}

var months = [...]string{"Jan ", "Feb ", "Mar ", "Apr ", "May ", "Jun ", "Jul ", "Aug ", "Sep ", "Oct ", "Nov ", "Dec "}

// checkSyslog accepts a syslog message: "<PRI>" (0 to 191) then an
// RFC 5424 version ("1 "), an RFC 3164 timestamp ("Mmm "), or a
// sequence number or tag followed by ": " within the first 40 bytes.
func checkSyslog(p []byte, s int) bool {
	q := p[s:]
	i, pri := 1, 0
	for ; i < len(q) && i <= 3 && isDigit(q[i]); i++ {
		pri = pri*10 + int(q[i]-'0')
	}
	if i == 1 || i >= len(q) || q[i] != '>' || pri > 191 || (i > 2 && q[1] == '0') {
		return false
	}
	r := q[i+1:]
	if len(r) >= 3 && r[0] == '1' && r[1] == ' ' && (isDigit(r[2]) || r[2] == '-') {
		return true
	}
	for _, m := range months {
		if len(r) >= 4 && string(r[:4]) == m {
			return true
		}
	}
	// "<134>854 08/20/2013-..." and "<133>ssg: NetScreen ...": printable
	// text with a ": " or a date.
	n := min(len(r), 40)
	if n < 4 {
		return false
	}
	for j := 0; j < n; j++ {
		if r[j] < 0x20 || r[j] > 0x7E {
			return false
		}
	}
	for j := 0; j+1 < n; j++ {
		if (r[j] == ':' && r[j+1] == ' ') || (r[j] == '/' && isDigit(r[j+1])) {
			return true
		}
		// an ISO date ("<134> 2021-04-18 15:12:38", FortiGate's
		// "<189>date=2021-12-09 time=...")
		if j+10 <= n && isDigit(r[j]) && isDigit(r[j+1]) && isDigit(r[j+2]) && isDigit(r[j+3]) && r[j+4] == '-' &&
			isDigit(r[j+5]) && isDigit(r[j+6]) && r[j+7] == '-' && isDigit(r[j+8]) && isDigit(r[j+9]) {
			return true
		}
	}
	return false
}

// checkFlowExport accepts the header of a NetFlow v5, v7 or v9, IPFIX or
// sFlow v5 datagram whose counts or length agree with the datagram.
func checkFlowExport(p []byte, s int) bool {
	q := p[s:]
	switch binary.BigEndian.Uint16(q) {
	case 5:
		n := int(binary.BigEndian.Uint16(q[2:]))
		return n >= 1 && n <= 30 && len(q) == 24+48*n
	case 7:
		n := int(binary.BigEndian.Uint16(q[2:]))
		return n >= 1 && n <= 28 && len(q) == 24+52*n
	case 9:
		// count of records, uptime, time, sequence, source id; the
		// first flowset (template 0, options 1 or data >= 256) fits.
		if len(q) < 24 {
			return false
		}
		id, l := binary.BigEndian.Uint16(q[20:]), int(binary.BigEndian.Uint16(q[22:]))
		return (id <= 1 || id >= 256) && l >= 4 && 20+l <= len(q)
	case 10:
		if int(binary.BigEndian.Uint16(q[2:])) != len(q) || len(q) < 20 {
			return false
		}
		id, l := binary.BigEndian.Uint16(q[16:]), int(binary.BigEndian.Uint16(q[18:]))
		return (id == 2 || id == 3 || id >= 256) && l >= 4 && 16+l <= len(q)
	case 0:
		// sFlow v5: version 5, agent address type 1 (IPv4) or 2 (IPv6).
		if len(q) < 28 || binary.BigEndian.Uint32(q) != 5 {
			return false
		}
		at := binary.BigEndian.Uint32(q[4:])
		return at == 1 || at == 2
	}
	return false
}

// checkIKE accepts an ISAKMP/IKE message (also behind the 4-byte
// non-ESP marker of NAT traversal) whose length fills the datagram:
// IKEv1 or IKEv2, a known exchange type, a non-zero initiator SPI.
func checkIKE(p []byte, s int) bool {
	q := p[s:]
	if binary.BigEndian.Uint32(q) == 0 {
		q = q[4:]
		if len(q) < 28 {
			return false
		}
	}
	if binary.BigEndian.Uint64(q) == 0 {
		return false
	}
	ex := q[18]
	switch q[17] {
	case 0x10:
		if ex != 2 && ex != 4 && ex != 5 && ex != 6 && ex != 32 {
			return false
		}
	case 0x20:
		if ex < 34 || ex > 37 {
			return false
		}
	default:
		return false
	}
	// A message without payloads (next payload 0) is its header alone.
	return int(binary.BigEndian.Uint32(q[24:])) == len(q) && q[16] <= 53 && (q[16] != 0 || len(q) == 28)
}

// checkOpenVPN accepts OpenVPN's first control packet of either side,
// over UDP or TCP (behind a 2-byte length): a hard-reset opcode with key
// id 0, a session id, an optional tls-auth HMAC with packet id and time,
// an ack array of 0 or 1 entries and message packet id 0 or 1, ending
// exactly at the end of the packet.
func checkOpenVPN(p []byte, s int) bool {
	q := p[s:]
	if len(q) >= 16 && int(binary.BigEndian.Uint16(q)) == len(q)-2 {
		q = q[2:]
	}
	switch q[0] {
	case 7 << 3, 8 << 3, 10 << 3:
	default:
		return false
	}
	for _, auth := range [...]int{0, 20 + 8, 32 + 8, 64 + 8} {
		i := 9 + auth
		if i >= len(q) {
			break
		}
		n := int(q[i])
		if n > 1 {
			continue
		}
		end := i + 1 + n*(4+8) + 4
		if end == len(q) && binary.BigEndian.Uint32(q[end-4:]) <= 1 {
			return true
		}
	}
	return false
}

// checkWireGuard accepts WireGuard's handshake initiation (148 bytes)
// and response (92 bytes) by type and size, with the cookie MAC (mac2,
// the last 16 bytes) zero, as it is unless the responder is under load:
// a type and size alone are what a game's little-endian sequence number
// and a packet of the right length look like.
func checkWireGuard(p []byte, s int) bool {
	q := p[s:]
	switch {
	case q[0] == 1 && len(q) == 148, q[0] == 2 && len(q) == 92:
	default:
		return false
	}
	for _, b := range q[len(q)-16:] {
		if b != 0 {
			return false
		}
	}
	return true
}

// tpkt returns the TPKT payload (RFC 1006) when the header's length
// fills the segment.
func tpkt(q []byte) ([]byte, bool) {
	if len(q) < 7 || q[0] != 3 || q[1] != 0 || int(binary.BigEndian.Uint16(q[2:])) != len(q) {
		return nil, false
	}
	return q[4:], true
}

// checkRDP accepts an X.224 connection request or confirm in TPKT, as
// RDP opens its connections.
func checkRDP(p []byte, s int) bool {
	x, ok := tpkt(p[s:])
	if !ok || int(x[0]) != len(x)-1 {
		return false
	}
	return (x[1] == 0xE0 || x[1] == 0xD0) && x[2] == 0 && x[3] == 0
}

// checkH225 accepts a Q.931 message in TPKT, as H.225 call signalling
// carries it: protocol discriminator 8, a call reference of 2 bytes and
// a known message type.
func checkH225(p []byte, s int) bool {
	x, ok := tpkt(p[s:])
	if !ok || x[0] != 0x08 || x[1] != 2 {
		return false
	}
	switch x[4] {
	case 0x01, 0x02, 0x03, 0x05, 0x07, 0x0F, 0x5A, 0x62, 0x6E, 0x7B, 0x7D:
		return true
	}
	return false
}

// checkTelnet accepts a segment made only of telnet option negotiation
// (IAC WILL/WONT/DO/DONT option), as both sides open a session.
func checkTelnet(p []byte, s int) bool {
	q := p[s:]
	if len(q)%3 != 0 || len(q) > 96 {
		return false
	}
	for i := 0; i < len(q); i += 3 {
		if q[i] != 0xFF || q[i+1] < 0xFB || q[i+2] > 50 {
			return false
		}
	}
	return true
}

// checkMySQL accepts the server greeting (protocol 10): a 3-byte length
// that fills the segment, sequence 0, then a NUL-terminated version
// string that starts with a digit.
func checkMySQL(p []byte, s int) bool {
	q := p[s:]
	l := int(q[0]) | int(q[1])<<8 | int(q[2])<<16
	if l+4 != len(q) || q[3] != 0 || q[4] != 0x0A || !isDigit(q[5]) {
		return false
	}
	for i := 6; i < len(q) && i < 70; i++ {
		switch {
		case q[i] == 0:
			return i > 7
		case q[i] < 0x20 || q[i] > 0x7E:
			return false
		}
	}
	return false
}

// checkTDS accepts a TDS packet header (MS-SQL and Sybase) whose length
// fills the segment: a client or server message type, a status of
// end-of-message or reset bits, window 0.
func checkTDS(p []byte, s int) bool {
	q := p[s:]
	if int(binary.BigEndian.Uint16(q[2:])) != len(q) || q[7] != 0 {
		return false
	}
	if q[1]&^0x19 != 0 {
		return false
	}
	// A message's last packet has the EOM bit; the ones before it fill
	// the negotiated packet size (512 to 32768, a power of two).
	if n := len(q); q[1]&0x01 == 0 && (n < 512 || n > 32768 || n&(n-1) != 0) {
		return false
	}
	// The packet number starts at 0 or 1.
	return q[6] <= 1
}

// checkTNS accepts an Oracle TNS packet header whose length fills the
// segment, with zero checksums and a packet type from 1 to 14.
func checkTNS(p []byte, s int) bool {
	q := p[s:]
	return int(binary.BigEndian.Uint16(q)) == len(q) && q[2] == 0 && q[3] == 0 &&
		q[4] >= 1 && q[4] <= 14 && q[5] == 0 && q[6] == 0 && q[7] == 0
}

// checkMongoDB accepts a MongoDB wire message whose little-endian length
// fills the segment, with a known opcode (OP_REPLY, OP_QUERY,
// OP_COMPRESSED, OP_MSG).
func checkMongoDB(p []byte, s int) bool {
	q := p[s:]
	if int(binary.LittleEndian.Uint32(q)) != len(q) {
		return false
	}
	switch binary.LittleEndian.Uint32(q[12:]) {
	case 1, 2004, 2012, 2013:
		return true
	}
	return false
}

// checkRedis accepts a RESP command: "*N\r\n$L\r\n" then L printable
// bytes and "\r\n".
func checkRedis(p []byte, s int) bool {
	q := p[s:]
	i, n := 1, 0
	for ; i < len(q) && i < 4 && isDigit(q[i]); i++ {
		n = n*10 + int(q[i]-'0')
	}
	if i == 1 || n == 0 || i+3 >= len(q) || q[i] != '\r' || q[i+1] != '\n' || q[i+2] != '$' {
		return false
	}
	i += 3
	j, l := i, 0
	for ; j < len(q) && j < i+3 && isDigit(q[j]); j++ {
		l = l*10 + int(q[j]-'0')
	}
	if j == i || l == 0 || j+2+l+2 > len(q) || q[j] != '\r' || q[j+1] != '\n' {
		return false
	}
	for _, b := range q[j+2 : j+2+l] {
		if b < 0x21 || b > 0x7E {
			return false
		}
	}
	return q[j+2+l] == '\r' && q[j+3+l] == '\n'
}

// checkIAX2 accepts an IAX2 full frame of type IAX control, as a call
// opens: sequence numbers 0 or 1, a known subclass.
func checkIAX2(p []byte, s int) bool {
	q := p[s:]
	return q[0]&0x80 != 0 && q[8] <= 1 && q[9] <= 1 && q[10] == 6 && q[11] >= 1 && q[11] <= 0x25
}

// checkRTCP accepts a compound RTCP packet that fills the datagram: it
// starts with a sender or receiver report and every part has version 2,
// an RTCP packet type (192 to 207) and a length within the datagram.
func checkRTCP(p []byte, s int) bool {
	q := p[s:]
	i, parts := 0, 0
	for i < len(q) {
		if i+4 > len(q) || q[i]>>6 != 2 || q[i+1] < 192 || q[i+1] > 207 {
			return checkSRTCP(q)
		}
		i += 4 * (int(binary.BigEndian.Uint16(q[i+2:])) + 1)
		parts++
	}
	if i == len(q) && (parts > 1 || len(q) <= 64) {
		return true
	}
	return checkSRTCP(q)
}

// checkSRTCP accepts an SRTCP packet (RFC 3711): the first RTCP header
// (a sender or receiver report) and SSRC in clear, the rest of the
// compound encrypted, then the E flag with a 31-bit index below 2^24 and
// an 80-bit authentication tag.
func checkSRTCP(q []byte) bool {
	n := len(q)
	if n < 22 || q[0]>>6 != 2 || (q[1] != 200 && q[1] != 201) || (n-22)%4 != 0 {
		return false
	}
	return q[n-14] == 0x80 && q[n-13] == 0
}

// checkRTPFramed accepts RTP over TCP framed as RFC 4571 says (a 16-bit
// length before each packet) that fills the segment exactly: the first
// packet without padding, extension or CSRCs (0x80), every packet of
// version 2, at least 12 bytes, with a payload type outside RTCP's
// (72 to 76, RFC 5761) and room for its CSRCs. A DNS message over TCP
// has the same length prefix; its question count of 1 where the first
// packet's timestamp starts (bytes 4 and 5) turns it away (an RTP
// timestamp has that high half once in 65536).
func checkRTPFramed(p []byte, s int) bool {
	q := p[s:]
	if q[2] != 0x80 || binary.BigEndian.Uint16(q[6:]) == 1 {
		return false
	}
	i := 0
	for i < len(q) {
		if i+2+12 > len(q) {
			return false
		}
		n := int(binary.BigEndian.Uint16(q[i:]))
		r := q[i+2:]
		if n < 12 || n > len(r) || r[0]>>6 != 2 || 12+4*int(r[0]&0x0F) > n {
			return false
		}
		if pt := r[1] & 0x7F; pt >= 72 && pt <= 76 {
			return false
		}
		i += 2 + n
	}
	return i == len(q)
}

// checkGnutella accepts one Gnutella 0.6 message filling the datagram
// (gtk-gnutella's and LimeWire's UDP: pings, pongs, queries, vendor and
// DHT messages): a 16-byte GUID, a known payload descriptor, TTL and
// hops of at most 15 between them, and a little-endian payload length
// that is the rest of the datagram.
func checkGnutella(p []byte, s int) bool {
	q := p[s:]
	switch q[16] {
	case 0x00, 0x01, 0x02, 0x31, 0x32, 0x40, 0x41, 0x44, 0x80, 0x81:
	default:
		return false
	}
	return int(q[17])+int(q[18]) <= 15 && int(binary.LittleEndian.Uint32(q[19:])) == len(q)-23
}

// raknetTriggers: the first byte of a RakNet frame set (0x80 to 0x8D).
func raknetTriggers() []trigger {
	var t []trigger
	for b := 0x80; b <= 0x8D; b++ {
		t = append(t, trigger{[]byte{byte(b)}, 0})
	}
	// acknowledgements (ACK C0, NAK A0) with fewer than 256 records
	return append(t, trigger{[]byte{0xC0, 0}, 0}, trigger{[]byte{0xA0, 0}, 0})
}

// checkRakNet accepts a RakNet frame set filling the datagram (or an
// acknowledgement: checkRakNetAck): a 24-bit
// sequence number, then frames whose flags name a reliability (0 to 7)
// with the low four bits clear but the split bit, a length in bits that
// is whole bytes, the reliability's indexes and a split header when
// split, and exactly the frames' bytes to the datagram's end.
func checkRakNet(p []byte, s int) bool {
	q := p[s:]
	if q[0] == 0xC0 || q[0] == 0xA0 {
		return checkRakNetAck(q)
	}
	i, frames := 4, 0
	for i < len(q) {
		if i+3 > len(q) {
			return false
		}
		f := q[i]
		if f&0x0F != 0 {
			return false
		}
		bits := int(binary.BigEndian.Uint16(q[i+1:]))
		if bits == 0 || bits%8 != 0 {
			return false
		}
		i += 3
		switch rel := f >> 5; rel {
		case 2, 6: // reliable: message index
			i += 3
		case 3, 7: // reliable ordered: message and order index, channel
			i += 7
		case 1, 4: // sequenced: message (4 only), sequence and order index, channel
			i += 7
			if rel == 4 {
				i += 3
			}
		}
		if f&0x10 != 0 {
			i += 10 // split count, id and index
		}
		i += bits / 8
		frames++
	}
	return i == len(q) && frames > 0
}

// checkRakNetAck accepts a RakNet ACK or NAK filling the datagram: a
// count of 1 to 255 records, each a single sequence number (1, then 3
// bytes) or a range (0, then 6 bytes).
func checkRakNetAck(q []byte) bool {
	n := int(binary.BigEndian.Uint16(q[1:]))
	if n == 0 || n > 255 {
		return false
	}
	i := 3
	for k := 0; k < n; k++ {
		if i >= len(q) {
			return false
		}
		switch q[i] {
		case 1:
			i += 4
		case 0:
			i += 7
		default:
			return false
		}
	}
	return i == len(q)
}

// checkUTP accepts a BitTorrent uTP (BEP 29) packet without payload: a
// FIN, STATE, RESET or SYN of version 1 whose 20-byte header and
// extensions (each a next-extension byte and a length) fill the datagram
// exactly. Data packets carry payload of any length and are not taken.
func checkUTP(p []byte, s int) bool {
	q := p[s:]
	ext, i := q[1], 20
	for ext != 0 {
		if ext > 2 || i+2 > len(q) {
			return false
		}
		ext = q[i]
		i += 2 + int(q[i+1])
	}
	return i == len(q)
}

// checkWildRift accepts League of Legends: Wild Rift's connection
// datagrams: the client's 69-byte one starting with 4 and the server's
// 359-byte answer starting with 16 (a 32-bit little-endian type).
func checkWildRift(p []byte, s int) bool {
	q := p[s:]
	return (q[0] == 4 && len(q) == 69) || (q[0] == 0x10 && len(q) == 359)
}

// checkAmongUs accepts an Among Us (Hazel) Hello: type 8, a nonce, Hazel
// version 0, the game's version (year*25000 + month*1800 + day*50 +
// revision, years 2018 to 2039) and the player's name, a length-prefixed
// string of printable text, with at most 64 bytes of options after it.
func checkAmongUs(p []byte, s int) bool {
	q := p[s:]
	if q[3] != 0 {
		return false
	}
	v := binary.LittleEndian.Uint32(q[4:])
	if v < 2018*25000 || v >= 2040*25000 {
		return false
	}
	n := int(q[8])
	if n == 0 || 9+n > len(q) || len(q) > 9+n+64 {
		return false
	}
	for _, c := range q[9 : 9+n] {
		if c < 0x20 || c > 0x7E {
			return false
		}
	}
	return true
}

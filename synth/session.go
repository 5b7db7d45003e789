package synth

import (
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/mira-project/mira/flow"
)

const (
	usec = int64(1000)
	msec = 1000 * usec
	sec  = 1000 * msec
)

// session is one connection or conversation: both directions' packets,
// planned when the session starts and written in time order.
type session struct {
	id   int
	pkts []pkt
	next int
	msgs []message

	addr  [2]netip.Addr // client, server (innermost)
	port  [2]uint16
	proto uint8
	v6    bool

	mac, innerMAC [2][6]byte
	ttl           [2]uint8
	ipid, outerID [2]uint16
	flowLabel     [2]uint32
	isn           [2]uint32
	win           [2]uint16
	mss           int
	rtt           int64

	vlan   uint16
	tunnel flow.TunnelType
	outer  [2]netip.Addr
	vni    uint32
	vxPort uint16

	truth    [2]int // indexes in Truth.Flows
	straddle bool   // cut TCP writes inside markers
}

// nextID returns the IPv4 identification for a packet of direction d:
// fragments after the first reuse their datagram's.
func (s *session) nextID(d uint8, p *pkt) uint16 {
	if p.kind == kindFrag && p.off > 0 {
		return s.ipid[d] - 1
	}
	id := s.ipid[d]
	s.ipid[d]++
	return id
}

// addMsg stores m and returns its index.
func (s *session) addMsg(m message) int32 {
	s.msgs = append(s.msgs, m)
	return int32(len(s.msgs) - 1)
}

// conv plans a TCP connection as seen from a capture point next to the
// client: the server's packets arrive one round trip after what they
// answer.
type conv struct {
	g    *generator
	s    *session
	r    *rand.Rand
	bw   float64 // link rate, bit/s
	last int64   // capture time of the last data packet planned
	dir  uint8   // its direction
	data [2]int64
}

func (g *generator) newConv(s *session, r *rand.Rand, t int64) *conv {
	c := &conv{g: g, s: s, r: r, bw: float64(10+r.IntN(990)) * 1e6}
	s.proto = 6
	mtu := linkMTU
	switch s.tunnel {
	case flow.TunnelIPIP, flow.Tunnel6in4:
		mtu -= ipv4Hdr
	case flow.TunnelGRE:
		mtu -= ipv4Hdr + greHdr
	case flow.TunnelVXLAN:
		mtu -= ipv4Hdr + udpHdr + vxlanHdr + ethHdr
	}
	s.mss = mtu - tcpHdr - ipv4Hdr
	if s.v6 {
		s.mss = mtu - tcpHdr - ipv6Hdr
	}
	s.isn = [2]uint32{r.Uint32(), r.Uint32()}
	s.win = [2]uint16{64240, 65160}
	s.pkts = append(s.pkts,
		pkt{t: t, dir: 0, flags: flagSYN, msg: -1},
		pkt{t: t + s.rtt, dir: 1, flags: flagSYN | flagACK, msg: -1},
		pkt{t: t + s.rtt + c.jit(50*usec), dir: 0, flags: flagACK, msg: -1},
	)
	c.last, c.dir = s.pkts[2].t, 0
	return c
}

// jit returns a duration around d (plus or minus 20%), at least 1 µs.
func (c *conv) jit(d int64) int64 {
	return max(usec, d*int64(80+c.r.IntN(41))/100)
}

// send plans message m written by direction d after think time (counted
// from the moment d has seen the previous data) and returns the capture
// time of its last segment.
func (c *conv) send(d uint8, m message, think int64) int64 {
	start := c.last + think
	if d == 1 && c.dir == 0 {
		start += c.s.rtt
	}
	return c.sendAt(d, m, start)
}

// sendAt plans message m from direction d starting at capture time at.
func (c *conv) sendAt(d uint8, m message, at int64) int64 {
	s := c.s
	mi := s.addMsg(m)
	t := max(at, c.data[d]+usec, c.last+usec)
	var cuts []int
	if s.straddle {
		for _, mk := range m.marks {
			if l := len(markerTable[mk.id].Text); l >= 2 {
				cuts = append(cuts, mk.off+l/2)
			}
		}
	}
	segs := 0
	for off := 0; off < m.size; {
		n := min(s.mss, m.size-off)
		for _, cut := range cuts {
			if cut > off && cut < off+n {
				n = cut - off
				break
			}
		}
		flags := uint8(flagACK)
		if off+n == m.size {
			flags |= flagPSH
		}
		if segs > 0 {
			// Rate: the link, or a 48 kB window per round trip.
			gap := max(float64(n+54)*8e9/c.bw, float64(c.s.rtt)*float64(n)/48000)
			t += c.jit(int64(gap))
		}
		s.pkts = append(s.pkts, pkt{t: t, dir: d, flags: flags, msg: mi, off: int32(off), n: int32(n)})
		segs++
		if segs%2 == 0 || off+n == m.size {
			at := t + c.jit(60*usec)
			if d == 0 {
				at = t + s.rtt
			}
			s.pkts = append(s.pkts, pkt{t: at, dir: 1 - d, flags: flagACK, msg: -1})
		}
		// Count planted markers that this segment boundary splits.
		for _, mk := range m.marks {
			if end := off + n; end > mk.off && end < mk.off+len(markerTable[mk.id].Text) {
				c.g.truth.Flows[s.truth[d]].Straddles++
			}
		}
		off += n
	}
	c.g.count(s, d, &m)
	c.last, c.dir, c.data[d] = t, d, t
	return t
}

// close ends the connection: closer sends FIN (the peer answers with its
// FIN), or, with rst, a reset.
func (c *conv) close(closer uint8, think int64, rst bool) {
	s := c.s
	tf := c.last + think
	if closer == 1 && c.dir == 0 {
		tf += s.rtt
	}
	tf = max(tf, c.data[closer]+usec)
	end := "fin"
	if rst {
		end = "rst"
		s.pkts = append(s.pkts, pkt{t: tf, dir: closer, flags: flagRST | flagACK, msg: -1})
	} else if closer == 0 {
		s.pkts = append(s.pkts,
			pkt{t: tf, dir: 0, flags: flagFIN | flagACK, msg: -1},
			pkt{t: tf + s.rtt, dir: 1, flags: flagFIN | flagACK, msg: -1},
			pkt{t: tf + s.rtt + c.jit(60*usec), dir: 0, flags: flagACK, msg: -1})
	} else {
		t2 := tf + c.jit(100*usec)
		s.pkts = append(s.pkts,
			pkt{t: tf, dir: 1, flags: flagFIN | flagACK, msg: -1},
			pkt{t: t2, dir: 0, flags: flagFIN | flagACK, msg: -1},
			pkt{t: t2 + s.rtt, dir: 1, flags: flagACK, msg: -1})
	}
	c.g.truth.Flows[s.truth[0]].End = end
	c.g.truth.Flows[s.truth[1]].End = end
	c.finish()
}

// finish sorts the packets by time and assigns sequence and
// acknowledgement numbers as each side would have them at that moment;
// pure ACKs that would acknowledge nothing new are dropped.
func (c *conv) finish() {
	s := c.s
	sortPkts(s)
	type edge struct {
		t   int64
		end uint32
	}
	var next [2]uint32 // next relative sequence number per direction
	var cum [2][]edge  // sequence reached after each packet, per direction
	var ptr [2]int     // entries of the other direction already acknowledgeable
	var ack [2]uint32
	var sent [2]uint32 // last acknowledgement number sent
	var acked [2]bool
	out := s.pkts[:0]
	for _, p := range s.pkts {
		d, o := p.dir, 1-p.dir
		p.seq = next[d]
		adv := uint32(p.n)
		if p.flags&(flagSYN|flagFIN) != 0 {
			adv++
		}
		if p.flags&flagACK != 0 {
			// The server sees client packets one round trip late.
			limit := p.t
			if d == 1 {
				limit -= s.rtt
			}
			for ptr[d] < len(cum[o]) && cum[o][ptr[d]].t <= limit {
				ack[d] = cum[o][ptr[d]].end
				ptr[d]++
			}
			if p.n == 0 && p.flags == flagACK && acked[d] && ack[d] == sent[d] {
				continue // nothing new to acknowledge: no real stack sends it
			}
			p.ack = ack[d]
			sent[d], acked[d] = ack[d], true
		}
		next[d] += adv
		cum[d] = append(cum[d], edge{p.t, next[d]})
		out = append(out, p)
	}
	s.pkts = out
}

// datagram plans a UDP datagram from direction d at time t; IPv4
// datagrams above the MTU go as fragments.
func (g *generator) datagram(s *session, d uint8, m message, t int64) {
	s.proto = 17
	mi := s.addMsg(m)
	size := udpHdr + m.size
	if s.v6 || s.tunnel != flow.TunnelNone || size+ipv4Hdr <= linkMTU {
		s.pkts = append(s.pkts, pkt{t: t, dir: d, kind: kindUDP, msg: mi})
		g.count(s, d, &m)
		return
	}
	const fragData = (linkMTU - ipv4Hdr) / 8 * 8
	for off := 0; off < size; off += fragData {
		n := min(fragData, size-off)
		more := uint8(0)
		if off+n < size {
			more = 1
		}
		s.pkts = append(s.pkts, pkt{t: t, dir: d, kind: kindFrag, msg: mi, off: int32(off), n: int32(n), flags: more})
		g.truth.Flows[s.truth[d]].Fragments++
		t += 12 * usec
	}
	g.count(s, d, &m)
}

// sortPkts orders a UDP or ICMP session's packets by time.
func sortPkts(s *session) {
	slices.SortStableFunc(s.pkts, func(a, b pkt) int {
		switch {
		case a.t < b.t:
			return -1
		case a.t > b.t:
			return 1
		}
		return 0
	})
}

// count adds the markers of m to direction d's truth.
func (g *generator) count(s *session, d uint8, m *message) {
	if len(m.marks) == 0 {
		return
	}
	f := &g.truth.Flows[s.truth[d]]
	if f.Symptoms == nil {
		f.Symptoms = make(map[string]int)
	}
	for _, mk := range m.marks {
		f.Symptoms[markerTable[mk.id].Symptom]++
	}
}

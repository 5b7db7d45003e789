package report

import (
	"cmp"
	"math"
	"net/netip"
	"slices"

	"github.com/mira-project/mira/appliance/flow"
	"github.com/mira-project/mira/collector/store"
)

// TCP flag bits in flow.Record.TCPFlags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

const (
	protoICMP   = 1
	protoTCP    = 6
	protoICMPv6 = 58
)

// connKey identifies a connection regardless of direction: endpoint a is
// the lower of the two (address, then port).
type connKey struct {
	a, b   netip.Addr
	pa, pb uint16
	proto  uint8
	vlan   uint16
}

// icmpEcho says whether an ICMP(v6) type<<8|code port is an echo request
// or reply, and which.
func icmpEcho(proto uint8, dport uint16) (echo, request bool) {
	t := dport >> 8
	switch proto {
	case protoICMP:
		return t == 8 || t == 0, t == 8
	case protoICMPv6:
		return t == 128 || t == 129, t == 128
	}
	return false, false
}

func isICMP(proto uint8) bool { return proto == protoICMP || proto == protoICMPv6 }

// keyOf returns the connection key of r and whether r runs from a to b.
func keyOf(r *flow.Record) (connKey, bool) {
	sp, dp := r.Sport, r.Dport
	if isICMP(r.Proto) {
		// Request and reply differ in type; key echo on a shared value,
		// other ICMP messages on their type and code.
		if echo, _ := icmpEcho(r.Proto, r.Dport); echo {
			sp, dp = 0, 0xffff
		}
		if r.Src.Compare(r.Dst) <= 0 {
			return connKey{a: r.Src, b: r.Dst, pa: sp, pb: dp, proto: r.Proto, vlan: r.VLAN}, true
		}
		return connKey{a: r.Dst, b: r.Src, pa: sp, pb: dp, proto: r.Proto, vlan: r.VLAN}, false
	}
	c := r.Src.Compare(r.Dst)
	if c < 0 || (c == 0 && sp <= dp) {
		return connKey{a: r.Src, b: r.Dst, pa: sp, pb: dp, proto: r.Proto, vlan: r.VLAN}, true
	}
	return connKey{a: r.Dst, b: r.Src, pa: dp, pb: sp, proto: r.Proto, vlan: r.VLAN}, false
}

// chain is one direction of a connection: records that continue each
// other, in start order.
type chain struct {
	recs        []*store.StoredFlow
	first, last int64
	forward     bool // runs from the connection key's a to b
	flags       uint8
	paired      bool
}

func (c *chain) add(f *store.StoredFlow) {
	r := &f.Record
	if len(c.recs) == 0 || r.First < c.first {
		c.first = r.First
	}
	if len(c.recs) == 0 || r.Last > c.last {
		c.last = r.Last
	}
	c.flags |= r.TCPFlags
	c.recs = append(c.recs, f)
}

// continues says whether a record of the same direction starting at first
// continues the flow that c's latest record ended.
func (c *chain) continues(first, window int64) bool {
	end := c.recs[len(c.recs)-1].Record.EndReason
	switch end {
	case 0, flow.EndActive, flow.EndResource:
		return first-c.last <= window
	}
	return false
}

// pair is one biflow before naming: the initiator's chain and the
// responder's (nil when unpaired).
type pair struct{ init, resp *chain }

// pairFlows groups flows into biflows. window is in nanoseconds.
func pairFlows(flows []store.StoredFlow, window int64) []pair {
	groups := make(map[connKey][]int)
	var order []connKey
	for i := range flows {
		k, _ := keyOf(&flows[i].Record)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	var out []pair
	for _, k := range order {
		idx := groups[k]
		slices.SortStableFunc(idx, func(i, j int) int {
			return cmp.Compare(flows[i].Record.First, flows[j].Record.First)
		})
		var chains []*chain
		var open [2]*chain // latest chain per direction: [0] forward, [1] reverse
		for _, i := range idx {
			f := &flows[i]
			_, fwd := keyOf(&f.Record)
			d := dirIndex(fwd)
			if c := open[d]; c != nil && c.continues(f.Record.First, window) {
				c.add(f)
				continue
			}
			c := &chain{forward: fwd}
			c.add(f)
			chains = append(chains, c)
			open[d] = c
		}
		// chains is in order of start time; so is each direction's list.
		var dirs [2][]*chain
		var maxDur [2]int64
		for _, c := range chains {
			d := dirIndex(c.forward)
			dirs[d] = append(dirs[d], c)
			maxDur[d] = max(maxDur[d], c.last-c.first)
		}
		for _, x := range chains {
			if x.paired {
				continue
			}
			x.paired = true
			best := closestPartner(dirs[1-dirIndex(x.forward)], maxDur[1-dirIndex(x.forward)], x, window)
			if best == nil {
				out = append(out, pair{init: x})
				continue
			}
			best.paired = true
			if initiatorIsFirst(x, best) {
				out = append(out, pair{init: x, resp: best})
			} else {
				out = append(out, pair{init: best, resp: x})
			}
		}
	}
	return out
}

func dirIndex(forward bool) int {
	if forward {
		return 0
	}
	return 1
}

// closestPartner returns the unpaired chain of ys (sorted by start, the
// longest lasting maxDur) that overlaps x widened by window and starts
// closest to x; nil if none. Only chains starting in
// [x.first-window-maxDur, x.last+window] can overlap, so a long history of
// one connection costs a binary search, not a scan.
func closestPartner(ys []*chain, maxDur int64, x *chain, window int64) *chain {
	byFirst := func(c *chain, t int64) int { return cmp.Compare(c.first, t) }
	hi, _ := slices.BinarySearchFunc(ys, satAdd(x.last, window+1), byFirst)
	lo, _ := slices.BinarySearchFunc(ys, satAdd(satAdd(x.first, -window), -maxDur), byFirst)
	if lo > hi {
		return nil
	}
	var best *chain
	for _, y := range ys[lo:hi] {
		if y.paired || x.first > y.last+window {
			continue
		}
		if best == nil || absDiff(y.first, x.first) < absDiff(best.first, x.first) {
			best = y
		}
	}
	return best
}

// satAdd adds b (not math.MinInt64) to a, saturating instead of
// wrapping: stored timestamps are not trusted.
func satAdd(a, b int64) int64 {
	c := a + b
	if (b > 0 && c < a) || (b < 0 && c > a) {
		if b > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return c
}

func absDiff(a, b int64) int64 {
	if a < b {
		return b - a
	}
	return a - b
}

// initiatorIsFirst says whether chain x, rather than y, opened the
// connection.
func initiatorIsFirst(x, y *chain) bool {
	rx, ry := &x.recs[0].Record, &y.recs[0].Record
	if isICMP(rx.Proto) {
		if echo, req := icmpEcho(rx.Proto, rx.Dport); echo {
			if _, reqY := icmpEcho(ry.Proto, ry.Dport); req != reqY {
				return req
			}
		}
	}
	if rx.Proto == protoTCP {
		// A bare SYN (no ACK in the whole flow) opens; a SYN on one
		// side only opens.
		bareX := x.flags&(tcpSYN|tcpACK) == tcpSYN
		bareY := y.flags&(tcpSYN|tcpACK) == tcpSYN
		if bareX != bareY {
			return bareX
		}
		synX, synY := x.flags&tcpSYN != 0, y.flags&tcpSYN != 0
		if synX != synY {
			return synX
		}
	}
	if x.first != y.first {
		return x.first < y.first
	}
	// Same start (common at ms resolution): the side that sent to the
	// lower port is taken as the client.
	return rx.Dport <= rx.Sport
}

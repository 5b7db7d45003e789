package synth

import (
	"math/rand/v2"
	"net/netip"
	"sort"

	"github.com/mira-project/mira/flow"
)

// sessOpts constrain a new session's addressing.
type sessOpts struct {
	v4only   bool   // no IPv6, no 6in4
	noTunnel bool   // never tunnelled
	sport    uint16 // client port; 0 picks an ephemeral one
}

// plan creates session i (and any session it spawns) starting at t and
// queues it.
func (g *generator) plan(i int, t int64) {
	r := rand.New(rand.NewPCG(uint64(g.cfg.Seed), uint64(i)+1))
	long := i < g.cfg.LongFlows
	var app string
	switch {
	case long:
		app = [...]string{"ssh", "irc", "game-udp"}[i%3]
	case len(g.apps) == 0 || r.Float64() < g.cfg.RandomShare:
		app = "random"
	default:
		x := r.Float64() * g.cum[len(g.cum)-1]
		app = g.apps[min(sort.SearchFloat64s(g.cum, x), len(g.apps)-1)]
	}
	switch app {
	case "smtp":
		g.smtp(r, t)
	case "http":
		g.http(r, t)
	case "mp3-over-http", "video-over-http", "exe-over-http":
		g.download(r, t, app)
	case "ftp":
		g.ftp(r, t)
	case "dns":
		g.dns(r, t)
	case "tls":
		g.tls(r, t)
	case "ssh":
		g.ssh(r, t, long)
	case "bittorrent":
		g.bittorrent(r, t)
	case "bittorrent-dht":
		g.dht(r, t)
	case "edonkey":
		g.edonkey(r, t)
	case "gnutella":
		g.gnutella(r, t)
	case "game-udp":
		g.game(r, t, long)
	case "irc":
		g.irc(r, t, long)
	case "icmp-echo":
		g.icmp(r, t)
	default:
		g.random(r, t)
	}
}

func clientAddr(i int, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	return netip.AddrFrom4([4]byte{10, byte(16 + i>>16), byte(i >> 8), byte(i)})
}

func serverAddr(i int, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0x00, 0, 0, 0, 0, 0, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	return netip.AddrFrom4([4]byte{198, byte(18 + i>>16), byte(i >> 8), byte(i)})
}

func ephemeral(r *rand.Rand) uint16 { return uint16(32768 + r.IntN(28232)) }

// newSession creates a session of the application between a random
// client and server and registers its two truth flows.
func (g *generator) newSession(r *rand.Rand, app, cat string, proto uint8, dport uint16, o sessOpts) *session {
	cfg := &g.cfg
	s := &session{id: g.nextID, proto: proto}
	g.nextID++
	if !o.noTunnel && len(cfg.Tunnels) > 0 && r.Float64() < cfg.TunnelShare {
		s.tunnel = tunnelKinds[cfg.Tunnels[r.IntN(len(cfg.Tunnels))]]
	}
	switch s.tunnel {
	case flow.Tunnel6in4:
		if o.v4only {
			s.tunnel = flow.TunnelNone
		} else {
			s.v6 = true
		}
	case flow.TunnelIPIP, flow.TunnelVXLAN:
	default:
		s.v6 = !o.v4only && r.Float64() < cfg.IPv6Share
	}
	if r.Float64() < cfg.VLANShare {
		s.vlan = cfg.VLANs[r.IntN(len(cfg.VLANs))]
	}
	ci := r.IntN(cfg.Clients) + 1
	for try := 0; ; try++ {
		si := r.IntN(cfg.Servers) + 1
		s.addr = [2]netip.Addr{clientAddr(ci, s.v6), serverAddr(si, s.v6)}
		s.port = [2]uint16{o.sport, dport}
		if proto != 1 && o.sport == 0 {
			s.port[0] = ephemeral(r)
		}
		if g.claim(s) || try > 100 {
			break
		}
	}
	s.mac[0] = [6]byte{0x02, 0x00, 0x5e, byte(ci >> 16), byte(ci >> 8), byte(ci)}
	s.mac[1] = [6]byte{0x00, 0x1b, 0x21, 0x3c, 0x9d, byte(s.vlan)}
	s.ttl = [2]uint8{64, uint8(40 + r.IntN(20))}
	if ci%3 == 0 {
		s.ttl[0] = 128
	}
	s.ipid = [2]uint16{uint16(r.Uint32()), uint16(r.Uint32())}
	s.flowLabel = [2]uint32{r.Uint32() & 0xfffff, r.Uint32() & 0xfffff}
	s.rtt = int64((2 + r.ExpFloat64()*30) * float64(msec))
	s.rtt = min(s.rtt, 400*msec)
	s.straddle = r.Float64() < cfg.StraddleShare
	switch s.tunnel {
	case flow.Tunnel6in4:
		s.outer = [2]netip.Addr{netip.AddrFrom4([4]byte{100, 64, byte(ci >> 8), byte(ci)}), netip.AddrFrom4([4]byte{192, 88, 99, 1})}
	case flow.TunnelIPIP, flow.TunnelGRE:
		s.outer = [2]netip.Addr{netip.AddrFrom4([4]byte{100, 65, byte(ci >> 8), byte(ci)}), netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + r.IntN(250))})}
	case flow.TunnelVXLAN:
		s.outer = [2]netip.Addr{netip.AddrFrom4([4]byte{172, 16, 0, byte(1 + r.IntN(100))}), netip.AddrFrom4([4]byte{172, 16, 1, byte(1 + r.IntN(100))})}
		s.vni = uint32(1000 + r.IntN(100))
		s.vxPort = uint16(49152 + r.IntN(16384))
		s.innerMAC = [2][6]byte{{0x02, 0x42, 0xac, 0x11, byte(ci >> 8), byte(ci)}, {0x02, 0x42, 0xac, 0x12, 0, 1}}
	}
	g.register(s, app, cat)
	return s
}

// claim reserves the session's key; false if another session has it.
func (g *generator) claim(s *session) bool {
	k := sessionKey{s.addr[0], s.addr[1], s.port[0], s.port[1], s.proto, s.vlan}
	if _, ok := g.used[k]; ok {
		return false
	}
	g.used[k] = struct{}{}
	return true
}

// register appends the session's two truth flows.
func (g *generator) register(s *session, app, cat string) {
	for d := range 2 {
		f := TruthFlow{
			Key: flow.Key{Src: s.addr[d], Dst: s.addr[1-d], Sport: s.port[d], Dport: s.port[1-d], Proto: s.proto, VLAN: s.vlan},
			App: app, Category: cat,
			Initiator: d == 0, Session: s.id,
		}
		if s.proto == 1 {
			f.Sport, f.Dport = 0, uint16(8-8*d)<<8
			if s.v6 {
				f.Proto = 58
				f.Dport = uint16(128+d) << 8
			}
		}
		if s.tunnel != flow.TunnelNone {
			f.Tunnel = s.tunnel.String()
			f.TunnelSrc, f.TunnelDst = s.outer[d], s.outer[1-d]
		}
		s.truth[d] = len(g.truth.Flows)
		g.truth.Flows = append(g.truth.Flows, f)
	}
}

// dataSession creates an FTP data connection between the hosts of the
// control session c; with active set the server opens it from port 20.
func (g *generator) dataSession(c *session, active bool, cport, sport uint16) *session {
	s := &session{id: g.nextID, proto: 6, v6: c.v6, vlan: c.vlan, mac: c.mac, ttl: c.ttl,
		ipid: [2]uint16{c.ipid[0] + 100, c.ipid[1] + 100}, flowLabel: c.flowLabel, rtt: c.rtt, straddle: c.straddle}
	g.nextID++
	s.addr = c.addr
	s.port = [2]uint16{cport, sport}
	if active {
		s.addr = [2]netip.Addr{c.addr[1], c.addr[0]}
		s.port = [2]uint16{20, cport}
		s.mac = [2][6]byte{c.mac[1], c.mac[0]}
		s.ttl = [2]uint8{c.ttl[1], c.ttl[0]}
	}
	for !g.claim(s) {
		if active {
			s.port[1]++
		} else {
			s.port[0]++
		}
	}
	g.register(s, "ftp-data", "FTP")
	return s
}

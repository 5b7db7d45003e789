package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"
)

// Agent is an SNMP agent serving a Provider's statistics.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	prov   Provider
	engine *engine
	start  time.Time

	sysName, sysDescr string
	maxMsg            int
	communities       []community
	users             map[string]*usmUser
	targets           []*target

	stats Stats
	salt  atomic.Uint64

	// Request-path state, guarded by mu: the request loop, Handle
	// callers and the notification watcher share the provider and view.
	mu          sync.Mutex
	snap        Snapshot
	haveSnap    bool
	haveIfs     bool
	views       []view // per segment
	built       []bool
	ifs         []ifRow
	ifIdx       []int
	ifr         ifReader
	symIdx      []int
	oidBuf      []uint32
	msgBuf      []byte
	startCacheT time.Time
	startCacheS string
	// The same for miraProbeLastReload.
	reloadCacheT time.Time
	reloadCacheS string
}

type community struct {
	name    []byte
	sources []netip.Prefix
}

// Stats are the agent's own counters (also served in SNMPv2-MIB's snmp
// group, SNMP-MPD-MIB and usmStats).
type Stats struct {
	InPkts, OutPkts                         atomic.Uint64
	InBadVersions                           atomic.Uint64
	InBadCommunityNames, InBadCommunityUses atomic.Uint64
	InASNParseErrs                          atomic.Uint64
	SilentDrops                             atomic.Uint64
	UnknownSecurityModels, InvalidMsgs      atomic.Uint64
	UnknownPDUHandlers, UnknownContexts     atomic.Uint64
	NotificationsSent, NotificationErrors   atomic.Uint64
	// usm holds usmStats 1..6 at index 0..5.
	usm [6]atomic.Uint64
	// parse holds malformed messages by reason.
	parse [numReasons + 1]atomic.Uint64
	// panics counts inputs on which the codec panicked (recovered).
	panics atomic.Uint64
}

const (
	usmUnsupportedSecLevels = iota
	usmNotInTimeWindows
	usmUnknownUserNames
	usmUnknownEngineIDs
	usmWrongDigests
	usmDecryptionErrors
)

const reasonCodec = numReasons // gosnmp rejected (or panicked on) the PDU

// Counters returns the agent's counters by name, for /metrics.
func (a *Agent) Counters() map[string]uint64 {
	s := &a.stats
	m := map[string]uint64{
		"in_pkts": s.InPkts.Load(), "out_pkts": s.OutPkts.Load(),
		"in_bad_versions": s.InBadVersions.Load(), "in_bad_community_names": s.InBadCommunityNames.Load(),
		"in_bad_community_uses": s.InBadCommunityUses.Load(), "in_asn_parse_errs": s.InASNParseErrs.Load(),
		"silent_drops": s.SilentDrops.Load(), "unknown_security_models": s.UnknownSecurityModels.Load(),
		"invalid_msgs": s.InvalidMsgs.Load(), "unknown_pdu_handlers": s.UnknownPDUHandlers.Load(),
		"unknown_contexts":   s.UnknownContexts.Load(),
		"notifications_sent": s.NotificationsSent.Load(), "notification_errors": s.NotificationErrors.Load(),
		"usm_unsupported_sec_levels": s.usm[0].Load(), "usm_not_in_time_windows": s.usm[1].Load(),
		"usm_unknown_user_names": s.usm[2].Load(), "usm_unknown_engine_ids": s.usm[3].Load(),
		"usm_wrong_digests": s.usm[4].Load(), "usm_decryption_errors": s.usm[5].Load(),
	}
	for i := 0; i < numReasons; i++ {
		m["parse_error_"+reasonNames[i]] = s.parse[i].Load()
	}
	m["parse_error_codec"] = s.parse[reasonCodec].Load()
	m["codec_panics"] = s.panics.Load()
	return m
}

// New builds an agent. cfg may be nil (defaults); logger may be nil.
func New(cfg *Config, p Provider, logger *slog.Logger) (*Agent, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, errors.New("snmp agent: nil provider")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: *cfg, log: logger, prov: p, start: time.Now(), users: map[string]*usmUser{}, ifr: newIfReader()}
	eng, err := loadEngine(cfg.EngineID, cfg.StateFile)
	if err != nil {
		return nil, err
	}
	a.engine = eng
	if cfg.StateFile == "" && len(cfg.Users) > 0 {
		logger.Warn("snmp: no state_file: engine boots restart at 1 on every start, so v3 replay protection does not survive restarts")
	}
	a.sysName = cfg.SysName
	if a.sysName == "" {
		a.sysName, _ = os.Hostname()
	}
	a.sysDescr = cfg.SysDescr
	if a.sysDescr == "" {
		a.sysDescr = "MIRA traffic measurement probe"
	}
	a.maxMsg = cfg.MaxMessageSize
	if a.maxMsg == 0 {
		a.maxMsg = 1472
	}
	comms := cfg.Communities
	if len(comms) == 0 && len(cfg.Users) == 0 {
		comms = []Community{{Name: "public", Sources: []string{"127.0.0.0/8", "::1/128"}}}
	}
	for _, c := range comms {
		cm := community{name: []byte(c.Name)}
		for _, s := range c.Sources {
			pfx, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("snmp community %q: %w", c.Name, err)
			}
			cm.sources = append(cm.sources, pfx.Masked())
		}
		a.communities = append(a.communities, cm)
	}
	for _, u := range cfg.Users {
		uu, err := newUSMUser(u, eng.id)
		if err != nil {
			return nil, err
		}
		a.users[u.Name] = uu
	}
	var sb [8]byte
	if _, err := rand.Read(sb[:]); err != nil {
		return nil, err
	}
	a.salt.Store(binary.BigEndian.Uint64(sb[:]))
	for _, t := range cfg.Targets {
		tg, err := a.newTarget(t)
		if err != nil {
			return nil, err
		}
		a.targets = append(a.targets, tg)
	}
	return a, nil
}

// EngineID returns the agent's snmpEngineID.
func (a *Agent) EngineID() []byte { return append([]byte(nil), a.engine.id...) }

// EngineBoots returns snmpEngineBoots.
func (a *Agent) EngineBoots() uint32 { b, _ := a.engine.bootsTime(); return b }

// uptime is sysUpTime in hundredths of a second.
func (a *Agent) uptime() uint32 { return uint32(time.Since(a.start) / (10 * time.Millisecond)) }

// ListenAndServe listens on UDP addr (host:port) and serves until ctx is
// cancelled.
func (a *Agent) ListenAndServe(ctx context.Context, addr string) error {
	return a.Serve(ctx, addr)
}

// Serve listens on UDP addr and serves requests until ctx is cancelled.
// It also runs the notification watcher when targets are configured.
func (a *Agent) Serve(ctx context.Context, addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("snmp agent: %w", err)
	}
	return a.ServeConn(ctx, pc.(*net.UDPConn))
}

// ServeConn serves requests arriving on conn until ctx is cancelled; it
// closes conn.
func (a *Agent) ServeConn(ctx context.Context, conn *net.UDPConn) error {
	a.log.Info("snmp agent listening", "addr", conn.LocalAddr().String(), "engine_id", fmt.Sprintf("%x", a.engine.id))
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var wg sync.WaitGroup
	if len(a.targets) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.watch(ctx)
		}()
	}
	defer wg.Wait()
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			conn.Close()
			return fmt.Errorf("snmp agent: %w", err)
		}
		resp := a.Handle(buf[:n], from)
		if resp == nil {
			continue
		}
		if _, err := conn.WriteToUDPAddrPort(resp, from); err != nil {
			a.log.Debug("snmp send failed", "to", from.String(), "err", err)
			continue
		}
		a.stats.OutPkts.Add(1)
	}
}

// Handle processes one request message received from src and returns
// the message to send back, or nil to send nothing. It is safe for
// concurrent use and never panics.
func (a *Agent) Handle(req []byte, src netip.AddrPort) (resp []byte) {
	a.stats.InPkts.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.beginRequest()
	defer func() {
		if r := recover(); r != nil {
			// gosnmp's codec panicked on this input: count it like any
			// other malformed message.
			a.stats.InASNParseErrs.Add(1)
			a.stats.parse[reasonCodec].Add(1)
			a.stats.panics.Add(1)
			resp = nil
		}
	}()
	var h msgHeader
	if e := parseHeader(req, &h); e != nil {
		a.stats.parse[e.reason].Add(1)
		switch e.reason {
		case reasonBadSecurityModel:
			a.stats.UnknownSecurityModels.Add(1)
		case reasonBadFlags:
			a.stats.InvalidMsgs.Add(1)
		default:
			a.stats.InASNParseErrs.Add(1)
		}
		a.log.Debug("snmp: dropping malformed message", "from", src.String(), "err", e.toError())
		return nil
	}
	switch h.version {
	case 0, 1:
		return a.handleCommunity(req, &h, src)
	case 3:
		return a.handleV3(req, &h, src)
	}
	a.stats.InBadVersions.Add(1)
	a.stats.parse[reasonBadVersion].Add(1)
	return nil
}

func (a *Agent) codecError(src netip.AddrPort, err error) {
	a.stats.InASNParseErrs.Add(1)
	a.stats.parse[reasonCodec].Add(1)
	a.log.Debug("snmp: dropping undecodable message", "from", src.String(), "err", err)
}

func (a *Agent) handleCommunity(req []byte, h *msgHeader, src netip.AddrPort) []byte {
	version := gosnmp.Version1
	if h.version == 1 {
		version = gosnmp.Version2c
	}
	dec := gosnmp.GoSNMP{Version: version}
	pkt, err := dec.UnmarshalTrap(req[:h.msgEnd], false)
	if err != nil {
		a.codecError(src, err)
		return nil
	}
	if !a.communityAllowed(pkt.Community, src.Addr()) {
		a.stats.InBadCommunityNames.Add(1)
		return nil
	}
	out := &gosnmp.SnmpPacket{
		Version:   version,
		Community: pkt.Community,
		PDUType:   gosnmp.GetResponse,
		RequestID: pkt.RequestID,
	}
	if !a.respond(pkt, out, a.maxMsg, nil) {
		return nil
	}
	b, err := a.marshalLimited(out, a.maxMsg, pkt.PDUType == gosnmp.GetBulkRequest, pkt.Variables)
	if err != nil {
		a.stats.SilentDrops.Add(1)
		a.log.Debug("snmp: cannot build response", "to", src.String(), "err", err)
		return nil
	}
	return b
}

func (a *Agent) communityAllowed(name string, addr netip.Addr) bool {
	addr = addr.Unmap()
	ok := false
	for i := range a.communities {
		c := &a.communities[i]
		if subtle.ConstantTimeCompare(c.name, []byte(name)) != 1 {
			continue
		}
		for _, p := range c.sources {
			if p.Contains(addr) {
				ok = true
			}
		}
	}
	return ok
}

// respond fills out's error status and variables for request pkt. It
// returns false when no response should be sent.
func (a *Agent) respond(pkt *gosnmp.SnmpPacket, out *gosnmp.SnmpPacket, maxSize int, forceErr *gosnmp.SNMPError) bool {
	v1 := pkt.Version == gosnmp.Version1
	if forceErr != nil {
		out.Error = *forceErr
		out.Variables = pkt.Variables
		return true
	}
	switch pkt.PDUType {
	case gosnmp.GetRequest, gosnmp.GetNextRequest:
		out.Variables = make([]gosnmp.SnmpPDU, 0, len(pkt.Variables))
		for i, vb := range pkt.Variables {
			var r gosnmp.SnmpPDU
			var ok bool
			if pkt.PDUType == gosnmp.GetRequest {
				r, ok = a.get(vb.Name, v1)
			} else {
				r, ok = a.next(vb.Name, v1)
			}
			if !ok {
				// v1: noSuchName names the first failing binding and
				// returns the request's bindings (RFC 1157 4.1.2).
				out.Error = gosnmp.NoSuchName
				out.ErrorIndex = errIndex(i)
				out.Variables = nullVars(pkt.Variables)
				return true
			}
			out.Variables = append(out.Variables, r)
		}
	case gosnmp.GetBulkRequest:
		if v1 {
			a.stats.InASNParseErrs.Add(1)
			return false
		}
		out.Variables = a.bulk(pkt, maxSize)
	case gosnmp.SetRequest:
		// Read-only agent. v1 has no noAccess: RFC 3584 maps it to
		// noSuchName, as net-snmp does.
		if v1 {
			out.Error = gosnmp.NoSuchName
			a.stats.InBadCommunityUses.Add(1)
		} else {
			out.Error = gosnmp.NoAccess
		}
		if len(pkt.Variables) > 0 {
			out.ErrorIndex = 1
		}
		out.Variables = pkt.Variables
	default:
		a.stats.UnknownPDUHandlers.Add(1)
		return false
	}
	return true
}

func errIndex(i int) uint8 {
	if i+1 > 255 {
		return 255
	}
	return uint8(i + 1)
}

func nullVars(in []gosnmp.SnmpPDU) []gosnmp.SnmpPDU {
	out := make([]gosnmp.SnmpPDU, len(in))
	for i, v := range in {
		out[i] = gosnmp.SnmpPDU{Name: v.Name, Type: gosnmp.Null}
	}
	return out
}

// beginRequest forgets the previous request's values. Caller holds mu.
func (a *Agent) beginRequest() {
	if a.built == nil {
		a.views = make([]view, len(segments))
		a.built = make([]bool, len(segments))
	}
	clear(a.built)
	a.haveSnap, a.haveIfs = false, false
}

// snapshot returns this request's snapshot, taking it on first use.
func (a *Agent) snapshot() *Snapshot {
	if !a.haveSnap {
		a.prov.Snapshot(&a.snap)
		a.haveSnap = true
	}
	return &a.snap
}

// interfaces returns this request's IF-MIB rows, read on first use.
func (a *Agent) interfaces() []ifRow {
	if !a.haveIfs {
		a.ifIdx = captureIfIndexes(a.ifIdx, a.snapshot())
		if len(a.ifIdx) > 0 {
			a.ifs = a.ifr.read(a.ifs, a.ifIdx)
		} else {
			a.ifs = a.ifs[:0]
		}
		a.haveIfs = true
	}
	return a.ifs
}

// seg returns segment k's variables, building them on first use.
func (a *Agent) seg(k int) *view {
	v := &a.views[k]
	if !a.built[k] {
		v.reset()
		segments[k].build(a, v)
		if !v.sorted() {
			v.sortVars()
		}
		a.built[k] = true
	}
	return v
}

// cursor is a position in the served variables: segment and index.
type cursor struct{ s, i int }

// seek returns the first variable after oid, or at oid when inclusive.
func (a *Agent) seek(oid []uint32, inclusive bool) (cursor, bool) {
	for k := range segments {
		p := segments[k].prefix
		switch {
		case hasPrefix(oid, p):
			v := a.seg(k)
			i, eq := v.find(oid)
			if eq && !inclusive {
				i++
			}
			if i < len(v.vars) {
				return cursor{k, i}, true
			}
		case oidCompare(p, oid) > 0:
			if v := a.seg(k); len(v.vars) > 0 {
				return cursor{k, 0}, true
			}
		}
	}
	return cursor{}, false
}

// step moves to the next variable.
func (a *Agent) step(c cursor) (cursor, bool) {
	c.i++
	for c.s < len(segments) {
		if c.i < len(a.seg(c.s).vars) {
			return c, true
		}
		c.s++
		c.i = 0
	}
	return c, false
}

func (a *Agent) typeAt(c cursor) gosnmp.Asn1BER { return a.views[c.s].vars[c.i].typ }

func (a *Agent) pdu(c cursor) gosnmp.SnmpPDU {
	v := &a.views[c.s]
	vb := v.vars[c.i]
	p := gosnmp.SnmpPDU{Name: oidString(v.oid(c.i)), Type: vb.typ}
	switch vb.typ {
	case gosnmp.OctetString, gosnmp.ObjectIdentifier:
		p.Value = vb.str
	case gosnmp.Integer:
		p.Value = int(int32(vb.num))
	case gosnmp.Counter64:
		p.Value = vb.num
	default:
		p.Value = uint32(vb.num)
	}
	return p
}

func (a *Agent) get(name string, v1 bool) (gosnmp.SnmpPDU, bool) {
	var ok bool
	a.oidBuf, ok = parseOIDInto(a.oidBuf, name)
	if !ok {
		if v1 {
			return gosnmp.SnmpPDU{}, false
		}
		return gosnmp.SnmpPDU{Name: name, Type: gosnmp.NoSuchObject}, true
	}
	c, found := a.seek(a.oidBuf, true)
	if found && oidCompare(a.views[c.s].oid(c.i), a.oidBuf) == 0 {
		if v1 && a.typeAt(c) == gosnmp.Counter64 {
			return gosnmp.SnmpPDU{}, false
		}
		return a.pdu(c), true
	}
	if v1 {
		return gosnmp.SnmpPDU{}, false
	}
	if isKnownObject(a.oidBuf) {
		return gosnmp.SnmpPDU{Name: name, Type: gosnmp.NoSuchInstance}, true
	}
	return gosnmp.SnmpPDU{Name: name, Type: gosnmp.NoSuchObject}, true
}

// after returns the first variable after oid, skipping Counter64 for v1.
func (a *Agent) after(oid []uint32, v1 bool) (cursor, bool) {
	c, ok := a.seek(oid, false)
	for ok && v1 && a.typeAt(c) == gosnmp.Counter64 {
		c, ok = a.step(c)
	}
	return c, ok
}

func (a *Agent) next(name string, v1 bool) (gosnmp.SnmpPDU, bool) {
	var ok bool
	a.oidBuf, ok = parseOIDInto(a.oidBuf, name)
	if !ok {
		a.oidBuf = a.oidBuf[:0]
	}
	c, found := a.after(a.oidBuf, v1)
	if !found {
		if v1 {
			return gosnmp.SnmpPDU{}, false
		}
		return gosnmp.SnmpPDU{Name: name, Type: gosnmp.EndOfMibView}, true
	}
	return a.pdu(c), true
}

// maxBulkVars bounds the work of one GETBULK whatever the request asks.
const maxBulkVars = 2048

// bulk answers a GETBULK (RFC 3416 4.2.3), stopping early once the
// response would exceed maxSize.
func (a *Agent) bulk(pkt *gosnmp.SnmpPacket, maxSize int) []gosnmp.SnmpPDU {
	n := int(pkt.NonRepeaters)
	if n > len(pkt.Variables) {
		n = len(pkt.Variables)
	}
	m := int(pkt.MaxRepetitions)
	r := len(pkt.Variables) - n
	if r == 0 {
		m = 0
	}
	out := make([]gosnmp.SnmpPDU, 0, min(n+r*m, maxBulkVars))
	size := 64 // message overhead estimate; marshalLimited trims exactly
	for i := 0; i < n; i++ {
		p, _ := a.next(pkt.Variables[i].Name, false)
		out = append(out, p)
		size += varbindSize(p)
	}
	if r == 0 || m == 0 {
		return out
	}
	type rep struct {
		c     cursor
		ended bool
		name  string
	}
	reps := make([]rep, r)
	for j := range reps {
		var ok bool
		a.oidBuf, ok = parseOIDInto(a.oidBuf, pkt.Variables[n+j].Name)
		if !ok {
			a.oidBuf = a.oidBuf[:0]
		}
		reps[j].name = pkt.Variables[n+j].Name
		reps[j].c, ok = a.seek(a.oidBuf, false)
		reps[j].ended = !ok
	}
	for k := 0; k < m; k++ {
		allEnd := true
		for j := range reps {
			rp := &reps[j]
			var p gosnmp.SnmpPDU
			if rp.ended {
				p = gosnmp.SnmpPDU{Name: rp.name, Type: gosnmp.EndOfMibView}
			} else {
				p = a.pdu(rp.c)
				rp.name = p.Name
				allEnd = false
			}
			size += varbindSize(p)
			if size > maxSize || len(out) >= maxBulkVars {
				return out
			}
			out = append(out, p)
			if !rp.ended {
				var ok bool
				rp.c, ok = a.step(rp.c)
				rp.ended = !ok
			}
		}
		if allEnd {
			break
		}
	}
	return out
}

// varbindSize is the BER size of a variable binding.
func varbindSize(p gosnmp.SnmpPDU) int {
	var oid [128]uint32
	o, _ := parseOIDInto(oid[:0], p.Name)
	vl := 0
	switch p.Type {
	case gosnmp.OctetString:
		switch v := p.Value.(type) {
		case []byte:
			vl = len(v)
		case string:
			vl = len(v)
		}
	case gosnmp.ObjectIdentifier:
		var vo [128]uint32
		s, _ := p.Value.(string)
		x, _ := parseOIDInto(vo[:0], s)
		vl = berOIDLen(x)
	case gosnmp.Integer, gosnmp.Counter32, gosnmp.Gauge32, gosnmp.TimeTicks:
		vl = 5
	case gosnmp.Counter64:
		vl = 9
	}
	return tlvLen(tlvLen(berOIDLen(o)) + tlvLen(vl))
}

// marshalLimited marshals out, keeping it within maxSize: a GETBULK
// response loses trailing bindings; any other becomes tooBig (RFC 3416
// 4.2.1; RFC 1157 keeps the request's bindings for v1).
func (a *Agent) marshalLimited(out *gosnmp.SnmpPacket, maxSize int, isBulk bool, reqVars []gosnmp.SnmpPDU) ([]byte, error) {
	for {
		b, err := out.MarshalMsg()
		if err != nil {
			return nil, err
		}
		if len(b) <= maxSize {
			return b, nil
		}
		if isBulk && len(out.Variables) > 1 {
			excess := len(b) - maxSize
			drop := 1
			for acc := 0; drop < len(out.Variables) && acc < excess; drop++ {
				acc += varbindSize(out.Variables[len(out.Variables)-drop])
			}
			out.Variables = out.Variables[:len(out.Variables)-drop+1]
			if drop > 1 {
				continue
			}
			out.Variables = out.Variables[:len(out.Variables)-1]
			continue
		}
		if out.Error == gosnmp.TooBig {
			return nil, fmt.Errorf("tooBig response of %d octets exceeds %d", len(b), maxSize)
		}
		out.Error = gosnmp.TooBig
		out.ErrorIndex = 0
		if out.Version == gosnmp.Version1 {
			out.Variables = nullVars(reqVars)
		} else {
			out.Variables = nil
		}
	}
}

// ---- SNMPv3 ----

func (a *Agent) handleV3(req []byte, h *msgHeader, src netip.AddrPort) []byte {
	reportable := h.flags&0x04 != 0
	level := h.flags & 0x03
	if len(h.engineID) == 0 || !bytes.Equal(h.engineID, a.engine.id) {
		a.stats.usm[usmUnknownEngineIDs].Add(1)
		if !reportable {
			return nil
		}
		return a.report(h, nil, oidUsmStatsUnknownEngineIDs, a.stats.usm[usmUnknownEngineIDs].Load(), levelNoAuth, plainRequestID(req, h, level))
	}
	u, ok := a.users[string(h.user)]
	if !ok {
		a.stats.usm[usmUnknownUserNames].Add(1)
		if !reportable {
			return nil
		}
		return a.report(h, nil, oidUsmStatsUnknownUserNames, a.stats.usm[usmUnknownUserNames].Load(), levelNoAuth, plainRequestID(req, h, level))
	}
	if level > u.level {
		a.stats.usm[usmUnsupportedSecLevels].Add(1)
		if !reportable {
			return nil
		}
		return a.report(h, nil, oidUsmStatsUnsupportedSecLevels, a.stats.usm[usmUnsupportedSecLevels].Load(), levelNoAuth, plainRequestID(req, h, level))
	}
	// Work on a copy: digest checking and decryption write into it.
	a.msgBuf = append(a.msgBuf[:0], req[:h.msgEnd]...)
	msg := a.msgBuf
	var hh msgHeader
	if e := parseHeader(msg, &hh); e != nil { // re-point slices into the copy
		return nil
	}
	h = &hh
	if level >= levelAuth {
		if !u.checkDigest(msg, h) {
			a.stats.usm[usmWrongDigests].Add(1)
			if !reportable {
				return nil
			}
			return a.report(h, nil, oidUsmStatsWrongDigests, a.stats.usm[usmWrongDigests].Load(), levelNoAuth, 0)
		}
		if !a.engine.inTimeWindow(h.boots, h.time) {
			a.stats.usm[usmNotInTimeWindows].Add(1)
			if !reportable {
				return nil
			}
			// Authenticated, so the manager can trust our boots/time and
			// resynchronise (RFC 3414 3.2 step 7b).
			return a.report(h, u, oidUsmStatsNotInTimeWindows, a.stats.usm[usmNotInTimeWindows].Load(), levelAuth, 0)
		}
	}
	pkt, err := u.dec[level].UnmarshalTrap(msg, true)
	if err != nil {
		if level == levelAuthPriv {
			// Wrong privacy key: the plaintext is garbage. net-snmp drops
			// such messages without a report; so do we.
			a.stats.usm[usmDecryptionErrors].Add(1)
			a.log.Debug("snmp: decryption failed", "from", src.String(), "user", u.name)
			return nil
		}
		a.codecError(src, err)
		return nil
	}
	if pkt.ContextName != "" || (pkt.ContextEngineID != "" && pkt.ContextEngineID != a.engine.idStr) {
		a.stats.UnknownContexts.Add(1)
		if !reportable {
			return nil
		}
		rl := level
		if rl > levelAuth {
			rl = levelAuth
		}
		return a.report(h, u, oidSnmpUnknownContexts, a.stats.UnknownContexts.Load(), rl, pkt.RequestID)
	}
	maxSize := a.maxMsg
	if int(h.maxSize) < maxSize {
		maxSize = int(h.maxSize)
	}
	out := a.v3Packet(h, u, level)
	out.PDUType = gosnmp.GetResponse
	out.RequestID = pkt.RequestID
	out.ContextName = pkt.ContextName
	var force *gosnmp.SNMPError
	if level < u.level {
		// The user is configured for a higher level: like net-snmp's
		// VACM (rouser NAME priv), answer authorizationError.
		e := gosnmp.AuthorizationError
		force = &e
	}
	if !a.respond(pkt, out, maxSize-a.v3Overhead(u, level), force) {
		return nil
	}
	if force != nil {
		out.Variables = pkt.Variables
	}
	b, err := a.marshalLimited(out, maxSize, pkt.PDUType == gosnmp.GetBulkRequest, pkt.Variables)
	if err != nil {
		a.stats.SilentDrops.Add(1)
		a.log.Debug("snmp: cannot build response", "to", src.String(), "err", err)
		return nil
	}
	return b
}

// v3Overhead estimates the header and security parameters of a response.
func (a *Agent) v3Overhead(u *usmUser, level byte) int {
	n := 64 + len(a.engine.id)*2 + len(u.name)
	if level >= levelAuth {
		n += u.auth.macLen
	}
	if level == levelAuthPriv {
		n += 8
	}
	return n
}

// v3Packet prepares a response or report message to the request h.
func (a *Agent) v3Packet(h *msgHeader, u *usmUser, level byte) *gosnmp.SnmpPacket {
	boots, etime := a.engine.bootsTime()
	sp := &gosnmp.UsmSecurityParameters{
		AuthoritativeEngineID:    a.engine.idStr,
		AuthoritativeEngineBoots: boots,
		AuthoritativeEngineTime:  etime,
		UserName:                 string(h.user),
		AuthenticationProtocol:   gosnmp.NoAuth,
		PrivacyProtocol:          gosnmp.NoPriv,
	}
	if u != nil && level >= levelAuth {
		sp.AuthenticationProtocol = u.auth.gosnmp
		sp.SecretKey = u.authKey
		sp.AuthenticationPassphrase = "x" // unused: the key is preset
	}
	if u != nil && level == levelAuthPriv {
		sp.PrivacyProtocol = gosnmp.AES
		sp.PrivacyKey = u.privKey
		sp.PrivacyPassphrase = "x"
		var salt [8]byte
		binary.BigEndian.PutUint64(salt[:], a.salt.Add(1))
		sp.PrivacyParameters = salt[:]
	}
	return &gosnmp.SnmpPacket{
		Version:            gosnmp.Version3,
		MsgFlags:           gosnmp.SnmpV3MsgFlags(level),
		SecurityModel:      gosnmp.UserSecurityModel,
		SecurityParameters: sp,
		MsgID:              uint32(h.msgID),
		MsgMaxSize:         uint32(a.maxMsg),
		ContextEngineID:    a.engine.idStr,
	}
}

// report builds a Report PDU carrying one usmStats (or other) counter.
func (a *Agent) report(h *msgHeader, u *usmUser, oid []uint32, value uint64, level byte, reqID uint32) []byte {
	out := a.v3Packet(h, u, level)
	out.PDUType = gosnmp.Report
	out.RequestID = reqID
	out.Variables = []gosnmp.SnmpPDU{{Name: oidString(append(append([]uint32{}, oid...), 0)), Type: gosnmp.Counter32, Value: uint32(value)}}
	b, err := out.MarshalMsg()
	if err != nil {
		a.stats.SilentDrops.Add(1)
		return nil
	}
	return b
}

// plainRequestID reads the request-id of an unencrypted ScopedPDU, or 0.
func plainRequestID(b []byte, h *msgHeader, level byte) uint32 {
	if level == levelAuthPriv || h.dataOff >= h.msgEnd {
		return 0
	}
	b = b[:h.msgEnd]
	tag, s, _, err := readTLV(b, h.dataOff, "ScopedPDU")
	if err != nil || tag != 0x30 {
		return 0
	}
	_, _, p, err := readOctets(b, s, "contextEngineID")
	if err != nil {
		return 0
	}
	_, _, p, err = readOctets(b, p, "contextName")
	if err != nil {
		return 0
	}
	_, ps, _, err := readTLV(b, p, "PDU")
	if err != nil {
		return 0
	}
	id, _, err := readInt(b, ps, "request-id")
	if err != nil {
		return 0
	}
	return uint32(id)
}

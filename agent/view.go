package agent

import (
	"cmp"
	"slices"
	"sort"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/mira-project/mira/mib"
)

// varb is one variable of the view. OIDs live in the view's arena.
type varb struct {
	off, n int32
	typ    gosnmp.Asn1BER
	num    uint64
	str    string
}

// view is every variable the agent serves at one moment, in OID order.
type view struct {
	arena []uint32
	vars  []varb
	idx   []uint32 // scratch index
}

func (v *view) reset() {
	v.arena = v.arena[:0]
	v.vars = v.vars[:0]
}

func (v *view) oid(i int) []uint32 {
	b := v.vars[i]
	return v.arena[b.off : b.off+b.n]
}

func (v *view) put(base []uint32, col uint32, idx []uint32, typ gosnmp.Asn1BER, num uint64, str string) {
	off := len(v.arena)
	v.arena = append(v.arena, base...)
	if col != 0 {
		v.arena = append(v.arena, col)
	}
	v.arena = append(v.arena, idx...)
	v.vars = append(v.vars, varb{off: int32(off), n: int32(len(v.arena) - off), typ: typ, num: num, str: str})
}

var zeroIdx = []uint32{0}

func (v *view) scalar(oid []uint32, typ gosnmp.Asn1BER, num uint64, str string) {
	v.put(oid, 0, zeroIdx, typ, num, str)
}

func (v *view) one(i int) []uint32 {
	v.idx = append(v.idx[:0], uint32(i))
	return v.idx
}

func (v *view) two(i, j int) []uint32 {
	v.idx = append(v.idx[:0], uint32(i), uint32(j))
	return v.idx
}

// sorted reports whether the view is in strictly increasing OID order.
func (v *view) sorted() bool {
	for i := 1; i < len(v.vars); i++ {
		if oidCompare(v.oid(i-1), v.oid(i)) >= 0 {
			return false
		}
	}
	return true
}

func (v *view) sortVars() {
	sort.Slice(v.vars, func(i, j int) bool { return oidCompare(v.oid(i), v.oid(j)) < 0 })
}

// find returns the position of the first variable >= oid and whether it
// is equal.
func (v *view) find(oid []uint32) (int, bool) {
	i := sort.Search(len(v.vars), func(i int) bool { return oidCompare(v.oid(i), oid) >= 0 })
	return i, i < len(v.vars) && oidCompare(v.oid(i), oid) == 0
}

// OIDs of standard MIB objects the agent serves.
var (
	oidSystem      = []uint32{1, 3, 6, 1, 2, 1, 1}
	oidSysDescr    = []uint32{1, 3, 6, 1, 2, 1, 1, 1}
	oidSysObjectID = []uint32{1, 3, 6, 1, 2, 1, 1, 2}
	oidSysUpTime   = []uint32{1, 3, 6, 1, 2, 1, 1, 3}
	oidSysContact  = []uint32{1, 3, 6, 1, 2, 1, 1, 4}
	oidSysName     = []uint32{1, 3, 6, 1, 2, 1, 1, 5}
	oidSysLocation = []uint32{1, 3, 6, 1, 2, 1, 1, 6}
	oidSysServices = []uint32{1, 3, 6, 1, 2, 1, 1, 7}
	oidSysORLast   = []uint32{1, 3, 6, 1, 2, 1, 1, 8}
	oidSysOREntry  = []uint32{1, 3, 6, 1, 2, 1, 1, 9, 1}
	oidIfNumber    = []uint32{1, 3, 6, 1, 2, 1, 2, 1}
	oidIfEntry     = []uint32{1, 3, 6, 1, 2, 1, 2, 2, 1}
	oidSNMP        = []uint32{1, 3, 6, 1, 2, 1, 11}
	oidIfXEntry    = []uint32{1, 3, 6, 1, 2, 1, 31, 1, 1, 1}
	oidEngine      = []uint32{1, 3, 6, 1, 6, 3, 10, 2, 1}
	oidMPDStats    = []uint32{1, 3, 6, 1, 6, 3, 11, 2, 1}
	oidUsmStats    = []uint32{1, 3, 6, 1, 6, 3, 15, 1, 1}
	oidSnmpTrapOID = []uint32{1, 3, 6, 1, 6, 3, 1, 1, 4, 1}

	oidUsmStatsUnsupportedSecLevels = []uint32{1, 3, 6, 1, 6, 3, 15, 1, 1, 1}
	oidUsmStatsNotInTimeWindows     = []uint32{1, 3, 6, 1, 6, 3, 15, 1, 1, 2}
	oidUsmStatsUnknownUserNames     = []uint32{1, 3, 6, 1, 6, 3, 15, 1, 1, 3}
	oidUsmStatsUnknownEngineIDs     = []uint32{1, 3, 6, 1, 6, 3, 15, 1, 1, 4}
	oidUsmStatsWrongDigests         = []uint32{1, 3, 6, 1, 6, 3, 15, 1, 1, 5}
	oidUsmStatsDecryptionErrors     = []uint32{1, 3, 6, 1, 6, 3, 15, 1, 1, 6}
	oidSnmpUnknownContexts          = []uint32{1, 3, 6, 1, 6, 3, 12, 1, 5}
)

// sysOR rows: the MIB modules this agent implements.
var sysORRows = []struct{ id, descr string }{
	{".1.3.6.1.6.3.1", "The MIB module for SNMP entities (SNMPv2-MIB)"},
	{".1.3.6.1.2.1.31", "The MIB module to describe generic objects for network interface sub-layers (IF-MIB)"},
	{".1.3.6.1.6.3.10.3.1.1", "The SNMP Management Architecture MIB (SNMP-FRAMEWORK-MIB)"},
	{".1.3.6.1.6.3.11.3.1.1", "The MIB for Message Processing and Dispatching (SNMP-MPD-MIB)"},
	{".1.3.6.1.6.3.15.2.1.1", "The management information definitions for the SNMP User-based Security Model (SNMP-USER-BASED-SM-MIB)"},
	{"." + mib.MiraProbeMIB, "Statistics of a MIRA traffic measurement probe (MIRA-PROBE-MIB)"},
}

// Parsed OIDs of MIRA-PROBE-MIB objects.
var (
	mProbeName      = mib.MustOID(mib.MiraProbeName)
	mProbeVersion   = mib.MustOID(mib.MiraProbeVersion)
	mProbeDomain    = mib.MustOID(mib.MiraProbeObservationDomain)
	mProbeStart     = mib.MustOID(mib.MiraProbeStartTime)
	mCaptureEntry   = mib.MustOID(mib.MiraCaptureEntry)
	mDecErrEntry    = mib.MustOID(mib.MiraDecodeErrorEntry)
	mRegState       = mib.MustOID(mib.MiraRegulationState)
	mSamplingRate   = mib.MustOID(mib.MiraSamplingRate)
	mOverloadEvents = mib.MustOID(mib.MiraOverloadEvents)
	mQueueEntry     = mib.MustOID(mib.MiraQueueEntry)
	mFlowsActive    = mib.MustOID(mib.MiraFlowsActive)
	mFlowsCapacity  = mib.MustOID(mib.MiraFlowsCapacity)
	mFlowsCreated   = mib.MustOID(mib.MiraFlowsCreated)
	mFlowsIdle      = mib.MustOID(mib.MiraFlowsExpiredIdle)
	mFlowsActiveTO  = mib.MustOID(mib.MiraFlowsExpiredActive)
	mFlowsEnd       = mib.MustOID(mib.MiraFlowsExpiredEnd)
	mFlowsForced    = mib.MustOID(mib.MiraFlowsExpiredForced)
	mFlowsEvicted   = mib.MustOID(mib.MiraFlowsEvicted)
	mSymptomEntry   = mib.MustOID(mib.MiraSymptomEntry)
	mExporterEntry  = mib.MustOID(mib.MiraExporterEntry)
)

// objectOIDs lists the OIDs of every accessible object type the agent
// serves (scalars and columns, without instance), sorted. A GET for an
// instance under one of them that does not exist is noSuchInstance;
// anything else is noSuchObject.
var objectOIDs = func() [][]uint32 {
	var out [][]uint32
	add := func(base []uint32, subs ...uint32) {
		for _, s := range subs {
			out = append(out, append(append([]uint32{}, base...), s))
		}
	}
	add(oidSystem, 1, 2, 3, 4, 5, 6, 7, 8)
	add(oidSysOREntry, 2, 3, 4)
	add([]uint32{1, 3, 6, 1, 2, 1, 2}, 1)
	add(oidIfEntry, ifTableCols...)
	add(oidSNMP, 1, 3, 4, 5, 6, 30, 31, 32)
	add(oidIfXEntry, ifXTableCols...)
	add(oidEngine, 1, 2, 3, 4)
	add(oidMPDStats, 1, 2, 3)
	add([]uint32{1, 3, 6, 1, 6, 3, 12, 1}, 4, 5)
	add(oidUsmStats, 1, 2, 3, 4, 5, 6)
	for _, o := range mib.Objects {
		if (o.Kind == mib.KindScalar || o.Kind == mib.KindColumn) && o.Access != "not-accessible" {
			out = append(out, mib.MustOID(o.OID))
		}
	}
	sort.Slice(out, func(i, j int) bool { return oidCompare(out[i], out[j]) < 0 })
	return out
}()

// isKnownObject reports whether oid is an instance under an object type
// the agent serves.
func isKnownObject(oid []uint32) bool {
	i := sort.Search(len(objectOIDs), func(i int) bool { return oidCompare(objectOIDs[i], oid) > 0 })
	return i > 0 && hasPrefix(oid, objectOIDs[i-1]) && len(oid) > len(objectOIDs[i-1])
}

var ifTableCols = []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 19, 20}
var ifXTableCols = []uint32{1, 2, 6, 7, 8, 10, 11, 12, 14, 15, 16, 17, 18, 19}

// dateAndTime encodes t as an 11-octet SNMPv2-TC DateAndTime.
func dateAndTime(t time.Time) string {
	if t.IsZero() {
		return string([]byte{0, 0, 1, 1, 0, 0, 0, 0}) // "0-1-1,0:0:0.0": unknown
	}
	_, off := t.Zone()
	sign := byte('+')
	if off < 0 {
		sign = '-'
		off = -off
	}
	y := t.Year()
	return string([]byte{byte(y >> 8), byte(y), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()),
		byte(t.Second()), byte(t.Nanosecond() / 100_000_000), sign, byte(off / 3600), byte(off % 3600 / 60)})
}

const (
	str = gosnmp.OctetString
	i32 = gosnmp.Integer
	g32 = gosnmp.Gauge32
	c32 = gosnmp.Counter32
	c64 = gosnmp.Counter64
	tt  = gosnmp.TimeTicks
)

// segment is a subtree the agent serves, built on demand once per
// request so a GET of sysUpTime never pays for the MIRA tables. Prefixes
// are disjoint and in OID order.
type segment struct {
	prefix []uint32
	build  func(a *Agent, v *view)
}

var segments = []segment{
	{oidSystem, (*Agent).buildSystem},
	{[]uint32{1, 3, 6, 1, 2, 1, 2}, (*Agent).buildInterfaces},
	{oidSNMP, (*Agent).buildSNMP},
	{[]uint32{1, 3, 6, 1, 2, 1, 31}, (*Agent).buildIfX},
	{mib.MustOID(mib.MiraIdentity), (*Agent).buildMIRAIdentity},
	{mib.MustOID(mib.MiraCapture), (*Agent).buildMIRACapture},
	{mib.MustOID(mib.MiraPipeline), (*Agent).buildMIRAPipeline},
	{mib.MustOID(mib.MiraFlows), (*Agent).buildMIRAFlows},
	{mib.MustOID(mib.MiraSymptoms), (*Agent).buildMIRASymptoms},
	{mib.MustOID(mib.MiraExport), (*Agent).buildMIRAExport},
	{[]uint32{1, 3, 6, 1, 6, 3, 10}, (*Agent).buildEngine},
	{[]uint32{1, 3, 6, 1, 6, 3, 11}, (*Agent).buildMPD},
	{[]uint32{1, 3, 6, 1, 6, 3, 12}, (*Agent).buildTarget},
	{[]uint32{1, 3, 6, 1, 6, 3, 15}, (*Agent).buildUSM},
}

func (a *Agent) buildSystem(v *view) {
	up := uint64(a.uptime())
	v.scalar(oidSysDescr, str, 0, a.sysDescr)
	v.scalar(oidSysObjectID, gosnmp.ObjectIdentifier, 0, "."+mib.MiraProbeMIB)
	v.scalar(oidSysUpTime, tt, up, "")
	v.scalar(oidSysContact, str, 0, a.cfg.SysContact)
	v.scalar(oidSysName, str, 0, a.sysName)
	v.scalar(oidSysLocation, str, 0, a.cfg.SysLocation)
	v.scalar(oidSysServices, i32, 72, "") // applications + end-to-end
	v.scalar(oidSysORLast, tt, 0, "")
	for c := uint32(2); c <= 4; c++ {
		for i, r := range sysORRows {
			switch c {
			case 2:
				v.put(oidSysOREntry, c, v.one(i+1), gosnmp.ObjectIdentifier, 0, r.id)
			case 3:
				v.put(oidSysOREntry, c, v.one(i+1), str, 0, r.descr)
			case 4:
				v.put(oidSysOREntry, c, v.one(i+1), tt, 0, "")
			}
		}
	}
}

func (a *Agent) buildInterfaces(v *view) {
	ifs := a.interfaces()
	v.scalar(oidIfNumber, i32, uint64(len(ifs)), "")
	for _, c := range ifTableCols {
		for i := range ifs {
			r := &ifs[i]
			idx := v.one(r.Index)
			switch c {
			case 1:
				v.put(oidIfEntry, c, idx, i32, uint64(r.Index), "")
			case 2:
				v.put(oidIfEntry, c, idx, str, 0, r.Name)
			case 3:
				v.put(oidIfEntry, c, idx, i32, uint64(r.Type), "")
			case 4:
				v.put(oidIfEntry, c, idx, i32, uint64(r.MTU), "")
			case 5:
				sp := r.SpeedBPS
				if sp > 0xffffffff {
					sp = 0xffffffff
				}
				v.put(oidIfEntry, c, idx, g32, sp, "")
			case 6:
				v.put(oidIfEntry, c, idx, str, 0, r.PhysAddress)
			case 7:
				v.put(oidIfEntry, c, idx, i32, uint64(r.AdminStatus), "")
			case 8:
				v.put(oidIfEntry, c, idx, i32, uint64(r.OperStatus), "")
			case 9:
				v.put(oidIfEntry, c, idx, tt, 0, "")
			case 10:
				v.put(oidIfEntry, c, idx, c32, uint64(uint32(r.InOctets)), "")
			case 11:
				v.put(oidIfEntry, c, idx, c32, uint64(uint32(r.InUcast)), "")
			case 13:
				v.put(oidIfEntry, c, idx, c32, uint64(uint32(r.InDiscards)), "")
			case 14:
				v.put(oidIfEntry, c, idx, c32, uint64(uint32(r.InErrors)), "")
			case 15:
				v.put(oidIfEntry, c, idx, c32, uint64(uint32(r.InUnknownProtos)), "")
			case 16:
				v.put(oidIfEntry, c, idx, c32, uint64(uint32(r.OutOctets)), "")
			case 17:
				v.put(oidIfEntry, c, idx, c32, uint64(uint32(r.OutUcast)), "")
			case 19:
				v.put(oidIfEntry, c, idx, c32, uint64(uint32(r.OutDiscards)), "")
			case 20:
				v.put(oidIfEntry, c, idx, c32, uint64(uint32(r.OutErrors)), "")
			}
		}
	}
}

func (a *Agent) buildSNMP(v *view) {
	st := &a.stats
	snmpScalar := func(sub uint32, typ gosnmp.Asn1BER, n uint64) {
		v.put(oidSNMP, sub, zeroIdx, typ, n, "")
	}
	snmpScalar(1, c32, uint64(uint32(st.InPkts.Load())))
	snmpScalar(3, c32, uint64(uint32(st.InBadVersions.Load())))
	snmpScalar(4, c32, uint64(uint32(st.InBadCommunityNames.Load())))
	snmpScalar(5, c32, uint64(uint32(st.InBadCommunityUses.Load())))
	snmpScalar(6, c32, uint64(uint32(st.InASNParseErrs.Load())))
	snmpScalar(30, i32, 2) // snmpEnableAuthenTraps: disabled
	snmpScalar(31, c32, uint64(uint32(st.SilentDrops.Load())))
	snmpScalar(32, c32, 0)
}

func (a *Agent) buildIfX(v *view) {
	ifs := a.interfaces()
	for _, c := range ifXTableCols {
		for i := range ifs {
			r := &ifs[i]
			idx := v.one(r.Index)
			switch c {
			case 1:
				v.put(oidIfXEntry, c, idx, str, 0, r.Name)
			case 2:
				v.put(oidIfXEntry, c, idx, c32, uint64(uint32(r.InMulticast)), "")
			case 6:
				v.put(oidIfXEntry, c, idx, c64, r.InOctets, "")
			case 7:
				v.put(oidIfXEntry, c, idx, c64, r.InUcast, "")
			case 8:
				v.put(oidIfXEntry, c, idx, c64, r.InMulticast, "")
			case 10:
				v.put(oidIfXEntry, c, idx, c64, r.OutOctets, "")
			case 11:
				v.put(oidIfXEntry, c, idx, c64, r.OutUcast, "")
			case 12:
				v.put(oidIfXEntry, c, idx, c64, r.OutMulticast, "")
			case 14:
				v.put(oidIfXEntry, c, idx, i32, 2, "") // ifLinkUpDownTrapEnable: disabled
			case 15:
				v.put(oidIfXEntry, c, idx, g32, r.SpeedBPS/1_000_000, "")
			case 16:
				v.put(oidIfXEntry, c, idx, i32, boolInt(r.Promisc), "")
			case 17:
				v.put(oidIfXEntry, c, idx, i32, boolInt(r.Type == 6), "")
			case 18:
				v.put(oidIfXEntry, c, idx, str, 0, r.Alias)
			case 19:
				v.put(oidIfXEntry, c, idx, tt, 0, "")
			}
		}
	}
}

func (a *Agent) buildMIRAIdentity(v *view) {
	s := a.snapshot()
	v.scalar(mProbeName, str, 0, s.Name)
	v.scalar(mProbeVersion, str, 0, s.Version)
	v.scalar(mProbeDomain, g32, uint64(s.ObservationDomain), "")
	v.scalar(mProbeStart, str, 0, a.startTimeStr(s.StartTime))
}

func (a *Agent) buildMIRACapture(v *view) {
	s := a.snapshot()
	for c := uint32(2); c <= 8; c++ {
		for i := range s.Interfaces {
			ci := &s.Interfaces[i]
			idx := v.one(i + 1)
			switch c {
			case 2:
				v.put(mCaptureEntry, c, idx, str, 0, ci.Name)
			case 3:
				v.put(mCaptureEntry, c, idx, i32, uint64(ci.IfIndex), "")
			case 4:
				v.put(mCaptureEntry, c, idx, g32, uint64(ci.LinkType), "")
			case 5:
				v.put(mCaptureEntry, c, idx, c64, ci.Packets, "")
			case 6:
				v.put(mCaptureEntry, c, idx, c64, ci.Octets, "")
			case 7:
				v.put(mCaptureEntry, c, idx, c64, ci.Drops, "")
			case 8:
				var t uint64
				for _, d := range ci.DecodeErrors {
					t += d.Count
				}
				v.put(mCaptureEntry, c, idx, c64, t, "")
			}
		}
	}
	for c := uint32(2); c <= 3; c++ {
		for i := range s.Interfaces {
			for j, d := range s.Interfaces[i].DecodeErrors {
				idx := v.two(i+1, j+1)
				if c == 2 {
					v.put(mDecErrEntry, c, idx, str, 0, d.Reason)
				} else {
					v.put(mDecErrEntry, c, idx, c64, d.Count, "")
				}
			}
		}
	}
}

func (a *Agent) buildMIRAPipeline(v *view) {
	s := a.snapshot()
	p := &s.Pipeline
	rs := p.RegulationState
	if rs != RegulationSampling {
		rs = RegulationNormal
	}
	rate := p.SamplingRate
	if rate == 0 {
		rate = 1
	}
	v.scalar(mRegState, i32, uint64(rs), "")
	v.scalar(mSamplingRate, g32, uint64(rate), "")
	v.scalar(mOverloadEvents, c64, p.OverloadEvents, "")
	for c := uint32(2); c <= 5; c++ {
		for i := range p.Queues {
			q := &p.Queues[i]
			idx := v.one(i + 1)
			switch c {
			case 2:
				v.put(mQueueEntry, c, idx, str, 0, q.Name)
			case 3:
				v.put(mQueueEntry, c, idx, g32, uint64(q.Depth), "")
			case 4:
				v.put(mQueueEntry, c, idx, g32, uint64(q.Capacity), "")
			case 5:
				v.put(mQueueEntry, c, idx, c64, q.Drops, "")
			}
		}
	}
}

func (a *Agent) buildMIRAFlows(v *view) {
	s := a.snapshot()
	f := &s.Flows
	v.scalar(mFlowsActive, g32, uint64(f.Active), "")
	v.scalar(mFlowsCapacity, g32, uint64(f.Capacity), "")
	v.scalar(mFlowsCreated, c64, f.Created, "")
	v.scalar(mFlowsIdle, c64, f.ExpiredIdle, "")
	v.scalar(mFlowsActiveTO, c64, f.ExpiredActive, "")
	v.scalar(mFlowsEnd, c64, f.ExpiredEnd, "")
	v.scalar(mFlowsForced, c64, f.ExpiredForced, "")
	v.scalar(mFlowsEvicted, c64, f.Evicted, "")
}

func (a *Agent) buildMIRASymptoms(v *view) {
	s := a.snapshot()
	syms := a.sortedSymptoms(s.Symptoms)
	for c := uint32(2); c <= 5; c++ {
		for _, k := range syms {
			sy := &s.Symptoms[k]
			idx := v.one(int(sy.ID))
			switch c {
			case 2:
				v.put(mSymptomEntry, c, idx, str, 0, sy.Name)
			case 3:
				v.put(mSymptomEntry, c, idx, c64, sy.Occurrences, "")
			case 4:
				v.put(mSymptomEntry, c, idx, c64, sy.Flows, "")
			case 5:
				v.put(mSymptomEntry, c, idx, c64, sy.BytesScanned, "")
			}
		}
	}
}

func (a *Agent) buildMIRAExport(v *view) {
	s := a.snapshot()
	for c := uint32(2); c <= 9; c++ {
		for i := range s.Exporters {
			e := &s.Exporters[i]
			idx := v.one(i + 1)
			switch c {
			case 2:
				v.put(mExporterEntry, c, idx, str, 0, e.Address)
			case 3:
				v.put(mExporterEntry, c, idx, i32, uint64(e.Transport), "")
			case 4:
				v.put(mExporterEntry, c, idx, i32, uint64(e.State), "")
			case 5:
				v.put(mExporterEntry, c, idx, c64, e.Records, "")
			case 6:
				v.put(mExporterEntry, c, idx, c64, e.Messages, "")
			case 7:
				v.put(mExporterEntry, c, idx, c64, e.Templates, "")
			case 8:
				v.put(mExporterEntry, c, idx, g32, uint64(e.SpoolDepth), "")
			case 9:
				v.put(mExporterEntry, c, idx, str, 0, e.LastError)
			}
		}
	}
}

func (a *Agent) buildEngine(v *view) {
	boots, etime := a.engine.bootsTime()
	v.put(oidEngine, 1, zeroIdx, str, 0, a.engine.idStr)
	v.put(oidEngine, 2, zeroIdx, i32, uint64(boots), "")
	v.put(oidEngine, 3, zeroIdx, i32, uint64(etime), "")
	v.put(oidEngine, 4, zeroIdx, i32, uint64(a.maxMsg), "")
}

func (a *Agent) buildMPD(v *view) {
	st := &a.stats
	v.put(oidMPDStats, 1, zeroIdx, c32, uint64(uint32(st.UnknownSecurityModels.Load())), "")
	v.put(oidMPDStats, 2, zeroIdx, c32, uint64(uint32(st.InvalidMsgs.Load())), "")
	v.put(oidMPDStats, 3, zeroIdx, c32, uint64(uint32(st.UnknownPDUHandlers.Load())), "")
}

func (a *Agent) buildTarget(v *view) {
	st := &a.stats
	v.put([]uint32{1, 3, 6, 1, 6, 3, 12, 1}, 4, zeroIdx, c32, 0, "")
	v.put([]uint32{1, 3, 6, 1, 6, 3, 12, 1}, 5, zeroIdx, c32, uint64(uint32(st.UnknownContexts.Load())), "")
}

func (a *Agent) buildUSM(v *view) {
	st := &a.stats
	for i := 0; i < 6; i++ {
		v.put(oidUsmStats, uint32(i+1), zeroIdx, c32, uint64(uint32(st.usm[i].Load())), "")
	}
}

func boolInt(b bool) uint64 {
	if b {
		return 1
	}
	return 2
}

func (a *Agent) startTimeStr(t time.Time) string {
	if t.IsZero() {
		t = a.start
	}
	if !t.Equal(a.startCacheT) {
		a.startCacheT = t
		a.startCacheS = dateAndTime(t)
	}
	return a.startCacheS
}

// sortedSymptoms returns the positions of symptoms with a valid ID in
// increasing ID order, dropping duplicate IDs.
func (a *Agent) sortedSymptoms(s []Symptom) []int {
	a.symIdx = a.symIdx[:0]
	for i := range s {
		if s[i].ID > 0 {
			a.symIdx = append(a.symIdx, i)
		}
	}
	slices.SortStableFunc(a.symIdx, func(i, j int) int { return cmp.Compare(s[i].ID, s[j].ID) })
	out := a.symIdx[:0]
	var last uint32
	for n, k := range a.symIdx {
		if n > 0 && s[k].ID == last {
			continue
		}
		last = s[k].ID
		out = append(out, k)
	}
	return out
}

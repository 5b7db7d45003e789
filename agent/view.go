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
	oidSnmpUnknownContexts          = []uint32{1, 3, 6, 1, 6, 3, 12, 1, 5}
)

// sysORRow is a row of sysORTable: a MIB module this agent implements.
type sysORRow struct{ id, descr string }

var sysORRows = []sysORRow{
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
	mReloads        = mib.MustOID(mib.MiraProbeReloads)
	mReloadsRefused = mib.MustOID(mib.MiraProbeReloadsRefused)
	mLastReload     = mib.MustOID(mib.MiraProbeLastReload)
	mCaptureEntry   = mib.MustOID(mib.MiraCaptureEntry)
	mDecErrEntry    = mib.MustOID(mib.MiraDecodeErrorEntry)
	mRegState       = mib.MustOID(mib.MiraRegulationState)
	mSamplingRate   = mib.MustOID(mib.MiraSamplingRate)
	mOverloadEvents = mib.MustOID(mib.MiraOverloadEvents)
	mSelOutOfScope  = mib.MustOID(mib.MiraSelOutOfScope)
	mSelUnsampled   = mib.MustOID(mib.MiraSelUnsampled)
	mRegulatedOut   = mib.MustOID(mib.MiraRegulatedOut)
	mRegChanges     = mib.MustOID(mib.MiraRegulationChanges)
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
	add(oidSysOREntry, columnSubs(sysORColumns)...)
	add([]uint32{1, 3, 6, 1, 2, 1, 2}, 1)
	add(oidIfEntry, columnSubs(ifColumns)...)
	add(oidSNMP, 1, 3, 4, 5, 6, 30, 31, 32)
	add(oidIfXEntry, columnSubs(ifXColumns)...)
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

// column is one column of a conceptual table whose rows are R: its
// sub-identifier under the table's entry, its SMI type and its value in
// a row, num for the numeric types (a Counter32 is taken modulo 2^32)
// and text for OCTET STRING and OBJECT IDENTIFIER. A column with
// neither always holds zero. The funcs capture nothing, so building a
// table allocates nothing.
type column[R any] struct {
	sub  uint32
	typ  gosnmp.Asn1BER
	num  func(*R) uint64
	text func(*R) string
}

func numCol[R any](sub uint32, typ gosnmp.Asn1BER, f func(*R) uint64) column[R] {
	return column[R]{sub: sub, typ: typ, num: f}
}

func strCol[R any](sub uint32, f func(*R) string) column[R] {
	return column[R]{sub: sub, typ: str, text: f}
}

// columnSubs returns the sub-identifiers of cols.
func columnSubs[R any](cols []column[R]) []uint32 {
	out := make([]uint32, len(cols))
	for i := range cols {
		out[i] = cols[i].sub
	}
	return out
}

// putColumn adds column c of the table under entry for rows 0 to n-1:
// row(k) returns row k and its index.
func putColumn[R any](v *view, entry []uint32, c *column[R], n int, row func(k int) (*R, []uint32)) {
	for k := 0; k < n; k++ {
		r, idx := row(k)
		var num uint64
		var text string
		if c.num != nil {
			num = c.num(r)
			if c.typ == c32 {
				num = uint64(uint32(num))
			}
		}
		if c.text != nil {
			text = c.text(r)
		}
		v.put(entry, c.sub, idx, c.typ, num, text)
	}
}

// putTable adds the table under entry column by column, the order of a
// walk (rows must come in index order).
func putTable[R any](v *view, entry []uint32, cols []column[R], n int, row func(k int) (*R, []uint32)) {
	for i := range cols {
		putColumn(v, entry, &cols[i], n, row)
	}
}

// The columns of each table the agent serves.
var (
	sysORColumns = []column[sysORRow]{
		{sub: 2, typ: gosnmp.ObjectIdentifier, text: func(r *sysORRow) string { return r.id }},
		strCol(3, func(r *sysORRow) string { return r.descr }),
		{sub: 4, typ: tt}, // sysORUpTime: there since the agent started
	}

	ifColumns = []column[ifRow]{
		numCol(1, i32, func(r *ifRow) uint64 { return uint64(r.Index) }),
		strCol(2, func(r *ifRow) string { return r.Name }),
		numCol(3, i32, func(r *ifRow) uint64 { return uint64(r.Type) }),
		numCol(4, i32, func(r *ifRow) uint64 { return uint64(r.MTU) }),
		numCol(5, g32, func(r *ifRow) uint64 { return min(r.SpeedBPS, 0xffffffff) }),
		strCol(6, func(r *ifRow) string { return r.PhysAddress }),
		numCol(7, i32, func(r *ifRow) uint64 { return uint64(r.AdminStatus) }),
		numCol(8, i32, func(r *ifRow) uint64 { return uint64(r.OperStatus) }),
		{sub: 9, typ: tt}, // ifLastChange
		numCol(10, c32, func(r *ifRow) uint64 { return r.InOctets }),
		numCol(11, c32, func(r *ifRow) uint64 { return r.InUcast }),
		numCol(13, c32, func(r *ifRow) uint64 { return r.InDiscards }),
		numCol(14, c32, func(r *ifRow) uint64 { return r.InErrors }),
		numCol(15, c32, func(r *ifRow) uint64 { return r.InUnknownProtos }),
		numCol(16, c32, func(r *ifRow) uint64 { return r.OutOctets }),
		numCol(17, c32, func(r *ifRow) uint64 { return r.OutUcast }),
		numCol(19, c32, func(r *ifRow) uint64 { return r.OutDiscards }),
		numCol(20, c32, func(r *ifRow) uint64 { return r.OutErrors }),
	}

	ifXColumns = []column[ifRow]{
		strCol(1, func(r *ifRow) string { return r.Name }),
		numCol(2, c32, func(r *ifRow) uint64 { return r.InMulticast }),
		numCol(6, c64, func(r *ifRow) uint64 { return r.InOctets }),
		numCol(7, c64, func(r *ifRow) uint64 { return r.InUcast }),
		numCol(8, c64, func(r *ifRow) uint64 { return r.InMulticast }),
		numCol(10, c64, func(r *ifRow) uint64 { return r.OutOctets }),
		numCol(11, c64, func(r *ifRow) uint64 { return r.OutUcast }),
		numCol(12, c64, func(r *ifRow) uint64 { return r.OutMulticast }),
		numCol(14, i32, func(*ifRow) uint64 { return 2 }), // ifLinkUpDownTrapEnable: disabled
		numCol(15, g32, func(r *ifRow) uint64 { return r.SpeedBPS / 1_000_000 }),
		numCol(16, i32, func(r *ifRow) uint64 { return boolInt(r.Promisc) }),
		numCol(17, i32, func(r *ifRow) uint64 { return boolInt(r.Type == 6) }), // ifConnectorPresent
		strCol(18, func(r *ifRow) string { return r.Alias }),
		{sub: 19, typ: tt}, // ifCounterDiscontinuityTime
	}

	captureColumns = []column[CaptureInterface]{
		strCol(2, func(r *CaptureInterface) string { return r.Name }),
		numCol(3, i32, func(r *CaptureInterface) uint64 { return uint64(r.IfIndex) }),
		numCol(4, g32, func(r *CaptureInterface) uint64 { return uint64(r.LinkType) }),
		numCol(5, c64, func(r *CaptureInterface) uint64 { return r.Packets }),
		numCol(6, c64, func(r *CaptureInterface) uint64 { return r.Octets }),
		numCol(7, c64, func(r *CaptureInterface) uint64 { return r.Drops }),
		numCol(8, c64, func(r *CaptureInterface) uint64 {
			var t uint64
			for _, d := range r.DecodeErrors {
				t += d.Count
			}
			return t
		}),
	}

	decodeErrorColumns = []column[ReasonCount]{
		strCol(2, func(r *ReasonCount) string { return r.Reason }),
		numCol(3, c64, func(r *ReasonCount) uint64 { return r.Count }),
	}

	queueColumns = []column[Queue]{
		strCol(2, func(r *Queue) string { return r.Name }),
		numCol(3, g32, func(r *Queue) uint64 { return uint64(r.Depth) }),
		numCol(4, g32, func(r *Queue) uint64 { return uint64(r.Capacity) }),
		numCol(5, c64, func(r *Queue) uint64 { return r.Drops }),
	}

	symptomColumns = []column[Symptom]{
		strCol(2, func(r *Symptom) string { return r.Name }),
		numCol(3, c64, func(r *Symptom) uint64 { return r.Occurrences }),
		numCol(4, c64, func(r *Symptom) uint64 { return r.Flows }),
		numCol(5, c64, func(r *Symptom) uint64 { return r.BytesScanned }),
	}

	exporterColumns = []column[Exporter]{
		strCol(2, func(r *Exporter) string { return r.Address }),
		numCol(3, i32, func(r *Exporter) uint64 { return uint64(r.Transport) }),
		numCol(4, i32, func(r *Exporter) uint64 { return uint64(r.State) }),
		numCol(5, c64, func(r *Exporter) uint64 { return r.Records }),
		numCol(6, c64, func(r *Exporter) uint64 { return r.Messages }),
		numCol(7, c64, func(r *Exporter) uint64 { return r.Templates }),
		numCol(8, g32, func(r *Exporter) uint64 { return uint64(r.SpoolDepth) }),
		strCol(9, func(r *Exporter) string { return r.LastError }),
		numCol(10, c64, func(r *Exporter) uint64 { return r.Dropped }),
		numCol(11, c64, func(r *Exporter) uint64 { return r.Unacknowledged }),
		numCol(12, c64, func(r *Exporter) uint64 { return r.SpoolDropped }),
	}
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
	putTable(v, oidSysOREntry, sysORColumns, len(sysORRows), func(k int) (*sysORRow, []uint32) {
		return &sysORRows[k], v.one(k + 1)
	})
}

func (a *Agent) buildInterfaces(v *view) {
	ifs := a.interfaces()
	v.scalar(oidIfNumber, i32, uint64(len(ifs)), "")
	putTable(v, oidIfEntry, ifColumns, len(ifs), func(k int) (*ifRow, []uint32) { return &ifs[k], v.one(ifs[k].Index) })
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
	putTable(v, oidIfXEntry, ifXColumns, len(ifs), func(k int) (*ifRow, []uint32) { return &ifs[k], v.one(ifs[k].Index) })
}

func (a *Agent) buildMIRAIdentity(v *view) {
	s := a.snapshot()
	v.scalar(mProbeName, str, 0, s.Name)
	v.scalar(mProbeVersion, str, 0, s.Version)
	v.scalar(mProbeDomain, g32, uint64(s.ObservationDomain), "")
	v.scalar(mProbeStart, str, 0, a.startTimeStr(s.StartTime))
	v.scalar(mReloads, c64, s.ReloadsApplied, "")
	v.scalar(mReloadsRefused, c64, s.ReloadsRefused, "")
	v.scalar(mLastReload, str, 0, a.reloadTimeStr(s.LastReload))
}

func (a *Agent) buildMIRACapture(v *view) {
	ifs := a.snapshot().Interfaces
	putTable(v, mCaptureEntry, captureColumns, len(ifs), func(k int) (*CaptureInterface, []uint32) {
		return &ifs[k], v.one(k + 1)
	})
	// miraDecodeErrorTable is indexed by interface and reason: each
	// column holds every interface's reasons in turn.
	for c := range decodeErrorColumns {
		for i := range ifs {
			errs := ifs[i].DecodeErrors
			putColumn(v, mDecErrEntry, &decodeErrorColumns[c], len(errs), func(k int) (*ReasonCount, []uint32) {
				return &errs[k], v.two(i+1, k+1)
			})
		}
	}
}

func (a *Agent) buildMIRAPipeline(v *view) {
	s := a.snapshot()
	p := &s.Pipeline
	rs := p.RegulationState
	if rs != RegulationSampling && rs != RegulationShedding {
		rs = RegulationNormal
	}
	rate := p.SamplingRate
	if rate == 0 {
		rate = 1
	}
	v.scalar(mRegState, i32, uint64(rs), "")
	v.scalar(mSamplingRate, g32, uint64(rate), "")
	v.scalar(mOverloadEvents, c64, p.OverloadEvents, "")
	putTable(v, mQueueEntry, queueColumns, len(p.Queues), func(k int) (*Queue, []uint32) { return &p.Queues[k], v.one(k + 1) })
	v.scalar(mSelOutOfScope, c64, p.SelOutOfScope, "")
	v.scalar(mSelUnsampled, c64, p.SelUnsampled, "")
	v.scalar(mRegulatedOut, c64, p.RegulatedOut, "")
	v.scalar(mRegChanges, c64, p.RegulationChanges, "")
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
	putTable(v, mSymptomEntry, symptomColumns, len(syms), func(k int) (*Symptom, []uint32) {
		sy := &s.Symptoms[syms[k]]
		return sy, v.one(int(sy.ID))
	})
}

func (a *Agent) buildMIRAExport(v *view) {
	es := a.snapshot().Exporters
	putTable(v, mExporterEntry, exporterColumns, len(es), func(k int) (*Exporter, []uint32) { return &es[k], v.one(k + 1) })
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

// reloadTimeStr is dateAndTime(t), made again only when t changes; the
// zero time (no reload) is DateAndTime's "no time".
func (a *Agent) reloadTimeStr(t time.Time) string {
	if !t.Equal(a.reloadCacheT) || a.reloadCacheS == "" {
		a.reloadCacheT = t
		a.reloadCacheS = dateAndTime(t)
	}
	return a.reloadCacheS
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

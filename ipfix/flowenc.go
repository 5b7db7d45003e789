package ipfix

import (
	"encoding/binary"
	"net/netip"

	"github.com/mira-project/mira/flow"
)

// op says what a template field means for a flow.Record. The encoder and
// the decoder share it so that a template and its records cannot disagree.
type op uint8

const (
	opSkip op = iota
	opSrc4
	opDst4
	opSrc6
	opDst6
	opSport
	opDport
	opICMP
	opProto
	opTCPFlags
	opPackets
	opOctets
	opStartMs
	opEndMs
	opStartSec
	opEndSec
	opStartUs
	opEndUs
	opStartNs
	opEndNs
	opStartUptime
	opEndUptime
	opVLAN
	opIngress
	opEndReason
	opIPVersion
	opSrcMAC
	opDstMAC
	opDirection
	opInnerOctets
	opTunnelType
	opTunSrc4
	opTunDst4
	opTunSrc6
	opTunDst6
	opAggregate
	opCategory
	opVPI
	opVCI
	opSymptoms
	opSampling
	opRevPackets
	opRevOctets
	opRevFlags
	opSysInit
	opDomainSampling
	opSymptomID
	opSymptomCount
	opFlowSampling
	opSelectorID
	opSelectorAlg
	opLegacyAlg
	opPacketSpace
	opProbability
	opAggregateName
	opPacketInterval
	opSymptomName
	opCategoryName
	opHashOutMin
	opHashOutMax
	opHashSelMin
	opHashSelMax
	opHashInit
	opSpoolInstance
	opExportedMessages
	opExportedRecords
	opLoss // a MIRALoss* stage: MIRALossRing + stage index
	opRegChanges
	opQueueScaled
	opHTTPHost
	opServerName
	opALPN
	opDNSName
	opDNSRcode
	opFTPData
	opScanned
	// Runs of fields the decoder reads as one (session.go compileFast).
	opRunCore
	opRunICMP
	opRunMIRA
)

// Template-variant bits: a record's variant picks its flow template, whose
// id is FlowTemplateBase + variant.
const (
	varV6       = 1 << 0
	varICMP     = 1 << 1
	varTunShift = 2 // 2 bits: 0 none, 1 IPv4 outer, 2 IPv6 outer, 3 type only
	varSym      = 1 << 4
	varDir      = 1 << 5
	varATM      = 1 << 6
	numVariants = 1 << 7 // variants without application metadata, FTP data ports or scanned octets
	// Application metadata: the four names, and a DNS response's code.
	// Their templates take ids from AppTemplateBase on.
	varApp   = 1 << 7
	varRcode = 1 << 8
	// FTP data ports announced on a control connection.
	varFTP = 1 << 9
	// Octets scanned for symptoms (flow.Record.ScannedOctets).
	varScan     = 1 << 10
	allVariants = 1 << 11
)

// AppTemplateBase is the first id of the flow templates of records with
// application metadata, FTP data ports or scanned octets: AppTemplateBase +
// variant - 128. LastTemplateID
// is the highest flow template id.
const (
	AppTemplateBase = 512
	LastTemplateID  = AppTemplateBase + allVariants - numVariants - 1
)

// templateID is the id of variant v's flow template.
func templateID(v int) uint16 {
	if v < numVariants {
		return uint16(FlowTemplateBase + v)
	}
	return uint16(AppTemplateBase + v - numVariants)
}

// Template ids MIRA's exporter uses.
const (
	FlowTemplateBase           = 256
	SymptomTemplateID          = FlowTemplateBase + numVariants // 384
	ExporterOptionsTemplateID  = SymptomTemplateID + 1          // 385
	SamplingOptionsTemplateID  = SymptomTemplateID + 2          // 386
	AggregateOptionsTemplateID = SymptomTemplateID + 3          // 387
	PSAMPOptionsTemplateID     = SymptomTemplateID + 4          // 388
	// PSAMPHashOptionsTemplateID is PSAMPOptionsTemplate with the RFC
	// 5477 hash parameters, for hash-based flow selection. (389 and 390
	// are taken by the symptom and category name options.)
	PSAMPHashOptionsTemplateID = SymptomTemplateID + 7 // 391
	// SelectorOptionsTemplateID is SelectorOptionsTemplate's (392 to
	// 394 are the spool, ledger and element type options).
	SelectorOptionsTemplateID = SymptomTemplateID + 11 // 395
)

type slot struct {
	op op
	f  Field
}

// FlowEncoder encodes flow.Records with MIRA's flow templates. Templates
// are built on first use; after that encoding allocates nothing.
type FlowEncoder struct {
	pen   uint32
	tmpl  [allVariants]*encTemplate
	sym   Template
	order []*Template
}

type encTemplate struct {
	Template
	slots []slot
}

// NewFlowEncoder returns an encoder whose MIRA elements carry enterprise
// number pen (DefaultPEN if 0).
func NewFlowEncoder(pen uint32) *FlowEncoder {
	if pen == 0 {
		pen = DefaultPEN
	}
	e := &FlowEncoder{pen: pen}
	e.sym = Template{ID: SymptomTemplateID, Fields: []Field{
		{ID: MIRASymptomID, Enterprise: pen, Length: 2},
		{ID: MIRASymptomOccurrences, Enterprise: pen, Length: 4},
	}}
	return e
}

// PEN returns the encoder's enterprise number.
func (e *FlowEncoder) PEN() uint32 { return e.pen }

// SymptomTemplate is the sub-template of the symptom subTemplateList.
func (e *FlowEncoder) SymptomTemplate() *Template { return &e.sym }

// Templates returns the flow templates built so far, in order of creation.
func (e *FlowEncoder) Templates() []*Template { return e.order }

func variant(r *flow.Record) int {
	v := 0
	if r.Src.Is6() && !r.Src.Is4In6() {
		v |= varV6
	}
	if r.Proto == 1 || r.Proto == 58 {
		v |= varICMP
	}
	if r.Tunnel != flow.TunnelNone {
		switch {
		case r.TunnelSrc.Is4() || r.TunnelSrc.Is4In6():
			v |= 1 << varTunShift
		case r.TunnelSrc.Is6():
			v |= 2 << varTunShift
		default:
			v |= 3 << varTunShift
		}
	}
	if len(r.Symptoms) > 0 {
		v |= varSym
	}
	if r.Direction != 255 {
		v |= varDir
	}
	if r.VPI != 0 || r.VCI != 0 {
		v |= varATM
	}
	a := &r.App
	if a.HTTPHost != "" || a.ServerName != "" || a.ALPN != "" || a.DNSName != "" {
		v |= varApp
	}
	if a.DNSResponse {
		v |= varRcode
	}
	if a.FTPData != "" {
		v |= varFTP
	}
	if r.ScannedOctets != 0 {
		v |= varScan
	}
	return v
}

// Template returns the template record r is encoded with, building it on
// first use. The second result is true when the template is new.
func (e *FlowEncoder) Template(r *flow.Record) (*Template, bool) {
	v := variant(r)
	if t := e.tmpl[v]; t != nil {
		return &t.Template, false
	}
	t := e.build(v)
	e.tmpl[v] = t
	e.order = append(e.order, &t.Template)
	return &t.Template, true
}

func (e *FlowEncoder) build(v int) *encTemplate {
	var s []slot
	add := func(o op, id uint16, ent uint32, l uint16) {
		s = append(s, slot{o, Field{ID: id, Enterprise: ent, Length: l}})
	}
	if v&varV6 != 0 {
		add(opSrc6, IESourceIPv6Address, 0, 16)
		add(opDst6, IEDestinationIPv6Address, 0, 16)
	} else {
		add(opSrc4, IESourceIPv4Address, 0, 4)
		add(opDst4, IEDestinationIPv4Address, 0, 4)
	}
	if v&varICMP != 0 {
		if v&varV6 != 0 {
			add(opICMP, IEICMPTypeCodeIPv6, 0, 2)
		} else {
			add(opICMP, IEICMPTypeCodeIPv4, 0, 2)
		}
	} else {
		add(opSport, IESourceTransportPort, 0, 2)
		add(opDport, IEDestinationTransportPort, 0, 2)
	}
	add(opProto, IEProtocolIdentifier, 0, 1)
	add(opTCPFlags, IETCPControlBits, 0, 2)
	add(opPackets, IEPacketDeltaCount, 0, 8)
	add(opOctets, IEOctetDeltaCount, 0, 8)
	add(opStartMs, IEFlowStartMilliseconds, 0, 8)
	add(opEndMs, IEFlowEndMilliseconds, 0, 8)
	add(opVLAN, IEVlanID, 0, 2)
	add(opIngress, IEIngressInterface, 0, 4)
	add(opEndReason, IEFlowEndReason, 0, 1)
	add(opIPVersion, IEIPVersion, 0, 1)
	add(opSrcMAC, IESourceMacAddress, 0, 6)
	add(opDstMAC, IEDestinationMacAddress, 0, 6)
	if v&varDir != 0 {
		add(opDirection, IEFlowDirection, 0, 1)
	}
	p := e.pen
	add(opInnerOctets, MIRAInnerOctetDeltaCount, p, 8)
	add(opAggregate, MIRAAggregateID, p, 4)
	add(opCategory, MIRACategoryID, p, 2)
	add(opSampling, MIRASamplingPacketInterval, p, 4)
	add(opFlowSampling, MIRASamplingFlowInterval, p, 4)
	// The selector of the record's intervals (SelectorID), for
	// collectors that scale by the selector a record names (nfdump).
	add(opSelectorID, IESelectorID, 0, 4)
	switch (v >> varTunShift) & 3 {
	case 1:
		add(opTunnelType, MIRATunnelType, p, 1)
		add(opTunSrc4, MIRATunnelSourceIPv4, p, 4)
		add(opTunDst4, MIRATunnelDestinationIPv4, p, 4)
	case 2:
		add(opTunnelType, MIRATunnelType, p, 1)
		add(opTunSrc6, MIRATunnelSourceIPv6, p, 16)
		add(opTunDst6, MIRATunnelDestinationIPv6, p, 16)
	case 3:
		add(opTunnelType, MIRATunnelType, p, 1)
	}
	if v&varATM != 0 {
		add(opVPI, MIRAAtmVPI, p, 2)
		add(opVCI, MIRAAtmVCI, p, 2)
	}
	if v&varApp != 0 {
		add(opHTTPHost, IEHTTPRequestHost, 0, VarLen)
		add(opServerName, MIRAServerName, p, VarLen)
		add(opALPN, MIRAALPNList, p, VarLen)
		add(opDNSName, MIRADNSQueryName, p, VarLen)
	}
	if v&varRcode != 0 {
		add(opDNSRcode, MIRADNSResponseCode, p, 1)
	}
	if v&varFTP != 0 {
		add(opFTPData, MIRAFTPDataPorts, p, VarLen)
	}
	if v&varScan != 0 {
		add(opScanned, MIRAScannedOctets, p, 8)
	}
	if v&varSym != 0 {
		add(opSymptoms, IESubTemplateList, 0, VarLen)
	}
	t := &encTemplate{slots: s}
	t.ID = templateID(v)
	t.Fields = make([]Field, len(s))
	for i := range s {
		t.Fields[i] = s[i].f
	}
	return t
}

// AppendRecord appends r as a data record of the template Template(r)
// returned; call Template first so the template exists.
func (e *FlowEncoder) AppendRecord(b []byte, r *flow.Record) []byte {
	t := e.tmpl[variant(r)]
	if t == nil {
		e.Template(r)
		t = e.tmpl[variant(r)]
	}
	be := binary.BigEndian
	for i := range t.slots {
		switch t.slots[i].op {
		case opSrc4:
			b = appendAddr4(b, r.Src)
		case opDst4:
			b = appendAddr4(b, r.Dst)
		case opSrc6:
			a := r.Src.As16()
			b = append(b, a[:]...)
		case opDst6:
			a := r.Dst.As16()
			b = append(b, a[:]...)
		case opSport:
			b = be.AppendUint16(b, r.Sport)
		case opDport, opICMP:
			b = be.AppendUint16(b, r.Dport)
		case opProto:
			b = append(b, r.Proto)
		case opTCPFlags:
			b = be.AppendUint16(b, uint16(r.TCPFlags))
		case opPackets:
			b = be.AppendUint64(b, r.Packets)
		case opOctets:
			b = be.AppendUint64(b, r.Octets)
		case opStartMs:
			b = be.AppendUint64(b, uint64(r.First/1e6))
		case opEndMs:
			b = be.AppendUint64(b, uint64(r.Last/1e6))
		case opVLAN:
			b = be.AppendUint16(b, r.VLAN)
		case opIngress:
			b = be.AppendUint32(b, r.Ingress)
		case opEndReason:
			b = append(b, byte(r.EndReason))
		case opIPVersion:
			b = append(b, r.IPVersion)
		case opSrcMAC:
			b = append(b, r.SrcMAC[:]...)
		case opDstMAC:
			b = append(b, r.DstMAC[:]...)
		case opDirection:
			b = append(b, r.Direction)
		case opInnerOctets:
			b = be.AppendUint64(b, r.InnerOctets)
		case opAggregate:
			b = be.AppendUint32(b, r.Aggregate)
		case opCategory:
			b = be.AppendUint16(b, r.Category)
		case opSampling:
			b = be.AppendUint32(b, r.SamplingPacketInterval)
		case opFlowSampling:
			b = be.AppendUint32(b, r.SamplingFlowInterval)
		case opSelectorID:
			b = be.AppendUint32(b, SelectorID(r.SamplingPacketInterval, r.SamplingFlowInterval))
		case opTunnelType:
			b = append(b, byte(r.Tunnel))
		case opTunSrc4:
			b = appendAddr4(b, r.TunnelSrc)
		case opTunDst4:
			b = appendAddr4(b, r.TunnelDst)
		case opTunSrc6:
			a := r.TunnelSrc.As16()
			b = append(b, a[:]...)
		case opTunDst6:
			a := r.TunnelDst.As16()
			b = append(b, a[:]...)
		case opVPI:
			b = be.AppendUint16(b, r.VPI)
		case opVCI:
			b = be.AppendUint16(b, r.VCI)
		case opSymptoms:
			b = e.appendSymptoms(b, r.Symptoms)
		case opHTTPHost:
			b = appendName(b, r.App.HTTPHost)
		case opServerName:
			b = appendName(b, r.App.ServerName)
		case opALPN:
			b = appendName(b, r.App.ALPN)
		case opDNSName:
			b = appendName(b, r.App.DNSName)
		case opDNSRcode:
			b = append(b, r.App.DNSRcode)
		case opFTPData:
			b = appendName(b, r.App.FTPData)
		case opScanned:
			b = be.AppendUint64(b, r.ScannedOctets)
		}
	}
	return b
}

// appendSymptoms appends the RFC 6313 subTemplateList of (symptomId,
// symptomOccurrences) records, with its variable-length prefix.
func (e *FlowEncoder) appendSymptoms(b []byte, syms []flow.SymptomCount) []byte {
	b = appendVarLenPrefix(b, stlHeaderLen+6*len(syms))
	b = append(b, stlSemanticAllOf)
	b = binary.BigEndian.AppendUint16(b, SymptomTemplateID)
	for _, s := range syms {
		b = binary.BigEndian.AppendUint16(b, s.ID)
		b = binary.BigEndian.AppendUint32(b, s.Count)
	}
	return b
}

// appendName appends a variable-length string field, cut to maxName
// bytes (the one-byte length prefix).
func appendName(b []byte, name string) []byte {
	if len(name) > maxName {
		name = name[:maxName]
	}
	b = append(b, byte(len(name)))
	return append(b, name...)
}

func appendAddr4(b []byte, a netip.Addr) []byte {
	x := a.As16()
	return append(b, x[12:16]...)
}

// MinMessageLen is the smallest IPFIX message that holds any of MIRA's
// flow templates, with the symptom template, and one record of it whose
// variable-length fields hold nothing but one symptom: an exporter
// bounded below it (a UDP target's MTU) sends such records each in a
// message over its bound.
func MinMessageLen() int {
	e := NewFlowEncoder(DefaultPEN)
	symT := len(AppendTemplate(nil, &e.sym))
	most := 0
	for v := 0; v < allVariants; v++ {
		t := e.build(v)
		n := len(AppendTemplate(nil, &t.Template))
		for _, s := range t.slots {
			switch {
			case s.op == opSymptoms:
				n += 1 + stlHeaderLen + 6
			case s.f.Length == VarLen:
				n++
			default:
				n += int(s.f.Length)
			}
		}
		most = max(most, n)
	}
	return HeaderLen + SetHeaderLen + symT + most + SetHeaderLen
}

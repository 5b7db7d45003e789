package ipfix

// DataType is an IPFIX abstract data type (RFC 7012 §3.1, RFC 6313).
type DataType uint8

// Abstract data types.
const (
	OctetArray DataType = iota
	Unsigned8
	Unsigned16
	Unsigned32
	Unsigned64
	Boolean
	MACAddress
	String
	DateTimeSeconds
	DateTimeMilliseconds
	DateTimeMicroseconds
	DateTimeNanoseconds
	IPv4Address
	IPv6Address
	SubTemplateList
	Float64
)

// Semantics is an IPFIX data type semantic (RFC 7012 §3.2).
type Semantics uint8

// Data type semantics.
const (
	Default Semantics = iota
	Quantity
	TotalCounter
	DeltaCounter
	Identifier
	Flags
	List
)

// VarLen is the field length that marks a variable-length field (RFC 7011 §7).
const VarLen = 0xffff

// DefaultPEN is the private enterprise number of MIRA's own elements when
// none is configured: 32473, reserved for documentation (RFC 5612).
const DefaultPEN = 32473

// ReversePEN is the RFC 5103 reverse-element enterprise number.
const ReversePEN = 29305

// IE describes one information element. Enterprise 0 is IANA; MIRA's own
// elements are listed with MIRA set and take their enterprise number from
// the exporter's configuration. Length is the length MIRA exports (VarLen
// for variable-length elements).
type IE struct {
	ID         uint16
	Enterprise uint32
	MIRA       bool
	Name       string
	Type       DataType
	Semantics  Semantics
	Length     uint16
	// Units is the IANA unit code (RFC 5610 informationElementUnits):
	// 0 none, 2 octets, 3 packets, 4 flows.
	Units uint16
}

// IANA units (RFC 5610 informationElementUnits).
const (
	UnitsNone    = 0
	UnitsOctets  = 2
	UnitsPackets = 3
	UnitsFlows   = 4
)

// IANA information elements MIRA exports or understands when decoding.
const (
	IEOctetDeltaCount              = 1
	IEPacketDeltaCount             = 2
	IEProtocolIdentifier           = 4
	IETCPControlBits               = 6
	IESourceTransportPort          = 7
	IESourceIPv4Address            = 8
	IEIngressInterface             = 10
	IEDestinationTransportPort     = 11
	IEDestinationIPv4Address       = 12
	IEFlowEndSysUpTime             = 21
	IEFlowStartSysUpTime           = 22
	IEPostOctetDeltaCount          = 23
	IEPostPacketDeltaCount         = 24
	IESourceIPv6Address            = 27
	IEDestinationIPv6Address       = 28
	IEICMPTypeCodeIPv4             = 32
	IESamplingInterval             = 34
	IESamplingAlgorithm            = 35
	IEExportedMessageTotalCount    = 41
	IEExportedFlowRecordTotalCount = 42
	IESourceMacAddress             = 56
	IEVlanID                       = 58
	IEIPVersion                    = 60
	IEFlowDirection                = 61
	IEDestinationMacAddress        = 80
	IEOctetTotalCount              = 85
	IEPacketTotalCount             = 86
	IEFlowEndReason                = 136
	IEICMPTypeCodeIPv6             = 139
	IEExportingProcessID           = 144
	IEObservationDomainID          = 149
	IEFlowStartSeconds             = 150
	IEFlowEndSeconds               = 151
	IEFlowStartMilliseconds        = 152
	IEFlowEndMilliseconds          = 153
	IEFlowStartMicroseconds        = 154
	IEFlowEndMicroseconds          = 155
	IEFlowStartNanoseconds         = 156
	IEFlowEndNanoseconds           = 157
	IESystemInitTimeMilliseconds   = 160
	IEIgnoredPacketTotalCount      = 164
	IENotSentFlowTotalCount        = 166
	IESubTemplateList              = 292
	IESelectorID                   = 302
	IESelectorAlgorithm            = 304
	IESamplingPacketInterval       = 305
	IESamplingPacketSpace          = 306
	IESamplingProbability          = 311
	IEHashOutputRangeMin           = 329
	IEHashOutputRangeMax           = 330
	IEHashSelectedRangeMin         = 331
	IEHashSelectedRangeMax         = 332
	IEHashInitialiserValue         = 334
	// RFC 5610 information element type information.
	IEInformationElementID          = 303
	IEInformationElementDataType    = 339
	IEInformationElementDescription = 340
	IEInformationElementName        = 341
	IEInformationElementRangeBegin  = 342
	IEInformationElementRangeEnd    = 343
	IEInformationElementSemantics   = 344
	IEInformationElementUnits       = 345
	IEPrivateEnterpriseNumber       = 346
	IEHTTPRequestHost               = 460
)

// MIRA enterprise information elements (enterprise number from the
// configuration, DefaultPEN unless set).
const (
	MIRAInnerOctetDeltaCount   = 1
	MIRATunnelType             = 2
	MIRATunnelSourceIPv4       = 3
	MIRATunnelDestinationIPv4  = 4
	MIRATunnelSourceIPv6       = 5
	MIRATunnelDestinationIPv6  = 6
	MIRAAggregateID            = 7
	MIRACategoryID             = 8
	MIRAAtmVPI                 = 9
	MIRAAtmVCI                 = 10
	MIRASymptomID              = 11
	MIRASymptomOccurrences     = 12
	MIRASamplingPacketInterval = 13
	MIRASamplingFlowInterval   = 14
	MIRAAggregateName          = 15
	MIRASymptomName            = 16
	MIRACategoryName           = 17
	// MIRASpoolInstance identifies a spooling exporting process across
	// restarts (SpoolOptionsTemplate).
	MIRASpoolInstance = 18
	// MIRALossRing .. MIRALossSpool are the probe's loss ledger stages
	// (LedgerOptionsTemplate), in flow.LossStages order.
	MIRALossRing       = 19
	MIRALossQueue      = 20
	MIRALossRegulation = 21
	MIRALossEviction   = 22
	MIRALossExport     = 23
	MIRALossSpool      = 24
	// Application metadata (flow.App): the TLS or QUIC ClientHello's
	// server name, its ALPN list (comma-joined), the DNS question name
	// and a DNS response's code. The HTTP Host is IANA's httpRequestHost.
	MIRAServerName      = 25
	MIRAALPNList        = 26
	MIRADNSQueryName    = 27
	MIRADNSResponseCode = 28
	// MIRARegulationChanges counts the exporting probe's self-regulation
	// changes (state or rate; LedgerOptionsTemplate): announcements of
	// a sampling rate cannot tell them all (shedding keeps the rate).
	MIRARegulationChanges = 29
	// MIRAFTPDataPorts lists the data ports an FTP control connection's
	// direction announced (PORT, EPRT, 227, 229), decimal and
	// comma-joined (flow.App.FTPData).
	MIRAFTPDataPorts = 30
	// MIRAScannedOctets counts the payload octets of a flow direction the
	// symptom matcher was given (flow.Record.ScannedOctets): fewer than
	// its payload when scanning stopped early (scan limit, encrypted
	// bypass, shedding), so that symptom counts stay interpretable.
	MIRAScannedOctets = 31
	// MIRALossQueueScaled is the queue stage as packets of the wire:
	// each packet a full queue dropped counted as the 1-in-N packets it
	// stood for under self-regulation (LedgerOptionsTemplate).
	MIRALossQueueScaled = 32
)

// Registry lists every information element MIRA uses, IANA and MIRA
// enterprise ones. Decoding of other exporters' data also understands the
// RFC 5103 reverse counters (ReversePEN) listed in ReverseElements.
var Registry = []IE{
	{ID: IEOctetDeltaCount, Name: "octetDeltaCount", Type: Unsigned64, Semantics: DeltaCounter, Length: 8},
	{ID: IEPacketDeltaCount, Name: "packetDeltaCount", Type: Unsigned64, Semantics: DeltaCounter, Length: 8},
	{ID: IEProtocolIdentifier, Name: "protocolIdentifier", Type: Unsigned8, Semantics: Identifier, Length: 1},
	{ID: IETCPControlBits, Name: "tcpControlBits", Type: Unsigned16, Semantics: Flags, Length: 2},
	{ID: IESourceTransportPort, Name: "sourceTransportPort", Type: Unsigned16, Semantics: Identifier, Length: 2},
	{ID: IESourceIPv4Address, Name: "sourceIPv4Address", Type: IPv4Address, Semantics: Default, Length: 4},
	{ID: IEIngressInterface, Name: "ingressInterface", Type: Unsigned32, Semantics: Identifier, Length: 4},
	{ID: IEDestinationTransportPort, Name: "destinationTransportPort", Type: Unsigned16, Semantics: Identifier, Length: 2},
	{ID: IEDestinationIPv4Address, Name: "destinationIPv4Address", Type: IPv4Address, Semantics: Default, Length: 4},
	{ID: IEFlowEndSysUpTime, Name: "flowEndSysUpTime", Type: Unsigned32, Semantics: Default, Length: 4},
	{ID: IEFlowStartSysUpTime, Name: "flowStartSysUpTime", Type: Unsigned32, Semantics: Default, Length: 4},
	{ID: IEPostOctetDeltaCount, Name: "postOctetDeltaCount", Type: Unsigned64, Semantics: DeltaCounter, Length: 8},
	{ID: IEPostPacketDeltaCount, Name: "postPacketDeltaCount", Type: Unsigned64, Semantics: DeltaCounter, Length: 8},
	{ID: IESourceIPv6Address, Name: "sourceIPv6Address", Type: IPv6Address, Semantics: Default, Length: 16},
	{ID: IEDestinationIPv6Address, Name: "destinationIPv6Address", Type: IPv6Address, Semantics: Default, Length: 16},
	{ID: IEICMPTypeCodeIPv4, Name: "icmpTypeCodeIPv4", Type: Unsigned16, Semantics: Identifier, Length: 2},
	{ID: IESamplingInterval, Name: "samplingInterval", Type: Unsigned32, Semantics: Quantity, Length: 4},
	{ID: IESamplingAlgorithm, Name: "samplingAlgorithm", Type: Unsigned8, Semantics: Identifier, Length: 1},
	{ID: IEExportedMessageTotalCount, Name: "exportedMessageTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8},
	{ID: IEExportedFlowRecordTotalCount, Name: "exportedFlowRecordTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8},
	{ID: IESourceMacAddress, Name: "sourceMacAddress", Type: MACAddress, Semantics: Default, Length: 6},
	{ID: IEVlanID, Name: "vlanId", Type: Unsigned16, Semantics: Identifier, Length: 2},
	{ID: IEIPVersion, Name: "ipVersion", Type: Unsigned8, Semantics: Identifier, Length: 1},
	{ID: IEFlowDirection, Name: "flowDirection", Type: Unsigned8, Semantics: Identifier, Length: 1},
	{ID: IEDestinationMacAddress, Name: "destinationMacAddress", Type: MACAddress, Semantics: Default, Length: 6},
	{ID: IEOctetTotalCount, Name: "octetTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8},
	{ID: IEPacketTotalCount, Name: "packetTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8},
	{ID: IEFlowEndReason, Name: "flowEndReason", Type: Unsigned8, Semantics: Identifier, Length: 1},
	{ID: IEICMPTypeCodeIPv6, Name: "icmpTypeCodeIPv6", Type: Unsigned16, Semantics: Identifier, Length: 2},
	{ID: IEExportingProcessID, Name: "exportingProcessId", Type: Unsigned32, Semantics: Identifier, Length: 4},
	{ID: IEObservationDomainID, Name: "observationDomainId", Type: Unsigned32, Semantics: Identifier, Length: 4},
	{ID: IEFlowStartSeconds, Name: "flowStartSeconds", Type: DateTimeSeconds, Semantics: Default, Length: 4},
	{ID: IEFlowEndSeconds, Name: "flowEndSeconds", Type: DateTimeSeconds, Semantics: Default, Length: 4},
	{ID: IEFlowStartMilliseconds, Name: "flowStartMilliseconds", Type: DateTimeMilliseconds, Semantics: Default, Length: 8},
	{ID: IEFlowEndMilliseconds, Name: "flowEndMilliseconds", Type: DateTimeMilliseconds, Semantics: Default, Length: 8},
	{ID: IEFlowStartMicroseconds, Name: "flowStartMicroseconds", Type: DateTimeMicroseconds, Semantics: Default, Length: 8},
	{ID: IEFlowEndMicroseconds, Name: "flowEndMicroseconds", Type: DateTimeMicroseconds, Semantics: Default, Length: 8},
	{ID: IEFlowStartNanoseconds, Name: "flowStartNanoseconds", Type: DateTimeNanoseconds, Semantics: Default, Length: 8},
	{ID: IEFlowEndNanoseconds, Name: "flowEndNanoseconds", Type: DateTimeNanoseconds, Semantics: Default, Length: 8},
	{ID: IESystemInitTimeMilliseconds, Name: "systemInitTimeMilliseconds", Type: DateTimeMilliseconds, Semantics: Default, Length: 8},
	{ID: IEIgnoredPacketTotalCount, Name: "ignoredPacketTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8},
	{ID: IENotSentFlowTotalCount, Name: "notSentFlowTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8},
	{ID: IESubTemplateList, Name: "subTemplateList", Type: SubTemplateList, Semantics: List, Length: VarLen},
	// selectorId is unsigned64; MIRA sends it in 4 octets (RFC 7011
	// reduced-size encoding): nfdump 1.7.1 compares it as 32 bits.
	{ID: IESelectorID, Name: "selectorId", Type: Unsigned64, Semantics: Identifier, Length: 4},
	{ID: IESelectorAlgorithm, Name: "selectorAlgorithm", Type: Unsigned16, Semantics: Identifier, Length: 2},
	{ID: IESamplingPacketInterval, Name: "samplingPacketInterval", Type: Unsigned32, Semantics: Quantity, Length: 4},
	{ID: IESamplingPacketSpace, Name: "samplingPacketSpace", Type: Unsigned32, Semantics: Quantity, Length: 4},
	{ID: IESamplingProbability, Name: "samplingProbability", Type: Float64, Semantics: Quantity, Length: 8},
	{ID: IEHashOutputRangeMin, Name: "hashOutputRangeMin", Type: Unsigned64, Semantics: Quantity, Length: 8},
	{ID: IEHashOutputRangeMax, Name: "hashOutputRangeMax", Type: Unsigned64, Semantics: Quantity, Length: 8},
	{ID: IEHashSelectedRangeMin, Name: "hashSelectedRangeMin", Type: Unsigned64, Semantics: Quantity, Length: 8},
	{ID: IEHashSelectedRangeMax, Name: "hashSelectedRangeMax", Type: Unsigned64, Semantics: Quantity, Length: 8},
	{ID: IEHashInitialiserValue, Name: "hashInitialiserValue", Type: Unsigned64, Semantics: Quantity, Length: 8},
	{ID: IEInformationElementID, Name: "informationElementId", Type: Unsigned16, Semantics: Identifier, Length: 2},
	{ID: IEInformationElementDataType, Name: "informationElementDataType", Type: Unsigned8, Semantics: Default, Length: 1},
	{ID: IEInformationElementName, Name: "informationElementName", Type: String, Semantics: Default, Length: VarLen},
	{ID: IEInformationElementDescription, Name: "informationElementDescription", Type: String, Semantics: Default, Length: VarLen},
	{ID: IEInformationElementRangeBegin, Name: "informationElementRangeBegin", Type: Unsigned64, Semantics: Quantity, Length: 8},
	{ID: IEInformationElementRangeEnd, Name: "informationElementRangeEnd", Type: Unsigned64, Semantics: Quantity, Length: 8},
	{ID: IEInformationElementSemantics, Name: "informationElementSemantics", Type: Unsigned8, Semantics: Default, Length: 1},
	{ID: IEInformationElementUnits, Name: "informationElementUnits", Type: Unsigned16, Semantics: Default, Length: 2},
	{ID: IEPrivateEnterpriseNumber, Name: "privateEnterpriseNumber", Type: Unsigned32, Semantics: Identifier, Length: 4},
	{ID: IEHTTPRequestHost, Name: "httpRequestHost", Type: String, Semantics: Default, Length: VarLen},

	{ID: MIRAInnerOctetDeltaCount, MIRA: true, Name: "innerOctetDeltaCount", Type: Unsigned64, Semantics: DeltaCounter, Length: 8, Units: UnitsOctets},
	{ID: MIRATunnelType, MIRA: true, Name: "tunnelType", Type: Unsigned8, Semantics: Identifier, Length: 1},
	{ID: MIRATunnelSourceIPv4, MIRA: true, Name: "tunnelSourceIPv4Address", Type: IPv4Address, Semantics: Default, Length: 4},
	{ID: MIRATunnelDestinationIPv4, MIRA: true, Name: "tunnelDestinationIPv4Address", Type: IPv4Address, Semantics: Default, Length: 4},
	{ID: MIRATunnelSourceIPv6, MIRA: true, Name: "tunnelSourceIPv6Address", Type: IPv6Address, Semantics: Default, Length: 16},
	{ID: MIRATunnelDestinationIPv6, MIRA: true, Name: "tunnelDestinationIPv6Address", Type: IPv6Address, Semantics: Default, Length: 16},
	{ID: MIRAAggregateID, MIRA: true, Name: "aggregateId", Type: Unsigned32, Semantics: Identifier, Length: 4},
	{ID: MIRACategoryID, MIRA: true, Name: "categoryId", Type: Unsigned16, Semantics: Identifier, Length: 2},
	{ID: MIRAAtmVPI, MIRA: true, Name: "atmVpi", Type: Unsigned16, Semantics: Identifier, Length: 2},
	{ID: MIRAAtmVCI, MIRA: true, Name: "atmVci", Type: Unsigned16, Semantics: Identifier, Length: 2},
	{ID: MIRASymptomID, MIRA: true, Name: "symptomId", Type: Unsigned16, Semantics: Identifier, Length: 2},
	{ID: MIRASymptomOccurrences, MIRA: true, Name: "symptomOccurrences", Type: Unsigned32, Semantics: DeltaCounter, Length: 4},
	{ID: MIRASamplingPacketInterval, MIRA: true, Name: "packetSamplingInterval", Type: Unsigned32, Semantics: Quantity, Length: 4},
	{ID: MIRASamplingFlowInterval, MIRA: true, Name: "flowSamplingInterval", Type: Unsigned32, Semantics: Quantity, Length: 4},
	{ID: MIRAAggregateName, MIRA: true, Name: "aggregateName", Type: String, Semantics: Default, Length: VarLen},
	{ID: MIRASymptomName, MIRA: true, Name: "symptomName", Type: String, Semantics: Default, Length: VarLen},
	{ID: MIRACategoryName, MIRA: true, Name: "categoryName", Type: String, Semantics: Default, Length: VarLen},
	{ID: MIRASpoolInstance, MIRA: true, Name: "spoolInstance", Type: Unsigned64, Semantics: Identifier, Length: 8},
	{ID: MIRALossRing, MIRA: true, Name: "lossRingPacketTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8, Units: UnitsPackets},
	{ID: MIRALossQueue, MIRA: true, Name: "lossQueuePacketTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8, Units: UnitsPackets},
	{ID: MIRALossRegulation, MIRA: true, Name: "lossRegulationPacketTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8, Units: UnitsPackets},
	{ID: MIRALossEviction, MIRA: true, Name: "lossEvictionFlowTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8, Units: UnitsFlows},
	{ID: MIRALossExport, MIRA: true, Name: "lossExportFlowTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8, Units: UnitsFlows},
	{ID: MIRAServerName, MIRA: true, Name: "tlsServerName", Type: String, Semantics: Default, Length: VarLen},
	{ID: MIRAALPNList, MIRA: true, Name: "tlsAlpnList", Type: String, Semantics: Default, Length: VarLen},
	{ID: MIRADNSQueryName, MIRA: true, Name: "dnsQueryName", Type: String, Semantics: Default, Length: VarLen},
	{ID: MIRADNSResponseCode, MIRA: true, Name: "dnsResponseCode", Type: Unsigned8, Semantics: Identifier, Length: 1},
	{ID: MIRALossSpool, MIRA: true, Name: "lossSpoolFlowTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8, Units: UnitsFlows},
	{ID: MIRARegulationChanges, MIRA: true, Name: "regulationChangeTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8},
	{ID: MIRALossQueueScaled, MIRA: true, Name: "lossQueueScaledPacketTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8, Units: UnitsPackets},
	{ID: MIRAFTPDataPorts, MIRA: true, Name: "ftpDataPortList", Type: String, Semantics: Default, Length: VarLen},
	{ID: MIRAScannedOctets, MIRA: true, Name: "scannedOctetDeltaCount", Type: Unsigned64, Semantics: DeltaCounter, Length: 8, Units: UnitsOctets},
}

// ReverseElements are the RFC 5103 reverse elements (enterprise
// ReversePEN) the decoder maps; their ids are those of the forward IEs.
var ReverseElements = []IE{
	{ID: IEOctetDeltaCount, Enterprise: ReversePEN, Name: "reverseOctetDeltaCount", Type: Unsigned64, Semantics: DeltaCounter, Length: 8},
	{ID: IEPacketDeltaCount, Enterprise: ReversePEN, Name: "reversePacketDeltaCount", Type: Unsigned64, Semantics: DeltaCounter, Length: 8},
	{ID: IETCPControlBits, Enterprise: ReversePEN, Name: "reverseTcpControlBits", Type: Unsigned16, Semantics: Flags, Length: 2},
	{ID: IEOctetTotalCount, Enterprise: ReversePEN, Name: "reverseOctetTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8},
	{ID: IEPacketTotalCount, Enterprise: ReversePEN, Name: "reversePacketTotalCount", Type: Unsigned64, Semantics: TotalCounter, Length: 8},
}

// Lookup returns the registry entry for (enterprise, id), taking pen as
// MIRA's enterprise number.
func Lookup(pen, enterprise uint32, id uint16) (IE, bool) {
	switch enterprise {
	case 0:
		for _, ie := range Registry {
			if !ie.MIRA && ie.ID == id {
				return ie, true
			}
		}
	case ReversePEN:
		for _, ie := range ReverseElements {
			if ie.ID == id {
				return ie, true
			}
		}
	case pen:
		for _, ie := range Registry {
			if ie.MIRA && ie.ID == id {
				ie.Enterprise = pen
				return ie, true
			}
		}
	}
	return IE{}, false
}

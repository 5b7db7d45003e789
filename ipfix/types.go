package ipfix

import "encoding/binary"

// RFC 5610 information element type records: an options template whose
// scope is (privateEnterpriseNumber, informationElementId) and whose
// fields give the element's data type, semantics, units, range (none:
// 0, 0), name and description (empty), so a
// collector that does not know MIRA's enterprise elements can name and
// decode them (ipfixDump --rfc5610, libfixbuf, nfdump's IE file).

// ElementTypesTemplateID is the id of ElementTypesTemplate.
const ElementTypesTemplateID = SymptomTemplateID + 10 // 394

// ElementTypesTemplate is the RFC 5610 §3.9 options template.
func ElementTypesTemplate() *Template {
	return &Template{ID: ElementTypesTemplateID, ScopeCount: 2, Fields: []Field{
		{ID: IEPrivateEnterpriseNumber, Length: 4},
		{ID: IEInformationElementID, Length: 2},
		{ID: IEInformationElementDataType, Length: 1},
		{ID: IEInformationElementSemantics, Length: 1},
		{ID: IEInformationElementUnits, Length: 2},
		{ID: IEInformationElementRangeBegin, Length: 8},
		{ID: IEInformationElementRangeEnd, Length: 8},
		{ID: IEInformationElementName, Length: VarLen},
		{ID: IEInformationElementDescription, Length: VarLen},
	}}
}

// ianaDataType is t's code in IANA's "IPFIX Information Element Data
// Types" registry (RFC 5610 informationElementDataType).
func ianaDataType(t DataType) uint8 {
	switch t {
	case OctetArray:
		return 0
	case Unsigned8:
		return 1
	case Unsigned16:
		return 2
	case Unsigned32:
		return 3
	case Unsigned64:
		return 4
	case Float64:
		return 10
	case Boolean:
		return 11
	case MACAddress:
		return 12
	case String:
		return 13
	case DateTimeSeconds:
		return 14
	case DateTimeMilliseconds:
		return 15
	case DateTimeMicroseconds:
		return 16
	case DateTimeNanoseconds:
		return 17
	case IPv4Address:
		return 18
	case IPv6Address:
		return 19
	case SubTemplateList:
		return 21
	}
	return 0
}

// AppendElementTypeRecords appends one ElementTypesTemplate record per
// MIRA enterprise element (enterprise pen, DefaultPEN if 0) and returns
// b and the number of records.
func AppendElementTypeRecords(b []byte, pen uint32) ([]byte, int) {
	if pen == 0 {
		pen = DefaultPEN
	}
	n := 0
	for _, ie := range Registry {
		if !ie.MIRA {
			continue
		}
		b = binary.BigEndian.AppendUint32(b, pen)
		b = binary.BigEndian.AppendUint16(b, ie.ID)
		b = append(b, ianaDataType(ie.Type), byte(ie.Semantics))
		b = binary.BigEndian.AppendUint16(b, ie.Units)
		b = binary.BigEndian.AppendUint64(b, 0) // no range
		b = binary.BigEndian.AppendUint64(b, 0)
		b = appendName(b, ie.Name)
		b = append(b, 0) // no description
		n++
	}
	return b, n
}

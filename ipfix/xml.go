package ipfix

import (
	"encoding/xml"
	"io"
)

var typeNames = map[DataType]string{
	OctetArray: "octetArray", Unsigned8: "unsigned8", Unsigned16: "unsigned16", Unsigned32: "unsigned32",
	Unsigned64: "unsigned64", Boolean: "boolean", MACAddress: "macAddress", String: "string",
	DateTimeSeconds: "dateTimeSeconds", DateTimeMilliseconds: "dateTimeMilliseconds",
	DateTimeMicroseconds: "dateTimeMicroseconds", DateTimeNanoseconds: "dateTimeNanoseconds",
	IPv4Address: "ipv4Address", IPv6Address: "ipv6Address", SubTemplateList: "subTemplateList",
	Float64: "float64",
}

var semanticNames = [...]string{"default", "quantity", "totalCounter", "deltaCounter", "identifier", "flags", "list"}

func (t DataType) String() string { return typeNames[t] }

func (s Semantics) String() string {
	if int(s) < len(semanticNames) {
		return semanticNames[s]
	}
	return "unknown"
}

type xmlRecord struct {
	Name       string `xml:"name"`
	DataType   string `xml:"dataType"`
	Semantics  string `xml:"dataTypeSemantics"`
	ElementID  uint16 `xml:"elementId"`
	Enterprise uint32 `xml:"enterpriseId"`
	Status     string `xml:"status"`
}

type xmlRegistry struct {
	XMLName xml.Name    `xml:"registry"`
	Xmlns   string      `xml:"xmlns,attr"`
	ID      string      `xml:"id,attr"`
	Inner   xmlInnerReg `xml:"registry"`
}

type xmlInnerReg struct {
	ID      string      `xml:"id,attr"`
	Records []xmlRecord `xml:"record"`
}

// WriteElementXML writes MIRA's enterprise elements (with enterprise
// number pen) in the IANA registry XML format, which libfixbuf tools read:
// ipfixDump --element-file FILE then names and types them.
func WriteElementXML(w io.Writer, pen uint32) error {
	if pen == 0 {
		pen = DefaultPEN
	}
	reg := xmlRegistry{Xmlns: "http://www.iana.org/assignments", ID: "ipfix", Inner: xmlInnerReg{ID: "ipfix-information-elements"}}
	for _, ie := range Registry {
		if !ie.MIRA {
			continue
		}
		reg.Inner.Records = append(reg.Inner.Records, xmlRecord{
			Name: ie.Name, DataType: ie.Type.String(), Semantics: ie.Semantics.String(),
			ElementID: ie.ID, Enterprise: pen, Status: "current",
		})
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(reg); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

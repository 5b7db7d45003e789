package ipfix

// Names options: symptom id -> name and fast-class category id -> name,
// each an options template whose scope is the id (a MIRA element) and
// whose one other field is the name. Exporters send them with the
// templates, so over UDP they are resent on the template timer.

// Template ids of the names options.
const (
	SymptomOptionsTemplateID  = SymptomTemplateID + 5 // 389
	CategoryOptionsTemplateID = SymptomTemplateID + 6 // 390
)

// maxName is the longest name sent (a one-byte variable-length prefix).
const maxName = 254

// SymptomOptionsTemplate is the options template naming symptoms: scope
// symptomId, then symptomName.
func SymptomOptionsTemplate(pen uint32) *Template {
	if pen == 0 {
		pen = DefaultPEN
	}
	return &Template{ID: SymptomOptionsTemplateID, ScopeCount: 1, Fields: []Field{
		{ID: MIRASymptomID, Enterprise: pen, Length: 2},
		{ID: MIRASymptomName, Enterprise: pen, Length: VarLen},
	}}
}

// CategoryOptionsTemplate is the options template naming categories:
// scope categoryId, then categoryName.
func CategoryOptionsTemplate(pen uint32) *Template {
	if pen == 0 {
		pen = DefaultPEN
	}
	return &Template{ID: CategoryOptionsTemplateID, ScopeCount: 1, Fields: []Field{
		{ID: MIRACategoryID, Enterprise: pen, Length: 2},
		{ID: MIRACategoryName, Enterprise: pen, Length: VarLen},
	}}
}

// AppendNameRecord appends one id -> name record of SymptomOptionsTemplate
// or CategoryOptionsTemplate. Names longer than 254 bytes are cut.
func AppendNameRecord(b []byte, id uint16, name string) []byte {
	if len(name) > maxName {
		name = name[:maxName]
	}
	b = append(b, byte(id>>8), byte(id), byte(len(name)))
	return append(b, name...)
}

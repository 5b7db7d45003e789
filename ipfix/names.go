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

// setSymptomName records a symptom name; it reports whether it changed.
// Maps handed to Session.OnOptions are never changed: copy on write.
func (o *DomainOptions) setSymptomName(id uint16, name string) bool {
	if old, ok := o.Symptoms[id]; ok && old == name {
		return false
	}
	o.Symptoms = withName(o.Symptoms, id, name)
	return true
}

// setCategoryName records a category name; it reports whether it changed.
func (o *DomainOptions) setCategoryName(id uint16, name string) bool {
	if old, ok := o.Categories[id]; ok && old == name {
		return false
	}
	o.Categories = withName(o.Categories, id, name)
	return true
}

func withName(m map[uint16]string, id uint16, name string) map[uint16]string {
	c := make(map[uint16]string, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	c[id] = name
	return c
}

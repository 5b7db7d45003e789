package exporter

import (
	"slices"

	"github.com/mira-project/mira/ipfix"
)

// nameTemplates returns the names options templates the configuration
// calls for.
func (e *Exporter) nameTemplates() []*ipfix.Template {
	var ts []*ipfix.Template
	if len(e.cfg.SymptomNames) > 0 {
		ts = append(ts, ipfix.SymptomOptionsTemplate(e.cfg.PEN))
	}
	if len(e.cfg.CategoryNames) > 0 {
		ts = append(ts, ipfix.CategoryOptionsTemplate(e.cfg.PEN))
	}
	return ts
}

// appendNames appends the symptom and category names options records,
// in id order, and returns b and optRecs plus the records added.
func (e *Exporter) appendNames(b []byte, optRecs int) ([]byte, int) {
	for _, set := range []struct {
		id    uint16
		names map[uint16]string
	}{
		{ipfix.SymptomOptionsTemplateID, e.cfg.SymptomNames},
		{ipfix.CategoryOptionsTemplateID, e.cfg.CategoryNames},
	} {
		if len(set.names) == 0 {
			continue
		}
		ids := make([]uint16, 0, len(set.names))
		for id := range set.names {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		var s int
		b, s = ipfix.AppendSetHeader(b, set.id)
		for _, id := range ids {
			b = ipfix.AppendNameRecord(b, id, set.names[id])
			optRecs++
		}
		b = ipfix.FinishSet(b, s, 0)
	}
	return b, optRecs
}

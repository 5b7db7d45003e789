package report

import (
	"testing"

	"github.com/mira-project/mira/collector/store"
)

// TestRegulationChanges: a probe that went normal -> shedding -> 1 in 4
// -> shedding -> normal made four changes, but announced only rates 1,
// 4, 1 (shedding keeps rate 1, the collector keeps repeats once): its
// ledger's count wins; an exporter without ledgers is counted by its
// announcements.
func TestRegulationChanges(t *testing.T) {
	a := store.Origin{Exporter: "192.0.2.1", Domain: 1}
	b := store.Origin{Exporter: "192.0.2.2", Domain: 1}
	c := store.Origin{Exporter: "192.0.2.3", Domain: 7}
	anns := map[store.Origin][]store.Announcement{
		a: {{Interval: 1, Flow: true}, {Interval: 4, Flow: true}, {Interval: 1, Flow: true}},
		b: {{Interval: 8}, {Interval: 16}, {Interval: 8}},
	}
	ledgers := []store.Ledger{
		{Origin: a, SystemInit: 1, RegulationChanges: 4},
		{Origin: b, SystemInit: 1}, // says nothing: announcements count (2)
		{Origin: c, SystemInit: 1, RegulationChanges: 3},
		{Origin: c, SystemInit: 2, RegulationChanges: 2}, // a restarted process
	}
	if got := regulationChanges(anns, ledgers); got != 4+2+3+2 {
		t.Fatalf("regulationChanges = %d, want 11", got)
	}
	if got := regulationChanges(anns, nil); got != 2+2 {
		t.Fatalf("regulationChanges without ledgers = %d, want 4", got)
	}
}

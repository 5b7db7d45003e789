package report

import (
	"encoding/json"
	"testing"

	"github.com/mira-project/mira/collector/classify"
)

// TestPages checks that --offset and --limit cut the listings into
// pages that, concatenated, are the whole listing, with next_offset
// leading from each page to the next and absent on the last. The flows
// are named by the rules (as mira flows does): a page's flows had no
// category when their biflow was before the page's offset in the
// report (mira flows --offset 40 on ndpi/1kxun.pcap: 231 of 288 flows
// "Unclassified" instead of Web, DNS, ...).
func TestPages(t *testing.T) {
	flows := rollupRecords(rollupStores[1], 3)[:700]
	rules := classify.Default()
	for _, order := range []string{OrderTime, OrderBytes} {
		whole := ListFlows(flows, Options{Order: order, Rules: rules})
		wholeRep := Build(flows, Options{Order: order})
		var got []Flow
		var gotB []Biflow
		for off, n := 0, 0; ; n++ {
			l := ListFlows(flows, Options{Order: order, Offset: off, Limit: 64, Rules: rules})
			r := Build(flows, Options{Order: order, Offset: off, Limit: 64})
			got = append(got, l.Flows...)
			if off < len(wholeRep.Biflows) {
				gotB = append(gotB, r.Biflows...)
			}
			if l.Summary.Offset != off || l.Summary.Flows != len(flows) {
				t.Fatalf("page at %d: summary offset %d, flows %d", off, l.Summary.Offset, l.Summary.Flows)
			}
			if l.Summary.NextOffset == 0 {
				if off+len(l.Flows) != len(flows) {
					t.Fatalf("last page at %d has %d flows of %d", off, len(l.Flows), len(flows))
				}
				break
			}
			if l.Summary.NextOffset != off+64 || n > 100 {
				t.Fatalf("next offset %d after %d", l.Summary.NextOffset, off)
			}
			off = l.Summary.NextOffset
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(whole.Flows)
		if string(a) != string(b) {
			t.Errorf("%s: pages of flows differ from the whole listing", order)
		}
		a, _ = json.Marshal(gotB)
		b, _ = json.Marshal(wholeRep.Biflows)
		if string(a) != string(b) || len(gotB) == 0 {
			t.Errorf("%s: pages of biflows differ from the whole report (%d, %d)", order, len(gotB), len(wholeRep.Biflows))
		}
	}
}

package symptom_test

import (
	"fmt"

	"github.com/mira-project/mira/appliance/symptom"
)

// The flow meter keeps one State per flow direction and one Counts per flow
// and feeds each in-order TCP segment's payload with its offset in the
// direction.
func Example() {
	db := symptom.Default()
	var st symptom.State // in the flow table entry, per direction
	var counts symptom.Counts
	segments := []string{"220 mx.example.org ESMTP\r\n", "EHLO client\r\nMAIL FR", "OM:<a@example.org>\r\n"}
	off := uint64(0)
	for _, seg := range segments {
		off += uint64(db.Scan(&st, &counts, []byte(seg), off))
	}
	for _, c := range counts.AppendTo(nil) { // flow.Record.Symptoms
		fmt.Println(db.Name(c.ID), c.Count)
	}
	// Output:
	// MAIL 3
}

package agent

import (
	"fmt"
	"strings"
	"testing"
)

// TestPutTable checks the table builder on a two-row table: column-major
// order, the entry, sub-identifier and index of each variable, Counter32
// values taken modulo 2^32, Counter64 values whole, strings, and a
// column with no value func holding zero.
func TestPutTable(t *testing.T) {
	type row struct {
		idx  int
		n    uint64
		name string
	}
	rows := []row{{3, 1<<33 + 5, "a"}, {7, 1<<32 - 1, "b"}}
	cols := []column[row]{
		numCol(1, c32, func(r *row) uint64 { return r.n }),
		numCol(2, c64, func(r *row) uint64 { return r.n }),
		strCol(4, func(r *row) string { return r.name }),
		{sub: 9, typ: tt},
	}
	var v view
	putTable(&v, []uint32{1, 3, 6}, cols, len(rows), func(k int) (*row, []uint32) { return &rows[k], v.one(rows[k].idx) })
	var got []string
	for i, x := range v.vars {
		got = append(got, fmt.Sprintf("%v %v %d %q", v.oid(i), x.typ, x.num, x.str))
	}
	want := []string{
		`[1 3 6 1 3] Counter32 5 ""`,
		`[1 3 6 1 7] Counter32 4294967295 ""`,
		`[1 3 6 2 3] Counter64 8589934597 ""`,
		`[1 3 6 2 7] Counter64 4294967295 ""`,
		`[1 3 6 4 3] OctetString 0 "a"`,
		`[1 3 6 4 7] OctetString 0 "b"`,
		`[1 3 6 9 3] TimeTicks 0 ""`,
		`[1 3 6 9 7] TimeTicks 0 ""`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("table:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !v.sorted() {
		t.Fatal("table built out of OID order")
	}
	if subs := columnSubs(cols); fmt.Sprint(subs) != "[1 2 4 9]" {
		t.Fatalf("columnSubs = %v", subs)
	}
}

package report

import (
	"strings"
	"testing"
	"time"
)

// TestParseTimeLayouts: the times --from and --to (and the web UI's range
// fields, through the API) take, UTC unless they say otherwise. A time
// without seconds ("2019-03-14 19:03", as one types it) was refused.
func TestParseTimeLayouts(t *testing.T) {
	want := time.Date(2019, 3, 14, 19, 3, 0, 0, time.UTC)
	for _, v := range []string{"2019-03-14T19:03:00Z", "2019-03-14 19:03:00", "2019-03-14T19:03:00", "2019-03-14 19:03", "2019-03-14T19:03",
		"2019-03-14T21:03:00+02:00", "2019-03-14 19:03:00.000"} {
		got, err := ParseTime("--from", v)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v, %v; want %v", v, got, err, want)
		}
	}
	if got, err := ParseTime("--to", "2019-03-14"); err != nil || !got.Equal(time.Date(2019, 3, 14, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("a bare date: %v, %v", got, err)
	}
	for _, v := range []string{"2019-03-14 19", "14/03/2019", "2019-03-14 19:03 +0200"} {
		if _, err := ParseTime("--to", v); err == nil || !strings.Contains(err.Error(), "--to") || !strings.Contains(err.Error(), v) {
			t.Errorf("%q: %v, want an error naming --to and the value", v, err)
		}
	}
}

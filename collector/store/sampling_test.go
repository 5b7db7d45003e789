package store

import (
	"github.com/mira-project/mira/flow"
	"path/filepath"
	"testing"
	"time"
)

// TestAnnouncementsPersist: sampling announcements survive reopening, keep
// arrival order per origin, and a long history keeps its first entry and
// the latest ones.
func TestAnnouncementsPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Announcements(); err != nil || len(got) != 0 {
		t.Fatalf("new store: %v, %v", got, err)
	}
	a, b := Origin{Exporter: "192.0.2.1", Domain: 7}, Origin{Exporter: "192.0.2.1", Domain: 8}
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for i := 0; i < maxAnnouncements+10; i++ {
		if err := s.PutAnnouncements(map[Origin][]Announcement{a: {{At: at, Since: int64(i), Interval: uint32(i + 2)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutAnnouncements(map[Origin][]Announcement{b: {{At: at, Since: 5, Interval: 4, Flow: true}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Announcements()
	if err != nil {
		t.Fatal(err)
	}
	la := got[a]
	if len(la) != maxAnnouncements || la[0].Since != 0 || la[1].Since != 11 || la[len(la)-1].Since != maxAnnouncements+9 || !la[0].At.Equal(at) {
		t.Fatalf("history of %v: %d entries, first %+v, second %+v", a, len(la), la[0], la[1])
	}
	if lb := got[b]; len(lb) != 1 || !lb[0].Flow || lb[0].Interval != 4 || !lb[0].Sampled() {
		t.Fatalf("history of %v: %+v", b, lb)
	}
}

// TestAnnouncementTracker: an announcement is made for a new or changed
// sampling only, with Since the latest record end seen before it (the
// announcement time when no record came first).
func TestAnnouncementTracker(t *testing.T) {
	var tr AnnouncementTracker[string]
	at := time.Unix(1700000000, 0)
	if a, ok := tr.Sampling("quiet", 10, false, at); !ok || a.Since != at.UnixNano() || a.Interval != 10 {
		t.Fatalf("first announcement without records: %+v %v", a, ok)
	}
	tr.Records("p", []flow.Record{{Last: 5}, {Last: 9}, {Last: 7}})
	a, ok := tr.Sampling("p", 4, true, at)
	if !ok || a.Since != 9 || !a.Flow || !a.At.Equal(at) {
		t.Fatalf("announcement after records: %+v %v", a, ok)
	}
	if _, ok := tr.Sampling("p", 4, true, at.Add(time.Minute)); ok {
		t.Fatal("the same sampling announced again")
	}
	tr.Records("p", []flow.Record{{Last: 20}, {Last: 30}})
	if a, ok := tr.Sampling("p", 8, true, at.Add(time.Hour)); !ok || a.Since != 30 || a.Interval != 8 {
		t.Fatalf("changed sampling: %+v %v", a, ok)
	}
}

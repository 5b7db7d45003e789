package store

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/flow"
)

// TestNamesPerOrigin: names are kept per origin and over time; a name
// announcement of one origin changes no other origin's names; the
// tracker completes an announcement that no records separate from the
// last one instead of adding one.
func TestNamesPerOrigin(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "n.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := Origin{Exporter: "192.0.2.1", Domain: 1}, Origin{Exporter: "192.0.2.2", Domain: 1}
	var tr AnnouncementTracker[Origin]
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	put := func(o Origin, n Names) {
		t.Helper()
		if ann, ok := tr.Names(o, n, at); ok {
			if err := s.PutNameAnnouncements(map[Origin][]NameAnnouncement{o: {ann}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// a's names arrive one options record at a time, before any record.
	put(a, Names{Symptoms: map[uint16]string{1: "MAIL"}})
	put(a, Names{Symptoms: map[uint16]string{1: "MAIL", 2: "FTP"}})
	put(a, Names{Symptoms: map[uint16]string{1: "MAIL", 2: "FTP"}}) // refresh: nothing new
	put(b, Names{Symptoms: map[uint16]string{1: "SNORT-1"}})
	tr.Records(a, []flow.Record{{Last: 100}, {Last: 200}})
	// a renames 2 later: records ending after 200 (the latest end it
	// had received) are named by it.
	put(a, Names{Symptoms: map[uint16]string{1: "MAIL", 2: "FTP-DATA"}})

	x, err := s.NameIndex()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(x.Origins[a]); n != 2 {
		t.Fatalf("origin a has %d announcements, want 2: %+v", n, x.Origins[a])
	}
	for _, c := range []struct {
		o    Origin
		t    int64
		id   uint16
		want string
	}{
		{a, 50, 1, "MAIL"}, {a, 50, 2, "FTP"}, {a, 199, 2, "FTP"}, {a, 200, 2, "FTP"}, {a, 201, 2, "FTP-DATA"},
		{b, 50, 1, "SNORT-1"}, {b, 50, 2, ""},
		{Origin{Exporter: "192.0.2.1", Domain: 9}, 50, 1, ""},
	} {
		if got := x.At(c.o, c.t).Symptoms[c.id]; got != c.want {
			t.Errorf("%v at %d: symptom %d is %q, want %q", c.o, c.t, c.id, got, c.want)
		}
	}
}

// TestSchema1Names: a version 1 store's merged names still name the
// origins that have none of their own; opening it for writing marks it
// version 2.
func TestSchema1Names(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutNames(Names{Symptoms: map[uint16]string{1: "MAIL"}}); err != nil {
		t.Fatal(err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, 1))
	})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	version := func() uint32 {
		var v uint32
		s, err := Open(path, &Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		x, err := s.NameIndex()
		if err != nil {
			t.Fatal(err)
		}
		if got := x.At(Origin{Exporter: "192.0.2.1", Domain: 1}, 0).Symptoms[1]; got != "MAIL" {
			t.Errorf("symptom 1 of a version 1 store is %q, want MAIL", got)
		}
		s.db.View(func(tx *bolt.Tx) error {
			v = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchema))
			return nil
		})
		return v
	}
	if v := version(); v != 1 {
		t.Errorf("read-only open changed the version to %d", v)
	}
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if v := version(); v != SchemaVersion {
		t.Errorf("version after opening for writing: %d, want %d", v, SchemaVersion)
	}
}

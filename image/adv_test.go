package image

import (
	"bytes"
	"testing"
)

func TestADVBootOnce(t *testing.T) {
	for _, cmd := range []string{"b", "a", ""} {
		b, err := ADVBootOnce(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckADV(b); err != nil {
			t.Fatalf("%q: %v", cmd, err)
		}
		got, err := ADVBootOnceOf(b)
		if err != nil || got != cmd {
			t.Fatalf("%q: read back %q %v", cmd, got, err)
		}
	}
	// The empty ADV is what syslinux's installer writes (seen at the end
	// of ldlinux.sys: magic1, then the checksum equal to magic2).
	empty, _ := ADVBootOnce("")
	if !bytes.Equal(empty[:8], []byte{0xa5, 0x2f, 0x2d, 0x5a, 0x67, 0x17, 0x04, 0xa3}) {
		t.Errorf("empty ADV starts % x", empty[:8])
	}
	// One damaged copy: the other is used.
	b, _ := ADVBootOnce("b")
	b[20] ^= 0xff
	if got, err := ADVBootOnceOf(b); err != nil || got != "b" {
		t.Errorf("one damaged copy: %q %v", got, err)
	}
	b[advSize+20] ^= 0xff
	if err := CheckADV(b); err == nil {
		t.Error("two damaged copies accepted")
	}
}

// FuzzADV: any bytes: no panic; a consistent ADV's boot-once command
// survives a rewrite.
func FuzzADV(f *testing.F) {
	b, _ := ADVBootOnce("b")
	f.Add(b)
	f.Add(make([]byte, ADVBytes))
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, err := ADVBootOnceOf(b)
		if err != nil {
			return
		}
		again, err := ADVBootOnce(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ADVBootOnceOf(again); err != nil || got != cmd {
			t.Fatalf("%q -> %q %v", cmd, got, err)
		}
	})
}

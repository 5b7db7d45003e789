package main

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// stream returns the exporter's byte stream for n random records.
func stream(t testing.TB, n int) []byte {
	var buf bytes.Buffer
	e := exporter.NewWriter(&buf, nil)
	if err := e.Export(ipfixtest.Random(3, n)); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSplitMessages(t *testing.T) {
	b := stream(t, 2000)
	msgs, err := splitMessages("s", b)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) < 2 {
		t.Fatalf("%d messages from %d bytes, want several", len(msgs), len(b))
	}
	if got := bytes.Join(msgs, nil); !bytes.Equal(got, b) {
		t.Fatal("messages do not add up to the stream")
	}
	for i, m := range msgs {
		if int(binary.BigEndian.Uint16(m[2:])) != len(m) {
			t.Fatalf("message %d: length field %d, slice %d", i, binary.BigEndian.Uint16(m[2:]), len(m))
		}
	}

	bad := []struct {
		name, in, want string
	}{
		{"truncated", string(b[:10]), "s: offset 0: truncated message header"},
		{"version", "\x00\x09" + string(b[2:]), "s: offset 0: version 9"},
		{"short length", string(b[:2]) + "\x00\x08" + string(b[4:]), "s: offset 0: message length 8"},
		{"past end", string(b[:len(msgs[0])+20]), "runs past the end"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := splitMessages("s", []byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func FuzzSplitMessages(f *testing.F) {
	f.Add(stream(f, 50))
	f.Add([]byte{0, 10, 0, 16})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := splitMessages("fuzz", b)
		n := 0
		for _, m := range msgs {
			if len(m) < ipfixHeaderLen || int(binary.BigEndian.Uint16(m[2:])) != len(m) {
				t.Fatalf("bad message of %d bytes", len(m))
			}
			n += len(m)
		}
		if err == nil && n != len(b) {
			t.Fatalf("no error but %d of %d bytes split", n, len(b))
		}
	})
}

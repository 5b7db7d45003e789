package fore

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
)

// corpus returns the path of a file under the shared corpus
// (../shared/corpus relative to the repository root), skipping the test
// when it is absent unless MIRA_REQUIRE_PEERS=1.
func corpus(t testing.TB, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root not found")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "corpus", rel)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("MIRA_REQUIRE_PEERS") == "1" {
			t.Fatalf("corpus file missing: %v", err)
		}
		t.Skipf("corpus file missing: %v", err)
	}
	return p
}

// ethernetFrames reads the Ethernet frames of a pcap file.
func ethernetFrames(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r.LinkType() != 1 {
		t.Fatalf("%s: link type %v, want Ethernet", path, r.LinkType())
	}
	var out [][]byte
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if ci.CaptureLength != ci.Length || len(data) < 14 {
			continue
		}
		out = append(out, data)
	}
	return out
}

// ipPackets returns the IPv4 and IPv6 packets of Ethernet frames, cut to
// their IP length (Ethernet pads short frames).
func ipPackets(frames [][]byte) [][]byte {
	var out [][]byte
	for _, f := range frames {
		et := binary.BigEndian.Uint16(f[12:])
		ip := f[14:]
		switch {
		case et == 0x0800 && len(ip) >= 20:
			n := int(binary.BigEndian.Uint16(ip[2:]))
			if n < 20 || n > len(ip) {
				continue
			}
			out = append(out, ip[:n])
		case et == 0x86dd && len(ip) >= 40:
			n := 40 + int(binary.BigEndian.Uint16(ip[4:]))
			if n > len(ip) {
				continue
			}
			out = append(out, ip[:n])
		}
	}
	return out
}

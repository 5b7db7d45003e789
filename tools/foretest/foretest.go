// Package foretest holds the test helpers the ATM packages share: corpus
// paths (the captures shipped in testdata/corpus, through tools/peertest)
// and the IP packets of Ethernet captures, which the segmentation tests
// cut into cells.
package foretest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/tools/peertest"
)

// Corpus returns the path of a capture shipped in testdata/corpus (rel
// uses the layout of ../shared/corpus, with slashes); a missing one fails
// the test.
func Corpus(t testing.TB, rel string) string {
	t.Helper()
	return peertest.CorpusFile(t, filepath.FromSlash(rel))
}

// EthernetFrames reads the complete (unsnapped) Ethernet frames of a pcap
// file.
func EthernetFrames(t testing.TB, path string) [][]byte {
	t.Helper()
	r, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out [][]byte
	for {
		data, ci, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if ci.LinkType != drivers.LinkEthernet {
			t.Fatalf("%s: link type %s, want Ethernet", path, pcapfile.LinkTypeName(ci.LinkType))
		}
		if ci.CaptureLength != ci.Length || len(data) < 14 {
			continue
		}
		out = append(out, bytes.Clone(data)) // Next's slice is valid only until the next call
	}
	return out
}

// IPPackets returns the IPv4 and IPv6 packets of Ethernet frames, cut to
// their IP length (Ethernet pads short frames).
func IPPackets(frames [][]byte) [][]byte {
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

package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// GPT growth: mira-init extends the data partition over the rest of the
// disk at boot, when the image was written to a disk larger than itself
// (a 124 MiB image on a 32 GB stick) or built with --size. The GPT code
// is MIRA's own, small and checked (go-diskfs rewrites the protective
// MBR's boot code, which holds gptmbr.bin).

const (
	gptHeaderSize   = 92
	gptEntryNameOff = 56
	gptEntryNameLen = 72
	// growAlign aligns the end of a grown partition (1 MiB in sectors).
	growAlign = mib / sector
)

// MinGrownData is the smallest data partition mira-init grows to: below
// it the disk's spare room is left alone (and the data partition stays
// FAT). 256 MiB is two ext4 block groups of 4 KiB blocks, the smallest
// size for which go-diskfs writes an ext4 that e2fsck finds clean.
const MinGrownData = 256 * mib

// GPTGrowth says how a partition was (or would be) grown.
type GPTGrowth struct {
	Index            int    // 1-based partition number
	Start, OldEnd    uint64 // LBAs
	NewEnd           uint64 // LBA; == OldEnd when nothing changed
	DiskSectors      uint64
	BackupHeaderLBA  uint64
	BackupEntriesLBA uint64
}

// Grown reports whether the partition was extended.
func (g GPTGrowth) Grown() bool { return g.NewEnd > g.OldEnd }

// SizeBytes is the partition's size after growth.
func (g GPTGrowth) SizeBytes() int64 { return int64(g.NewEnd-g.Start+1) * sector }

// gpt is a parsed primary GPT (512-byte sectors).
type gptTable struct {
	header  []byte // gptHeaderSize bytes
	entries []byte
	entLBA  uint64
	nEnt    int
	entSize int
}

var le = binary.LittleEndian

// readGPT reads and checks the primary GPT of a disk.
func readGPT(r io.ReaderAt) (*gptTable, error) { return readGPTAt(r, 1) }

// readGPTAt reads and checks the GPT whose header is at lba (1: the
// primary, else a backup).
func readGPTAt(r io.ReaderAt, lba uint64) (*gptTable, error) {
	h := make([]byte, sector)
	if _, err := r.ReadAt(h, int64(lba)*sector); err != nil {
		return nil, fmt.Errorf("gpt: header: %w", err)
	}
	if string(h[:8]) != "EFI PART" {
		return nil, errors.New("gpt: no EFI PART signature at LBA 1")
	}
	hsize := le.Uint32(h[12:])
	if hsize < gptHeaderSize || hsize > sector {
		return nil, fmt.Errorf("gpt: header size %d", hsize)
	}
	hdr := bytes.Clone(h[:hsize])
	want := le.Uint32(hdr[16:])
	le.PutUint32(hdr[16:], 0)
	if crc32.ChecksumIEEE(hdr) != want {
		return nil, errors.New("gpt: header CRC mismatch")
	}
	le.PutUint32(hdr[16:], want)
	t := &gptTable{header: hdr, entLBA: le.Uint64(hdr[72:]), nEnt: int(le.Uint32(hdr[80:])), entSize: int(le.Uint32(hdr[84:]))}
	if t.entSize < 128 || t.entSize%8 != 0 || t.entSize > 4096 || t.nEnt <= 0 || t.nEnt > 1024 {
		return nil, fmt.Errorf("gpt: %d entries of %d bytes", t.nEnt, t.entSize)
	}
	entSectors := uint64((t.nEnt*t.entSize + sector - 1) / sector)
	first, last := le.Uint64(hdr[40:]), le.Uint64(hdr[48:])
	ok := le.Uint64(hdr[24:]) == lba && first <= last
	if lba == 1 {
		ok = ok && t.entLBA >= 2 && t.entLBA+entSectors <= first
	} else {
		ok = ok && t.entLBA > last && t.entLBA+entSectors <= lba
	}
	if !ok {
		return nil, fmt.Errorf("gpt: header at LBA %d says LBA %d, entries at LBA %d, usable LBAs %d-%d", lba, le.Uint64(hdr[24:]), t.entLBA, first, last)
	}
	t.entries = make([]byte, t.nEnt*t.entSize)
	if _, err := r.ReadAt(t.entries, int64(t.entLBA)*sector); err != nil {
		return nil, fmt.Errorf("gpt: entries: %w", err)
	}
	if crc32.ChecksumIEEE(t.entries) != le.Uint32(hdr[88:]) {
		return nil, errors.New("gpt: partition entries CRC mismatch")
	}
	return t, nil
}

func (t *gptTable) entry(i int) []byte { return t.entries[i*t.entSize : (i+1)*t.entSize] }

func entryName(e []byte) string {
	raw := e[gptEntryNameOff : gptEntryNameOff+gptEntryNameLen]
	u := make([]uint16, 0, len(raw)/2)
	for i := 0; i+1 < len(raw); i += 2 {
		c := le.Uint16(raw[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func (t *gptTable) sealHeader(h []byte) {
	le.PutUint32(h[16:], 0)
	le.PutUint32(h[16:], crc32.ChecksumIEEE(h))
}

// PartitionEnd returns the start and end LBAs of the partition named
// name in the primary GPT.
func PartitionEnd(r io.ReaderAt, name string) (index int, start, end uint64, err error) {
	t, err := readGPT(r)
	if err != nil {
		return 0, 0, 0, err
	}
	for i := 0; i < t.nEnt; i++ {
		e := t.entry(i)
		if entryName(e) == name && le.Uint64(e[32:]) != 0 {
			return i + 1, le.Uint64(e[32:]), le.Uint64(e[40:]), nil
		}
	}
	return 0, 0, 0, fmt.Errorf("gpt: no partition named %s", name)
}

// GrowGPT extends the partition named name, which must be the last on
// the disk, to the end of a disk of diskBytes (aligned down to 1 MiB),
// moving the backup GPT to the disk's end, when the partition then has
// at least minSize bytes. It writes the backup GPT first and the primary
// last, so that a power cut in between leaves the old, valid table. The
// protective MBR's size field is updated; its boot code is left alone.
func GrowGPT(f interface {
	io.ReaderAt
	io.WriterAt
}, diskBytes int64, name string, minSize int64) (GPTGrowth, error) {
	var g GPTGrowth
	t, err := readGPT(f)
	if err != nil {
		return g, err
	}
	idx := -1
	var maxEnd uint64
	for i := 0; i < t.nEnt; i++ {
		e := t.entry(i)
		if le.Uint64(e[32:]) == 0 && le.Uint64(e[40:]) == 0 {
			continue
		}
		if end := le.Uint64(e[40:]); end > maxEnd {
			maxEnd = end
		}
		if entryName(e) == name {
			idx = i
		}
	}
	if idx < 0 {
		return g, fmt.Errorf("gpt: no partition named %s", name)
	}
	e := t.entry(idx)
	g.Index, g.Start, g.OldEnd = idx+1, le.Uint64(e[32:]), le.Uint64(e[40:])
	g.NewEnd = g.OldEnd
	if g.OldEnd < g.Start || g.Start < le.Uint64(t.header[40:]) {
		return g, fmt.Errorf("gpt: partition %s spans LBAs %d-%d, outside the usable area", name, g.Start, g.OldEnd)
	}
	if g.OldEnd != maxEnd {
		return g, fmt.Errorf("gpt: partition %s is not the last on the disk", name)
	}
	entSectors := uint64((len(t.entries) + sector - 1) / sector)
	g.DiskSectors = uint64(diskBytes) / sector
	if g.DiskSectors < 3+2*entSectors {
		return g, fmt.Errorf("gpt: disk of %d bytes", diskBytes)
	}
	g.BackupHeaderLBA = g.DiskSectors - 1
	g.BackupEntriesLBA = g.BackupHeaderLBA - entSectors
	lastUsable := g.BackupEntriesLBA - 1
	newEnd := (lastUsable+1)/growAlign*growAlign - 1
	if newEnd <= g.OldEnd || int64(newEnd-g.Start+1)*sector < minSize {
		return g, nil
	}
	g.NewEnd = newEnd
	le.PutUint64(e[40:], newEnd)
	le.PutUint32(t.header[88:], crc32.ChecksumIEEE(t.entries))
	primary := t.header
	le.PutUint64(primary[32:], g.BackupHeaderLBA) // alternate LBA
	le.PutUint64(primary[48:], lastUsable)
	t.sealHeader(primary)
	backup := bytes.Clone(primary)
	le.PutUint64(backup[24:], g.BackupHeaderLBA)
	le.PutUint64(backup[32:], 1)
	le.PutUint64(backup[72:], g.BackupEntriesLBA)
	t.sealHeader(backup)

	pad := func(b []byte) []byte {
		out := make([]byte, (len(b)+sector-1)/sector*sector)
		copy(out, b)
		return out
	}
	for _, w := range []struct {
		lba  uint64
		data []byte
	}{
		{g.BackupEntriesLBA, pad(t.entries)},
		{g.BackupHeaderLBA, pad(backup)},
		{t.entLBA, pad(t.entries)},
		{1, pad(primary)},
	} {
		if _, err := f.WriteAt(w.data, int64(w.lba)*sector); err != nil {
			return g, fmt.Errorf("gpt: writing LBA %d: %w", w.lba, err)
		}
	}
	// Protective MBR: the 0xEE entry covers the disk (capped at 2^32-1).
	mbr := make([]byte, sector)
	if _, err := f.ReadAt(mbr, 0); err == nil && mbr[510] == 0x55 && mbr[511] == 0xAA && mbr[446+4] == 0xEE {
		le.PutUint32(mbr[446+12:], uint32(min(g.DiskSectors-1, 0xFFFFFFFF)))
		if _, err := f.WriteAt(mbr[446:446+16], 446); err != nil {
			return g, fmt.Errorf("gpt: protective MBR: %w", err)
		}
	}
	return g, nil
}

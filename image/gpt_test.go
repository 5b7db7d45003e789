package image

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// memDisk is a disk in memory.
type memDisk []byte

func (m memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m)) {
		return 0, io.ErrShortWrite
	}
	return copy(m[off:], p), nil
}

// sparseDisk is a disk in memory that holds only the sectors written.
type sparseDisk struct {
	size    int64
	sectors map[int64][]byte
}

func (d sparseDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, io.EOF
	}
	for i := range p {
		o := off + int64(i)
		if s := d.sectors[o/sector]; s != nil {
			p[i] = s[o%sector]
		} else {
			p[i] = 0
		}
	}
	return len(p), nil
}

func (d sparseDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, io.ErrShortWrite
	}
	for i, b := range p {
		o := off + int64(i)
		s := d.sectors[o/sector]
		if s == nil {
			s = make([]byte, sector)
			d.sectors[o/sector] = s
		}
		s[o%sector] = b
	}
	return len(p), nil
}

// smallDisk writes a GPT disk of size bytes with the appliance's four
// partitions (1 MiB each here) and boot code in the MBR.
func smallDisk(t testing.TB, size int64) []byte {
	t.Helper()
	name := filepath.Join(t.TempDir(), "d.img")
	d, err := diskfs.Create(name, size, diskfs.SectorSizeDefault)
	if err != nil {
		t.Fatal(err)
	}
	lba := uint64(firstLBA)
	var parts []*gpt.Partition
	for i, n := range []string{BootLabel, SlotALabel, SlotBLabel, DataLabel} {
		parts = append(parts, &gpt.Partition{Index: i + 1, Start: lba, End: lba + 2047, Size: mib, Type: gpt.LinuxFilesystem, Name: n, GUID: newUUID()})
		lba += 2048
	}
	if err := d.Partition(&gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true, Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	copy(b, bytes.Repeat([]byte{0xB0}, 440)) // stands for gptmbr.bin
	return b
}

func TestGrowGPT(t *testing.T) {
	const small = 8 * mib
	img := smallDisk(t, small)
	// Written to a disk of 300 MiB: the rest is zeros, the backup GPT
	// is in the middle.
	disk := memDisk(append(img, make([]byte, 300*mib-small)...))
	g, err := GrowGPT(disk, int64(len(disk)), DataLabel, MinGrownData)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Grown() || g.Index != 4 || g.Start != firstLBA+3*2048 {
		t.Fatalf("growth %+v", g)
	}
	// Aligned to 1 MiB and before the backup entries.
	if (g.NewEnd+1)%growAlign != 0 || g.NewEnd >= g.BackupEntriesLBA || g.BackupHeaderLBA != uint64(len(disk))/sector-1 {
		t.Fatalf("growth %+v", g)
	}
	if want := int64(300*mib - 1*mib - firstLBA*sector - 3*mib); g.SizeBytes() != want {
		t.Errorf("grown to %d bytes, want %d", g.SizeBytes(), want)
	}
	if !bytes.Equal(disk[:440], bytes.Repeat([]byte{0xB0}, 440)) {
		t.Error("the MBR boot code changed")
	}
	if got := le.Uint32(disk[446+12:]); got != uint32(len(disk)/sector-1) {
		t.Errorf("protective MBR size %d", got)
	}
	// Both copies check out; go-diskfs reads the same table.
	if _, err := readGPT(disk); err != nil {
		t.Fatal(err)
	}
	backup, err := readGPTAt(disk, g.BackupHeaderLBA)
	if err != nil {
		t.Fatalf("backup GPT: %v", err)
	}
	if !bytes.Equal(backup.entries, mustGPT(t, disk).entries) {
		t.Error("backup entries differ from the primary's")
	}
	name := filepath.Join(t.TempDir(), "grown.img")
	if err := os.WriteFile(name, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := diskfs.Open(name, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pt, err := d.GetPartitionTable()
	if err != nil {
		t.Fatal(err)
	}
	parts := pt.(*gpt.Table).Partitions
	if p := parts[3]; p.Name != DataLabel || p.End != g.NewEnd {
		t.Errorf("go-diskfs reads partition 4 as %s ending at %d, want %d", p.Name, p.End, g.NewEnd)
	}
	for i, p := range parts[:3] {
		if p.End != firstLBA+uint64(i)*2048+2047 {
			t.Errorf("partition %d moved: %+v", i+1, p)
		}
	}

	// Again: nothing to do.
	before := bytes.Clone(disk)
	g2, err := GrowGPT(disk, int64(len(disk)), DataLabel, MinGrownData)
	if err != nil || g2.Grown() || !bytes.Equal(before, disk) {
		t.Fatalf("second growth: %+v %v (changed: %v)", g2, err, !bytes.Equal(before, disk))
	}
	// A disk with too little room is left alone.
	img = smallDisk(t, small)
	disk = memDisk(append(img, make([]byte, 100*mib)...))
	before = bytes.Clone(disk)
	if g, err := GrowGPT(disk, int64(len(disk)), DataLabel, MinGrownData); err != nil || g.Grown() || !bytes.Equal(before, disk) {
		t.Fatalf("growth below the minimum: %+v %v", g, err)
	}
	// Not the last partition: refused.
	if _, err := GrowGPT(disk, int64(len(disk)), SlotBLabel, 0); err == nil {
		t.Fatal("grew a partition that is not the last")
	}
}

func mustGPT(t *testing.T, d memDisk) *gptTable {
	t.Helper()
	g, err := readGPT(d)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// FuzzGrowGPT: any first sectors and disk size: GrowGPT never panics, and
// when it grows a partition both GPT copies read back with it grown.
func FuzzGrowGPT(f *testing.F) {
	img := smallDisk(f, 8*mib)
	f.Add(img[:64*sector], uint32(300))
	f.Add(img[:64*sector], uint32(9))
	f.Fuzz(func(t *testing.T, head []byte, sizeMiB uint32) {
		size := int64(sizeMiB%1024+1) * mib
		disk := sparseDisk{size: size, sectors: map[int64][]byte{}}
		disk.WriteAt(head[:min(len(head), int(size))], 0)
		g, err := GrowGPT(disk, size, DataLabel, MinGrownData)
		if err != nil || !g.Grown() {
			return
		}
		p, err := readGPT(disk)
		if err != nil {
			t.Fatalf("primary after growth: %v", err)
		}
		b, err := readGPTAt(disk, g.BackupHeaderLBA)
		if err != nil {
			t.Fatalf("backup after growth: %v", err)
		}
		if !bytes.Equal(p.entries, b.entries) || le.Uint64(p.entry(g.Index - 1)[40:]) != g.NewEnd {
			t.Fatal("grown tables disagree")
		}
	})
}

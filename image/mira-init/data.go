//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"golang.org/x/sys/unix"

	"github.com/mira-project/mira/image"
)

// The data partition (see package image, "Data partition"): built as an
// 34 MiB FAT; when the disk has room, grown over the rest of the disk at
// boot and made ext4, carrying its files over.

// ext4Group is the size of an ext4 block group with 4 KiB blocks; the
// file system made on a grown partition is a whole number of them
// (go-diskfs writes a resize inode e2fsck rejects when the last group
// is partial: checked at 129 MiB).
const ext4Group = 128 << 20

// growDataPartition extends the data partition dev (e.g. /dev/vda4) over
// the rest of its disk when that makes it at least image.MinGrownData,
// and tells the kernel the new size.
func growDataPartition(dev string) error {
	part := filepath.Base(dev)
	link, err := os.Readlink("/sys/class/block/" + part)
	if err != nil {
		return err
	}
	diskName := filepath.Base(filepath.Dir(link))
	pno, err := sysfsInt("/sys/class/block/" + part + "/partition")
	if err != nil {
		return err
	}
	sectors, err := sysfsInt("/sys/class/block/" + diskName + "/size")
	if err != nil {
		return err
	}
	f, err := os.OpenFile("/dev/"+diskName, os.O_RDWR|os.O_SYNC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	g, err := image.GrowGPT(f, sectors*512, image.DataLabel, image.MinGrownData)
	if err != nil {
		return err
	}
	if g.Index != int(pno) {
		return fmt.Errorf("the GPT has %s as partition %d, the kernel %s as %d", image.DataLabel, g.Index, part, pno)
	}
	if !g.Grown() {
		return nil
	}
	if err := f.Sync(); err != nil {
		return err
	}
	p := unix.BlkpgPartition{Start: int64(g.Start) * 512, Length: g.SizeBytes(), Pno: int32(pno)}
	arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_RESIZE_PARTITION, Datalen: int32(unsafe.Sizeof(p)), Data: (*byte)(unsafe.Pointer(&p))}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); errno != 0 {
		return fmt.Errorf("GPT grown; BLKPG resize of %s: %w (the new size applies at the next boot)", part, errno)
	}
	log.Printf("data partition %s grown from %d to %d MiB (disk %s, %d MiB)", part,
		(g.OldEnd-g.Start+1)*512>>20, g.SizeBytes()>>20, diskName, sectors*512>>20)
	return nil
}

func sysfsInt(name string) (int64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// isExt4 reports whether dev holds an ext4 (or ext2/3) superblock.
func isExt4(dev string) bool {
	f, err := os.Open(dev)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 1024+56); err != nil {
		return false
	}
	return binary.LittleEndian.Uint16(magic[:]) == 0xEF53
}

// mountData mounts the data partition on dataDir: ext4 (journalled,
// dirsync) when it is, else FAT with -o sync.
func mountData(dev string) (string, error) {
	os.MkdirAll(dataDir, 0o755)
	if isExt4(dev) {
		// dirsync: a rename (the SNMP engine state's atomic replace) is
		// on disk when it returns, not at the next journal commit.
		if err := unix.Mount(dev, dataDir, "ext4", unix.MS_NOATIME|unix.MS_DIRSYNC, ""); err != nil {
			return "", fmt.Errorf("mount %s (ext4) on %s: %w", dev, dataDir, err)
		}
		return "ext4", nil
	}
	// sync: FAT has no journal; a probe's power can be cut at any time.
	if err := unix.Mount(dev, dataDir, "vfat", unix.MS_NOATIME|unix.MS_SYNCHRONOUS, ""); err != nil {
		return "", fmt.Errorf("mount %s (vfat) on %s: %w", dev, dataDir, err)
	}
	return "vfat", nil
}

// dataTmpfs puts a tmpfs on dataDir.
func dataTmpfs() {
	os.MkdirAll(dataDir, 0o755)
	unix.Mount("tmpfs", dataDir, "tmpfs", 0, "mode=0755")
}

// mounted reports whether dir is a mount point.
func mounted(dir string) bool {
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// convertData makes a data partition of at least image.MinGrownData that
// is not ext4 (the built FAT, grown, or unreadable) ext4, carrying over
// the files mounted on dataDir (the FAT's, or the tmpfs that stood in)
// through memory (a 34 MiB FAT holds little). It runs once the random
// pool is seeded (the new file system's UUIDs). A power cut during it
// loses those files, not the partition: the next boot finds no file
// system and makes the ext4 again.
func convertData(dev string) error {
	size, err := sysfsInt("/sys/class/block/" + filepath.Base(dev) + "/size")
	if err != nil {
		return err
	}
	fsSize := size * 512 / ext4Group * ext4Group
	if fsSize < image.MinGrownData {
		return nil
	}
	type saved struct {
		name string
		mode fs.FileMode
		data []byte
	}
	var files []saved
	err = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dataDir {
			return err
		}
		rel, _ := filepath.Rel(dataDir, p)
		s := saved{name: rel}
		if d.IsDir() {
			s.mode = fs.ModeDir | 0o755
		} else if d.Type().IsRegular() {
			if s.data, err = os.ReadFile(p); err != nil {
				return err
			}
			s.mode = 0o644
			if strings.HasPrefix(rel, "tls/") {
				s.mode = 0o600 // keys
			}
		} else {
			return nil
		}
		files = append(files, s)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the FAT data partition: %w", err)
	}
	if err := unix.Unmount(dataDir, 0); err != nil {
		return err
	}
	start := time.Now()
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	// Clear the FAT boot sector first: a half-made ext4 then reads as
	// neither, and the next boot makes it again.
	if _, err := f.WriteAt(make([]byte, 4096), 0); err != nil {
		f.Close()
		return err
	}
	_, err = ext4.Create(file.New(f, false), fsSize, 0, 512, &ext4.Params{VolumeName: image.DataLabel, SectorsPerBlock: 8})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("making ext4 on %s: %w", dev, err)
	}
	if _, err := mountData(dev); err != nil {
		return err
	}
	var errs []error
	for _, s := range files {
		p := filepath.Join(dataDir, s.name)
		if s.mode.IsDir() {
			errs = append(errs, os.MkdirAll(p, 0o755))
			continue
		}
		errs = append(errs, os.WriteFile(p, s.data, s.mode))
	}
	unix.Sync()
	log.Printf("data partition %s: ext4 of %d MiB made in %.1fs, %d files and directories carried over",
		dev, fsSize>>20, time.Since(start).Seconds(), len(files))
	return errors.Join(errs...)
}

package image

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/mira-project/mira/appliance/config"
	collectorconfig "github.com/mira-project/mira/collector/config"

	// The kernel is a Go module: go.sum pins it and the module proxy
	// serves it (see doc.go). The package itself is empty.
	_ "github.com/gokrazy/kernel.amd64"
)

// KernelModule is the Go module whose vmlinuz the image boots.
const KernelModule = "github.com/gokrazy/kernel.amd64"

// Partition layout (GPT, 512-byte sectors). The partition names are how
// mira-init and `mira image update` find them.
const (
	sector       = 512
	mib          = 1 << 20
	BootLabel    = "MIRA_BOOT" // FAT32 ESP: boot loaders, kernels, mira/probe.yaml
	SlotALabel   = "MIRA_A"    // squashfs root, slot A
	SlotBLabel   = "MIRA_B"    // squashfs root, slot B
	DataLabel    = "MIRA_DATA" // FAT32, writable state
	bootSize     = 40 * mib    // two kernels (16.5 MB each) and the loaders
	slotSize     = 24 * mib
	dataSize     = 34 * mib // FAT32 needs >= 65,525 clusters (512-byte ones here) for other systems to read it
	firstLBA     = 2048
	gptTailBytes = 1 * mib // backup GPT
	// ImageSize is the size of the raw disk image.
	ImageSize = firstLBA*sector + bootSize + 2*slotSize + dataSize + gptTailBytes
)

// Default locations of the boot loaders Debian ships (packages syslinux,
// syslinux-common and systemd-boot-efi).
const (
	DefaultSyslinux  = "syslinux"
	DefaultGPTMBR    = "/usr/lib/syslinux/mbr/gptmbr.bin"
	DefaultSDBootEFI = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
)

// Options says what to build.
type Options struct {
	Output     string // raw disk image to write
	ProbeYAML  []byte // mira/probe.yaml on the boot partition (nil: DefaultProbeYAML)
	SystemYAML []byte // mira/system.yaml (nil: DefaultSystemYAML)
	Collector  bool   // add mira-collector (all-in-one box)
	// Size is the size of the image file when larger than ImageSize:
	// the data partition is grown over the rest at the first boot, as
	// when a smaller image is written to a larger disk.
	Size int64
	// CollectorYAML is mira/collector.yaml (nil: DefaultCollectorYAML
	// with a password made for this image).
	CollectorYAML []byte
	// Bin is a directory holding prebuilt mira-init, mira-probe (and
	// mira-collector); empty: build them from the module at ModuleDir.
	Bin       string
	ModuleDir string // empty: the module of the current directory
	Kernel    string // vmlinuz; empty: the KernelModule's
	Syslinux  string // the syslinux installer (mtools flavour)
	GPTMBR    string
	SDBootEFI string
	// SignKey is an ed25519 private key (PEM): the image then accepts
	// only updates signed with it (mira/update.pub), and Build writes the
	// signature of its own payload to Output+".sig".
	SignKey string
	// UpdateCert and UpdateKey are a TLS certificate (PEM, the chain
	// first) and its private key (PEM) for the update endpoint: written
	// to the data partition's tls/update.crt and tls/update.key, so that
	// mira-init serves the endpoint over HTTPS from the first boot.
	UpdateCert, UpdateKey string
	Log                   io.Writer
}

// DefaultProbeYAML is mira/probe.yaml when no --config is given: capture
// on eth1, SNMP on the management port for the local network.
var DefaultProbeYAML = []byte(`# MIRA probe configuration (mira-probe). Edit it on any PC: this file is on
# the boot partition (FAT) at mira/probe.yaml. A copy at mira/probe.yaml on
# the data partition, if present, takes precedence. Changes apply at the next boot.
capture: {interfaces: [eth1]}
# export: [{url: "udp://collector.example:4739"}]
snmp_listen: 0.0.0.0:161
snmp: {communities: [{name: public, sources: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]}]}
`)

// DefaultSystemYAML is mira/system.yaml: what mira-init does before
// starting the probe.
var DefaultSystemYAML = []byte(`# MIRA appliance system settings (mira-init). Changes apply at the next boot.
management:
  interface: eth0
  # dhcp: true                 # the default unless an address is given
  # address: 192.0.2.10/24     # static instead of DHCP
  # gateway: 192.0.2.1
  # dns: [192.0.2.1]
ntp: [pool.ntp.org]
# syslog: 192.0.2.5:514        # remote syslog (UDP)
# watchdog: true               # feed /dev/watchdog when the hardware has one (default true)
# update:                      # mira image update --to https://probe:8443 --token ...
#   listen: 0.0.0.0:8443       # HTTPS with data partition tls/update.crt + update.key, else HTTP
#   token: change-me-to-a-long-secret
#   trial: 2m                  # an updated slot must run mira-probe healthy this long at most
`)

// Build writes the disk image.
func Build(ctx context.Context, o Options) error {
	if o.Output == "" {
		return errors.New("image: no output file")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	probeYAML := o.ProbeYAML
	if probeYAML == nil {
		probeYAML = DefaultProbeYAML
		if o.Collector {
			probeYAML = DefaultAllInOneProbeYAML
		}
	}
	size := max(o.Size, ImageSize)
	collectorYAML := o.CollectorYAML
	if o.Collector && collectorYAML == nil {
		collectorYAML = defaultCollectorYAML(newPassword())
	}
	if collectorYAML != nil {
		if _, err := collectorconfig.ParseCollector("collector.yaml", collectorYAML); err != nil {
			return err
		}
	}
	if _, err := config.ParseProbe("probe.yaml", probeYAML); err != nil {
		return err
	}
	if _, err := ParseSystem("system.yaml", o.SystemYAML); err != nil {
		return err
	}
	systemYAML := o.SystemYAML
	if systemYAML == nil {
		systemYAML = DefaultSystemYAML
	}
	if o.Syslinux == "" {
		o.Syslinux = DefaultSyslinux
	}
	if o.GPTMBR == "" {
		o.GPTMBR = DefaultGPTMBR
	}
	if o.SDBootEFI == "" {
		o.SDBootEFI = DefaultSDBootEFI
	}
	gptmbr, err := os.ReadFile(o.GPTMBR)
	if err != nil {
		return fmt.Errorf("image: BIOS boot code (Debian package syslinux): %w", err)
	}
	sdboot, err := os.ReadFile(o.SDBootEFI)
	if err != nil {
		return fmt.Errorf("image: UEFI boot loader (Debian package systemd-boot-efi): %w", err)
	}
	syslinux, err := exec.LookPath(o.Syslinux)
	if err != nil {
		return fmt.Errorf("image: BIOS boot loader installer (Debian package syslinux): %w", err)
	}
	var signKey ed25519.PrivateKey
	if o.SignKey != "" {
		if signKey, err = LoadSigningKey(o.SignKey); err != nil {
			return err
		}
	}
	var updateCert, updateKey []byte
	if o.UpdateCert != "" || o.UpdateKey != "" {
		if updateCert, updateKey, err = loadUpdateTLS(o.UpdateCert, o.UpdateKey); err != nil {
			return err
		}
	}
	if o.Kernel == "" {
		if o.Kernel, err = KernelPath(ctx, o.ModuleDir); err != nil {
			return err
		}
	}
	kernel, err := os.ReadFile(o.Kernel)
	if err != nil {
		return fmt.Errorf("image: kernel: %w", err)
	}

	tmp, err := os.MkdirTemp("", "mira-image")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := o.Bin
	if bin == "" {
		bin = filepath.Join(tmp, "bin")
		if err := BuildBinaries(ctx, o.ModuleDir, bin, o.Collector, o.Log); err != nil {
			return err
		}
	}
	progs := []string{"mira-init", "mira-probe"}
	if o.Collector {
		progs = append(progs, "mira-collector")
	}

	out := o.Output + ".tmp"
	os.Remove(out)
	d, err := diskfs.Create(out, size, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer os.Remove(out)
	uuids := make([]string, 4)
	for i := range uuids {
		uuids[i] = newUUID()
	}
	lba := uint64(firstLBA)
	part := func(idx int, name string, typ gpt.Type, size int64, attrs uint64) *gpt.Partition {
		p := &gpt.Partition{Index: idx, Start: lba, End: lba + uint64(size)/sector - 1, Size: uint64(size),
			Type: typ, Name: name, GUID: uuids[idx-1], Attributes: attrs}
		lba += uint64(size) / sector
		return p
	}
	table := &gpt.Table{
		LogicalSectorSize:  sector,
		PhysicalSectorSize: sector,
		ProtectiveMBR:      true,
		Partitions: []*gpt.Partition{
			// Attribute bit 2: legacy BIOS bootable (gptmbr.bin boots it).
			part(1, BootLabel, gpt.EFISystemPartition, bootSize, 1<<2),
			part(2, SlotALabel, gpt.LinuxFilesystem, slotSize, 0),
			part(3, SlotBLabel, gpt.LinuxFilesystem, slotSize, 0),
			part(4, DataLabel, gpt.LinuxFilesystem, dataSize, 0),
		},
	}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("image: partition table: %w", err)
	}

	// Root slot A (slot B stays empty until the first update).
	if err := writeRoot(d, 2, bin, progs, tmp); err != nil {
		return err
	}
	// Data partition: empty FAT32, mira-init makes its directories.
	dfs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 4, FSType: filesystem.TypeFat32, VolumeLabel: DataLabel})
	if err != nil {
		return fmt.Errorf("image: data partition: %w", err)
	}
	seed := make([]byte, 512)
	if _, err := rand.Read(seed); err != nil {
		return err
	}
	if err := writeFile(dfs, "/random-seed", seed); err != nil {
		return err
	}
	if err := writeFile(dfs, "/README.TXT", []byte("MIRA data partition: SNMP engine state, logs, spool, overrides.\r\n")); err != nil {
		return err
	}
	if updateCert != nil {
		// mira-init keeps tls/ files 0600 when it carries them over to ext4.
		if err := writeFile(dfs, "/tls/update.crt", updateCert); err != nil {
			return err
		}
		if err := writeFile(dfs, "/tls/update.key", updateKey); err != nil {
			return err
		}
	}
	// Boot partition.
	bfs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: BootLabel})
	if err != nil {
		return fmt.Errorf("image: boot partition: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{"/EFI/BOOT/BOOTX64.EFI", sdboot},
		{"/loader/loader.conf", []byte("default mira-a.conf\ntimeout 0\neditor no\n")},
		{"/loader/entries/mira-a.conf", []byte(sdbootEntry("a", uuids[1]))},
		{"/syslinux.cfg", []byte(SyslinuxConfig("a", uuids[1], uuids[2]))},
		{"/vmlinuz-a", kernel},
		{"/mira/probe.yaml", probeYAML},
		{"/mira/system.yaml", systemYAML},
		{"/mira/slots.json", mustJSON(Slots{Active: "a", A: SlotInfo{PartUUID: uuids[1], Version: Version(bin)}, B: SlotInfo{PartUUID: uuids[2]}})},
	}
	if o.Collector {
		files = append(files, struct {
			name string
			data []byte
		}{"/mira/collector.yaml", collectorYAML})
	}
	if signKey != nil {
		files = append(files, struct {
			name string
			data []byte
		}{"/mira/update.pub", PublicKeyPEM(signKey)})
	}
	for _, f := range files {
		if err := writeFile(bfs, f.name, f.data); err != nil {
			return err
		}
	}
	if err := d.Close(); err != nil {
		return err
	}
	// BIOS: syslinux's boot sector and ldlinux.sys go into the FAT
	// (installed through mtools, no mount), gptmbr.bin into the MBR's
	// boot code area; it chain-loads the partition flagged legacy-bootable.
	cmd := exec.CommandContext(ctx, syslinux, "--install", "--offset", fmt.Sprint(firstLBA*sector), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("image: %s: %v: %s", cmd, err, b)
	}
	f, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if len(gptmbr) > 440 {
		gptmbr = gptmbr[:440]
	}
	if _, err := f.WriteAt(gptmbr, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(o.Log, "image: %s (%d MiB): slot A %s, kernel %s\n", o.Output, size/mib, uuids[1], o.Kernel)
	if signKey != nil {
		p, err := ReadPayload(out)
		if err != nil {
			return err
		}
		d := p.Digest()
		sig := base64.StdEncoding.EncodeToString(ed25519.Sign(signKey, d[:]))
		if err := os.WriteFile(o.Output+".sig", []byte(sig+"\n"), 0o644); err != nil {
			return err
		}
	}
	return os.Rename(out, o.Output)
}

// loadUpdateTLS reads the update endpoint's certificate and key and
// checks that they make a pair (what mira-init's HTTPS server will load).
func loadUpdateTLS(certFile, keyFile string) (cert, key []byte, err error) {
	if certFile == "" || keyFile == "" {
		return nil, nil, errors.New("image: the update endpoint's TLS needs both a certificate and its key")
	}
	if cert, err = os.ReadFile(certFile); err != nil {
		return nil, nil, fmt.Errorf("image: update certificate: %w", err)
	}
	if key, err = os.ReadFile(keyFile); err != nil {
		return nil, nil, fmt.Errorf("image: update key: %w", err)
	}
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		return nil, nil, fmt.Errorf("image: update certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return cert, key, nil
}

// KernelCmdline is the kernel command line for a slot.
func KernelCmdline(slot, partUUID string) string {
	return "root=PARTUUID=" + partUUID + " rootfstype=squashfs ro rootwait init=/mira/bin/mira-init" +
		" console=tty0 console=ttyS0,115200 quiet panic=10 mira.slot=" + slot
}

func sdbootEntry(slot, partUUID string) string {
	return fmt.Sprintf("title MIRA (slot %s)\nlinux /vmlinuz-%s\noptions %s\n", strings.ToUpper(slot), slot, KernelCmdline(slot, partUUID))
}

// SyslinuxConfig is syslinux.cfg: boot the default slot at once; the other
// slot is a label that `syslinux --once` can select for one boot.
func SyslinuxConfig(def, uuidA, uuidB string) string {
	return fmt.Sprintf("DEFAULT %s\nPROMPT 0\nTIMEOUT 0\n\nLABEL a\n  LINUX /vmlinuz-a\n  APPEND %s\n\nLABEL b\n  LINUX /vmlinuz-b\n  APPEND %s\n",
		def, KernelCmdline("a", uuidA), KernelCmdline("b", uuidB))
}

// Slots is mira/slots.json on the boot partition: which root slot is
// active and what each holds.
type Slots struct {
	Active string   `json:"active"`
	A      SlotInfo `json:"a"`
	B      SlotInfo `json:"b"`
}

// SlotInfo describes one root slot.
type SlotInfo struct {
	PartUUID string `json:"partuuid"`
	Version  string `json:"version,omitempty"`
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// Version is a short description of the binaries in bin (the size and
// modification time of mira-probe), recorded in slots.json.
func Version(bin string) string {
	fi, err := os.Stat(filepath.Join(bin, "mira-probe"))
	if err != nil {
		return ""
	}
	return fmt.Sprintf("mira-probe %d bytes %s", fi.Size(), fi.ModTime().UTC().Format("2006-01-02T15:04:05Z"))
}

// writeRoot makes the squashfs root file system of a slot (in a file of
// its own: go-diskfs makes squashfs only on 4 KiB-sector devices) and
// copies it into the partition.
func writeRoot(d *disk.Disk, partIdx int, bin string, progs []string, tmp string) error {
	name, err := Squashfs(bin, progs, tmp)
	if err != nil {
		return err
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := d.WritePartitionContents(partIdx, f); err != nil {
		return fmt.Errorf("image: root slot %d: %w", partIdx, err)
	}
	return nil
}

// Squashfs writes a root file system with progs from bin in tmp and
// returns its file name; the file is at most slotSize bytes.
func Squashfs(bin string, progs []string, tmp string) (string, error) {
	work, err := os.MkdirTemp(tmp, "squashfs")
	if err != nil {
		return "", err
	}
	name := filepath.Join(tmp, filepath.Base(work)+".img")
	sd, err := diskfs.Create(name, slotSize, diskfs.SectorSize4k)
	if err != nil {
		return "", fmt.Errorf("image: root file system: %w", err)
	}
	defer sd.Close()
	fs, err := sd.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeSquashfs, WorkDir: work})
	if err != nil {
		return "", fmt.Errorf("image: root file system: %w", err)
	}
	// go-diskfs builds the squashfs from its workspace directory, so the
	// tree (modes, the symlink) is made there with the os package.
	sq := fs.(*squashfs.FileSystem)
	ws := sq.Workspace()
	for _, dir := range []string{"dev", "proc", "sys", "run", "tmp", "boot", "data", "etc", "mira/bin"} {
		if err := os.MkdirAll(filepath.Join(ws, dir), 0o755); err != nil {
			return "", fmt.Errorf("image: root file system: %w", err)
		}
	}
	// Go's resolver reads /etc/resolv.conf; mira-init bind-mounts the
	// one it writes from DHCP over this empty file (go-diskfs cannot
	// store a symlink to a path that does not exist at build time).
	if err := os.WriteFile(filepath.Join(ws, "etc/resolv.conf"), nil, 0o644); err != nil {
		return "", fmt.Errorf("image: root file system: %w", err)
	}
	if err := os.WriteFile(filepath.Join(ws, "etc/hosts"), []byte("127.0.0.1 localhost\n::1 localhost\n"), 0o644); err != nil {
		return "", fmt.Errorf("image: root file system: %w", err)
	}
	for _, p := range progs {
		b, err := os.ReadFile(filepath.Join(bin, p))
		if err != nil {
			return "", fmt.Errorf("image: %w", err)
		}
		if err := os.WriteFile(filepath.Join(ws, "mira/bin", p), b, 0o755); err != nil {
			return "", fmt.Errorf("image: root file system: %w", err)
		}
	}
	if err := sq.Finalize(squashfs.FinalizeOptions{Compression: &squashfs.CompressorGzip{CompressionLevel: 9}}); err != nil {
		return "", fmt.Errorf("image: root file system (too large for %d MiB?): %w", slotSize/mib, err)
	}
	return name, nil
}

func writeFile(fs filesystem.FileSystem, name string, data []byte) error {
	if dir := path.Dir(name); dir != "/" {
		if err := fs.Mkdir(dir); err != nil {
			return fmt.Errorf("image: mkdir %s: %w", dir, err)
		}
	}
	f, err := fs.OpenFile(name, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("image: %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("image: %s: %w", name, err)
	}
	return f.Close()
}

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// KernelPath finds vmlinuz in the kernel module (downloading it through
// the module proxy when it is not in the module cache).
func KernelPath(ctx context.Context, moduleDir string) (string, error) {
	mod := KernelModule
	// The version this program was built with (go.sum pins it), so that
	// the lookup works outside the source tree too.
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == KernelModule {
				mod += "@" + d.Version
			}
		}
	}
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod)
	cmd.Dir = moduleDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("image: go mod download %s: %v: %s", KernelModule, err, stderr.Bytes())
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("image: go mod download %s: %w", KernelModule, err)
	}
	if m.Error != "" {
		return "", fmt.Errorf("image: go mod download %s: %s", KernelModule, m.Error)
	}
	return filepath.Join(m.Dir, "vmlinuz"), nil
}

// BuildBinaries builds the image's programs into dir: mira-init (pure
// Go), mira-probe statically linked with cgo (the Fore driver's device
// access), mira-collector when asked.
func BuildBinaries(ctx context.Context, moduleDir, dir string, collector bool, log io.Writer) error {
	type prog struct {
		name, pkg string
		cgo       bool
	}
	progs := []prog{
		{"mira-init", "github.com/mira-project/mira/image/mira-init", false},
		{"mira-probe", "github.com/mira-project/mira/cmd/mira-probe", true},
	}
	if collector {
		progs = append(progs, prog{"mira-collector", "github.com/mira-project/mira/cmd/mira-collector", false})
	}
	for _, p := range progs {
		args := []string{"build", "-trimpath", "-tags", "netgo,osusergo", "-o", filepath.Join(dir, p.name)}
		env := append(os.Environ(), "GOOS=linux", "GOARCH=amd64")
		if p.cgo {
			args = append(args, "-ldflags", "-s -w -extldflags -static")
			env = append(env, "CGO_ENABLED=1")
		} else {
			args = append(args, "-ldflags", "-s -w")
			env = append(env, "CGO_ENABLED=0")
		}
		cmd := exec.CommandContext(ctx, "go", append(args, p.pkg)...)
		cmd.Dir = moduleDir
		cmd.Env = env
		fmt.Fprintf(log, "image: %s\n", strings.Join(cmd.Args, " "))
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("image: building %s: %v\n%s", p.name, err, b)
		}
	}
	return nil
}

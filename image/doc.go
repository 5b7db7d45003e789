// Package image builds the MIRA appliance: a raw disk image a person
// writes to a USB stick or disk (dd) and boots on a PC, which then
// measures from power-on (`mira image build`, paper §3: PC hardware with a
// free Unix).
//
// # Layout
//
// GPT, 512-byte sectors, 124 MiB in all, written in Go with go-diskfs (no
// root, loop devices or mounts):
//
//	1 MIRA_BOOT  40 MiB  FAT32 EFI system partition, also legacy-BIOS bootable:
//	                     EFI/BOOT/BOOTX64.EFI + loader/ (systemd-boot), ldlinux.sys +
//	                     syslinux.cfg (SYSLINUX), vmlinuz-a/-b, and the user's files
//	                     mira/probe.yaml, mira/system.yaml, mira/slots.json
//	2 MIRA_A     24 MiB  squashfs root, slot A (read-only): /mira/bin/{mira-init,mira-probe[,mira-collector]}
//	3 MIRA_B     24 MiB  squashfs root, slot B (empty until an update writes it)
//	4 MIRA_DATA  34 MiB  FAT32, writable: snmp/engine.state (snmpEngineBoots, engine ID),
//	                     log/ (rotated), spool/, tls/, mira/probe.yaml (an override), random-seed
//
// The boot partition is FAT so that a person can edit mira/probe.yaml from
// any PC after flashing, as with a Raspberry Pi's boot partition.
//
// # Data partition
//
// The image builds it as a 34 MiB FAT32 (go-diskfs writes FAT32 and the
// files in it reliably; its ext4 writer failed on a Mkdir and wrote a
// resize inode e2fsck rejects for sizes that are not whole block groups).
// 34 MiB is the smallest FAT32 of 512-byte clusters with the 65,525
// clusters FAT32 needs: smaller, Linux mounts it but mtools (and other
// systems) refuse it, so files could not be added from a PC before the
// first boot.
// At every boot mira-init looks at the disk: when it has room after the
// data partition (the 124 MiB image written to a larger stick or disk, or
// built with --size) and the partition would then be at least 256 MiB,
// it extends the partition to the end of the disk (aligned to 1 MiB) with
// its own GPT code (GrowGPT: the backup GPT is written at the disk's end
// first, the primary last, so that a power cut in between leaves the old,
// valid table; the protective MBR's boot code, gptmbr.bin, is kept, which
// go-diskfs would rewrite) and tells the kernel (BLKPG_RESIZE_PARTITION;
// the partition is not mounted yet). A data partition of 256 MiB or more
// that is not ext4 is then made ext4 with go-diskfs's ext4.Create (whole
// 128 MiB block groups of 4 KiB blocks: e2fsck -fn clean from 256 MiB to
// 17 GiB, checked; not at 129 MiB) once the random pool is seeded, the
// FAT's files carried over through memory (tls/ files 0600). ext4 has a
// journal, so it is mounted without -o sync but with -o dirsync (a rename,
// as of the SNMP engine state, is on disk when it returns); a FAT data
// partition (no room to grow) keeps -o sync (FAT has no journal and a
// probe's power is cut at any time).
// Measured under TCG: a 1 GiB disk, the partition grown 8 -> 934 MiB, an
// ext4 of 896 MiB made in 1.6 s; after a reset and a clean power-off
// e2fsck -fn finds it clean (TestApplianceBoots, first boot SeaBIOS).
// TestApplianceUpdate's first boot is OVMF on a 1 GiB disk (the backup
// GPT in the middle of the disk, as after dd to a larger stick): OVMF
// boots it and mira-init grows and converts the partition the same way.
// A power cut while the ext4 is made loses the FAT's few files (the next
// boot finds no file system and makes it again).
//
// --collector adds mira-collector (and its web UI) to the root. Its
// mira/collector.yaml (boot partition) stores to /data/collector/mira.db
// and serves the web UI and HTTP API on :8080 behind user mira and a
// password made for each image (printed by the build); mira-init bounds
// the store (retention.max_size, unless set) to three quarters of the data
// partition. On the 34 MiB FAT the store soon fills it (bbolt grows the
// file by doubling its mapping: 16, 32 MiB), so an all-in-one box needs a
// disk of about 1 GB or more, or --size. The probe of a --collector image
// built without --config exports to udp://127.0.0.1:4739.
//
// # Booting
//
//   - UEFI: systemd-boot (Debian package systemd-boot-efi) as
//     EFI/BOOT/BOOTX64.EFI reads loader/entries/mira-a.conf and starts the
//     kernel's EFI stub with the command line. The kernel's EFI stub alone
//     cannot be BOOTX64.EFI: the gokrazy kernel has no built-in command
//     line, and firmware passes none from the fallback path. systemd-boot
//     also has boot counting (entries named mira-b+1-0.conf) for trying an
//     updated slot once.
//   - Legacy BIOS: SYSLINUX (Debian package syslinux): gptmbr.bin in the
//     MBR boot code chain-loads the partition flagged legacy-BIOS-bootable
//     (the ESP), whose boot sector and ldlinux.sys are installed by
//     `syslinux --install --offset` through mtools on the image file.
//
// Both are Debian packages read from the build host (the image build
// fails with the package's name when they are absent); gokrazy's own MBR
// loader is in github.com/gokrazy/internal, which cannot be imported.
// Checked under QEMU TCG: SeaBIOS (SYSLINUX) and OVMF (systemd-boot) both
// reach mira-init; see qemu_test.go for the timings.
//
// The kernel boots straight from the squashfs slot
// (root=PARTUUID=… rootfstype=squashfs): no initramfs, since everything
// needed to reach the root is built into the kernel.
//
// # Kernel
//
// The github.com/gokrazy/kernel.amd64 Go module (Linux 7.1, bzImage with
// EFI stub, zstd-compressed): go.sum pins it and the module proxy serves
// it, so building an image downloads nothing else. Its modules.builtin
// has what MIRA needs: virtio_net/virtio_blk, e1000, e1000e, igb, igc,
// i40e, ice, r8169, mlx5_core, AF_PACKET, squashfs, vfat, ext4, NVMe,
// AHCI, xhci + usb-storage, evdev and the ACPI button (power button). It
// lacks, for MIRA: watchdog drivers other than i6300esb (QEMU) and
// sp5100_tco (AMD) — no iTCO_wdt (Intel chipsets), so most Intel PCs run
// without a hardware watchdog; no loadable modules at all (a NIC it does
// not build in cannot be added without another kernel); ATM is absent
// from every kernel (the Fore driver talks to its own device node). A
// Debian kernel package (linux-image-amd64) has all drivers as modules
// but needs an initramfs with the module loading, is not pinned by
// go.sum and its XZ decompression costs 3-4 s under TCG; the gokrazy
// kernel was chosen for the simpler boot (no initramfs) and the pinning.
//
// # PID 1
//
// mira-init (package main under image/mira-init) is MIRA's own init
// rather than github.com/gokrazy/gokrazy: gokrazy's init expects its own
// partition layout (boot, root A/B as partitions 2/3, /perm ext4) and
// MBR/PARTUUID scheme written by gokrazy/tools (not served), runs every
// binary in /gokrazy as a service with its own update HTTP endpoint, and
// cannot be told to keep capture ports silent before they come up. What
// mira-init does, in order: mount proc, sys, devtmpfs, /run, /tmp; the
// boot partition (/boot) and data partition (/data, sync); credit the
// random pool with the stored seed (getrandom blocks otherwise for tens
// of seconds on a fresh VM, stalling DHCP and the SNMP engine ID); read
// mira/system.yaml and the probe configuration (the data partition's
// mira/probe.yaml wins over the boot partition's; snmp.state_file is set
// to /data/snmp/engine.state unless given); bring the capture ports up
// silent (IPv6 disabled by sysctl before link-up, IFF_NOARP, no address,
// promiscuous, GRO and LRO off through the ethtool ioctl); the management
// interface by DHCP (insomniacslk/dhcp, renewed) or statically, with
// netlink; NTP (beevik/ntp) in the background; start mira-probe (and
// mira-collector) with exponential restart backoff, output to the console
// and to rotated logs on /data/log; feed /dev/watchdog when a driver
// provides it; wait for the ACPI power button (KEY_POWER on the "Power
// Button" evdev device), Ctrl-Alt-Del or SIGTERM; then SIGTERM to the
// services (mira-probe exports every pending flow), sync, unmount, power
// off. There is no shell or remote login in the image.
//
// # Updates
//
// `mira image update --to URL --token T mira.img` sends the new image's
// payload (slot A's squashfs and vmlinuz-a) to the probe's update
// endpoint (mira-init, when mira/system.yaml sets update.listen and
// update.token; HTTPS when data/tls/update.crt and update.key exist:
// `mira image build --update-cert C --update-key K` puts them on the data
// partition's FAT, checked to be a pair, and mira-init carries them over
// to the ext4 with mode 0600; the client trusts the certificate given to
// --ca). TestApplianceUpdate sends every update over HTTPS: a client
// without the CA fails the handshake (x509: certificate signed by unknown
// authority), plain HTTP gets no status, a wrong token gets 401.
// The probe reads the whole payload into memory and checks its SHA-256
// and, when its own image was built with --sign (mira/update.pub), the
// ed25519 signature (OUTPUT.sig from `mira image build --sign`) before it
// writes a byte. It then writes the inactive slot's partition and
// vmlinuz-<slot>, reads both back, makes the new slot the loaders' choice
// for the next boot only (below), records the trial in mira/trial and
// reboots. mira-init of the trial slot first points both loaders back at
// the old slot (so any later reboot returns there), then commits the new
// slot (the defaults, slots.json) once mira-probe is healthy, or reboots
// into the old slot when the trial time (update.trial, default 2 min)
// passes first. Healthy: mira-probe has run 10 s without exiting and,
// when the configuration has an SNMP agent and a community loopback may
// use, the agent answers on loopback and the probe is exporting: every
// configured exporter is in miraExporterTable and connected
// (miraExpState), and once the probe has expired a flow
// (miraFlowsExpired*), each has sent an IPFIX message. On a quiet capture
// link no flow expires, and an exporter has nothing to send (its
// templates go with its first record) and reads connected until an export
// fails, so "exporting" then rests on the connected state alone.
//
// The slot and the kernel are read back from the disk (page cache
// dropped) and compared with what was received before the loaders name
// them.
//
// A new slot that fails before mira-init starts (a kernel that panics,
// a root that does not mount; panic=10 reboots):
//   - UEFI: bounded by systemd-boot's boot counting. The trial entry is
//     loader/entries/mira-X+1-0.conf and loader.conf's default names that
//     file exactly; systemd-boot renames it mira-X+0-1.conf before it
//     starts the kernel, so after one failed boot the default names no
//     file and systemd-boot boots the first entry with tries left, the
//     old slot's; its mira-init reports "did not reach mira-init" and
//     points the default back at itself. A commit renames the entry to
//     mira-X.conf. Checked in QEMU with systemd-boot 252 (OVMF):
//     TestApplianceUpdate sends a slot whose root does not mount: one
//     boot into it, then back on the old slot (2 reboots). A default of
//     "mira-X*" matched the used-up entry too and booted it again and
//     again (measured: tries done 1, 2, ...).
//   - Legacy BIOS: bounded by SYSLINUX's boot-once record. syslinux.cfg's
//     DEFAULT stays the old slot; the new slot's label goes into a
//     boot-once record in the ADV at the end of ldlinux.sys, rewritten in
//     place (SYSLINUX reads it through the sector list its installer
//     patched into the boot sector; replacing the file would move it).
//     SYSLINUX clears the record on disk before it starts the kernel, so
//     the next boot takes DEFAULT. Checked in QEMU (SeaBIOS, syslinux
//     6.04 installed through mtools, whose installer does not implement
//     --once): TestApplianceUpdate sends the same broken slot: one boot
//     into it, then back on the old slot (2 reboots). An earlier note
//     here said SYSLINUX ignored such a record; written as image.ADVBootOnce
//     writes it, in place, it did not. Should the ADV be unreadable,
//     DEFAULT names the trial slot until its mira-init points it back
//     (unbounded if the kernel fails first; logged).
//
// # ISO
//
// `-o mira.iso` is not offered. The kernel could boot one (isofs, sr_mod,
// loop and ahci are built in) and go-diskfs writes ISO9660 with El Torito
// entries, but the appliance's design does not carry over: the root is a
// squashfs partition named by PARTUUID, which a CD has not, so an ISO
// needs the root as an initramfs (a cpio mira-init would run from), the
// configuration read from the ISO or a second medium, no A/B slots or
// updates, state only in RAM; legacy BIOS needs isolinux.bin (Debian
// package isolinux, not installed here) and UEFI a FAT image with
// systemd-boot and the kernel inside the ISO. That is a second boot path
// to build and test; the raw image already boots from a USB stick.
package image

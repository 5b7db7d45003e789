//go:build linux

package main

import (
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rndAddEntropy is RNDADDENTROPY, _IOW('R', 0x03, int[2]).
const rndAddEntropy = 0x40085203

// seedRandom credits the kernel's random pool with the seed kept on the
// data partition, as systemd-random-seed does. Without it getrandom(2)
// (crypto/rand: DHCP transaction IDs, the SNMP engine ID) can block for
// a long time on a freshly booted box with no hardware RNG the kernel
// trusts, as in QEMU without -cpu max. The seed is replaced at once, so
// it is never credited twice. The image builder writes the first seed;
// images flashed from one file share it for their first boot only.
func seedRandom() {
	name := filepath.Join(dataDir, "random-seed")
	seed, err := os.ReadFile(name)
	if err == nil && len(seed) >= 32 {
		// Mix in what differs between boxes and boots even for the first boot.
		var extra [16]byte
		binary.LittleEndian.PutUint64(extra[:], uint64(time.Now().UnixNano()))
		b, _ := os.ReadFile("/sys/class/net/eth0/address")
		seed = append(append(seed, extra[:]...), b...)
		buf := make([]byte, 8+len(seed))
		binary.LittleEndian.PutUint32(buf[0:], uint32(8*min(len(seed)-len(b)-16, 512))) // bits credited: the stored seed only
		binary.LittleEndian.PutUint32(buf[4:], uint32(len(seed)))
		copy(buf[8:], seed)
		if f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0); err == nil {
			_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndAddEntropy, uintptr(unsafe.Pointer(&buf[0])))
			if errno != 0 {
				log.Printf("random seed: RNDADDENTROPY: %v", errno)
			}
			f.Close()
		}
	} else if err != nil && !os.IsNotExist(err) {
		log.Printf("random seed: %v", err)
	}
	next := make([]byte, 512)
	rand.Read(next)
	if err := os.WriteFile(name, next, 0o600); err != nil {
		log.Printf("random seed: %v", err)
	}
}

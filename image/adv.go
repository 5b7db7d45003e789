package image

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// SYSLINUX's auxiliary data vector (ADV): two copies of 512 bytes at the
// end of ldlinux.sys, read by SYSLINUX at boot through the sector list
// its installer patched into the boot sector, so it must be rewritten in
// place (never by replacing the file). A boot-once record (tag 1) makes
// SYSLINUX boot that command line once: it clears the record on disk
// before it starts the kernel, as systemd-boot's boot counter is used up
// (checked in QEMU with SeaBIOS and syslinux 6.04 installed through
// mtools, whose installer does not implement --once: the record written
// here booted the trial label once, the next boot took DEFAULT).
const (
	advSize     = 512
	advMagic1   = 0x5a2d2fa5 // head
	advMagic2   = 0xa3041767 // total checksum
	advMagic3   = 0xdd28bf64 // tail
	advBootOnce = 1
	// ADVBytes is the size of both copies at the end of ldlinux.sys.
	ADVBytes = 2 * advSize
)

// CheckADV reports whether b (the last ADVBytes of ldlinux.sys) holds a
// well-formed ADV in at least one copy.
func CheckADV(b []byte) error {
	if len(b) != ADVBytes {
		return fmt.Errorf("adv: %d bytes, want %d", len(b), ADVBytes)
	}
	for i := 0; i < 2; i++ {
		if advConsistent(b[i*advSize : (i+1)*advSize]) {
			return nil
		}
	}
	return errors.New("adv: no consistent copy (not SYSLINUX's ldlinux.sys?)")
}

func advConsistent(a []byte) bool {
	if binary.LittleEndian.Uint32(a) != advMagic1 || binary.LittleEndian.Uint32(a[advSize-4:]) != advMagic3 {
		return false
	}
	var sum uint32
	for i := 4; i < advSize-4; i += 4 {
		sum += binary.LittleEndian.Uint32(a[i:])
	}
	return sum == advMagic2
}

// ADVBootOnce returns both ADV copies holding only a boot-once record
// for cmd (empty: no record, the ADV cleared).
func ADVBootOnce(cmd string) ([]byte, error) {
	if len(cmd) > 255 || len(cmd)+2 > advSize-12 {
		return nil, fmt.Errorf("adv: boot-once command of %d bytes", len(cmd))
	}
	a := make([]byte, advSize)
	if cmd != "" {
		a[8] = advBootOnce
		a[9] = byte(len(cmd))
		copy(a[10:], cmd)
	}
	binary.LittleEndian.PutUint32(a, advMagic1)
	binary.LittleEndian.PutUint32(a[advSize-4:], advMagic3)
	sum := uint32(advMagic2)
	for i := 8; i < advSize-4; i += 4 {
		sum -= binary.LittleEndian.Uint32(a[i:])
	}
	binary.LittleEndian.PutUint32(a[4:], sum)
	return append(a, a...), nil
}

// ADVBootOnceOf returns the boot-once command in an ADV ("" when none).
func ADVBootOnceOf(b []byte) (string, error) {
	if err := CheckADV(b); err != nil {
		return "", err
	}
	a := b[:advSize]
	if !advConsistent(a) {
		a = b[advSize:]
	}
	for p := 8; p+2 <= advSize-4; {
		tag, n := a[p], int(a[p+1])
		if tag == 0 {
			return "", nil
		}
		if p+2+n > advSize-4 {
			return "", errors.New("adv: record runs past the end")
		}
		if tag == advBootOnce {
			return string(a[p+2 : p+2+n]), nil
		}
		p += 2 + n
	}
	return "", nil
}

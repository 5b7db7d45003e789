package image

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// SYSLINUX's auxiliary data vector (ADV): two identical 512-byte copies
// in the last two sectors of ldlinux.sys, each MAGIC1, a checksum, 500
// bytes of tag-length-value records and MAGIC3. ldlinux reads it at boot;
// the BOOTONCE record is a command line it boots once and then clears.
const (
	advSize     = 512
	advMagic1   = 0x5a2d2fa5
	advMagic2   = 0xa3041767 // checksum base
	advMagic3   = 0xdd28bf64
	advBootOnce = 2
)

// SetBootOnce returns ldlinux.sys with its ADV set to boot cmd (a label
// of syslinux.cfg) once; cmd "" clears it.
func SetBootOnce(ldlinux []byte, cmd string) ([]byte, error) {
	if len(ldlinux) < 2*advSize {
		return nil, errors.New("ldlinux.sys: too short for an ADV")
	}
	if len(cmd) > 255 {
		return nil, errors.New("ldlinux.sys: boot-once command too long")
	}
	out := append([]byte(nil), ldlinux...)
	adv := out[len(out)-2*advSize:]
	if binary.LittleEndian.Uint32(adv) != advMagic1 || binary.LittleEndian.Uint32(adv[advSize-4:]) != advMagic3 {
		return nil, fmt.Errorf("ldlinux.sys: no ADV in the last two sectors")
	}
	// Keep the other records, drop any boot-once record.
	var recs []byte
	data := adv[8 : advSize-4]
	for i := 0; i+1 < len(data) && data[i] != 0; {
		tag, n := data[i], int(data[i+1])
		if i+2+n > len(data) {
			break
		}
		if tag != advBootOnce {
			recs = append(recs, data[i:i+2+n]...)
		}
		i += 2 + n
	}
	if cmd != "" {
		recs = append(recs, advBootOnce, byte(len(cmd)))
		recs = append(recs, cmd...)
	}
	if len(recs) > len(data) {
		return nil, errors.New("ldlinux.sys: ADV full")
	}
	clear(data)
	copy(data, recs)
	csum := uint32(advMagic2)
	for i := 8; i < advSize-4; i += 4 {
		csum -= binary.LittleEndian.Uint32(adv[i:])
	}
	binary.LittleEndian.PutUint32(adv[4:], csum)
	copy(adv[advSize:], adv[:advSize])
	return out, nil
}

// BootOnce returns the boot-once command in ldlinux.sys's ADV, if any.
func BootOnce(ldlinux []byte) string {
	if len(ldlinux) < 2*advSize {
		return ""
	}
	adv := ldlinux[len(ldlinux)-2*advSize:]
	data := adv[8 : advSize-4]
	for i := 0; i+1 < len(data) && data[i] != 0; {
		tag, n := data[i], int(data[i+1])
		if i+2+n > len(data) {
			return ""
		}
		if tag == advBootOnce {
			return string(data[i+2 : i+2+n])
		}
		i += 2 + n
	}
	return ""
}

// Command pcapfloor measures what reading a classic pcap costs at the
// least, for comparing mira-probe's floor with softflowd (issue 13 goal
// 1's limit): the file is mapped and walked record by record, prefetched
// 8 KiB ahead (as drivers/pcapfile does), and each mode does the least a
// step of the probe could:
//
//	walk   reads each packet's IPv4 protocol byte (any reader's floor)
//	touch  reads every byte of every record, 8 at a time (the floor of
//	       any scan that looks at all of them)
//	meter  walk, plus counting packets and octets per IPv4 5-tuple in an
//	       open-addressing table of 2^20 slots: no timeouts, records,
//	       export, IPv6, tunnels or VLANs (far less than a flow meter)
//
// It prints the packets seen and its own CPU time (user+sys, getrusage).
//
//	pcapfloor MODE TRACE
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: pcapfloor walk|touch|meter TRACE")
		os.Exit(2)
	}
	n, sum, err := run(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pcapfloor:", err)
		os.Exit(1)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("mode=%s packets=%d cpu_s=%.3f user_s=%.3f sys_s=%.3f (checksum %d)\n", os.Args[1], n, cpu.Seconds(),
		time.Duration(ru.Utime.Nano()).Seconds(), time.Duration(ru.Stime.Nano()).Seconds(), sum)
}

type slot struct {
	a, q       uint64 // addresses; ports and protocol
	pkts, octs uint64
}

func run(mode, path string) (n, sum uint64, err error) {
	if mode != "walk" && mode != "touch" && mode != "meter" {
		return 0, 0, fmt.Errorf("unknown mode %q", mode)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	mm, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return 0, 0, err
	}
	defer syscall.Munmap(mm)
	if len(mm) < 24 || binary.LittleEndian.Uint32(mm) != 0xa1b2c3d4 && binary.LittleEndian.Uint32(mm) != 0xa1b23c4d {
		return 0, 0, fmt.Errorf("%s: not a little-endian classic pcap", path)
	}
	var tab []slot
	if mode == "meter" {
		tab = make([]slot, 1<<20)
	}
	off, pf := 24, 24
	for off+16 <= len(mm) {
		caplen := int(binary.LittleEndian.Uint32(mm[off+8:]))
		if off+16+caplen > len(mm) {
			return n, sum, fmt.Errorf("%s: record at %d truncated", path, off)
		}
		p := mm[off+16 : off+16+caplen]
		off += 16 + caplen
		n++
		for lim := min(off+8192, len(mm)); pf < lim; pf += 64 {
			sum += uint64(mm[pf]) // a load, not a prefetch: Go has none
		}
		switch mode {
		case "walk":
			if len(p) > 23 {
				sum += uint64(p[23])
			}
		case "touch":
			b := unsafe.Pointer(unsafe.SliceData(p))
			for i := 0; i+8 <= len(p); i += 8 {
				sum += *(*uint64)(unsafe.Add(b, i))
			}
		case "meter":
			if len(p) < 38 || binary.BigEndian.Uint16(p[12:]) != 0x0800 {
				continue
			}
			ihl := int(p[14]&15) * 4
			if len(p) < 14+ihl+4 {
				continue
			}
			a := binary.LittleEndian.Uint64(p[26:])
			q := uint64(binary.LittleEndian.Uint32(p[14+ihl:])) | uint64(p[23])<<32
			h := (a*0x9E3779B97F4A7C15 ^ q*0xC2B2AE3D27D4EB4F) >> 44
			for {
				s := &tab[h]
				if s.pkts == 0 {
					s.a, s.q = a, q
				}
				if s.a == a && s.q == q {
					s.pkts++
					s.octs += uint64(len(p))
					break
				}
				h = (h + 1) & (1<<20 - 1)
			}
		}
	}
	for i := range tab {
		if tab[i].pkts > 0 {
			sum++
		}
	}
	return n, sum, nil
}

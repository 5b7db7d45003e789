// Package fatm is the Go mirror of fatmcap.h, the capture device ABI of
// MIRA's Fore-style ATM driver: ioctl numbers, the control structs with
// their byte layouts, and the shared-memory receive ring (consumer and
// producer sides). The cgo driver in package fore and the FUSE device
// simulator in package fatmfs both use it; a cgo test in package fore
// checks that the layouts agree with the C header.
//
// Hazards: a Ring works on memory shared with another process (an mmap of
// the device). Head and tail are accessed atomically; the record returned
// by Ring.Peek aliases the ring until Ring.Release.
package fatm

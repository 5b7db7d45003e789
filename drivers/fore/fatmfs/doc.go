//go:build linux

// Package fatmfs simulates a Fore-style ATM capture device for tests: it
// serves, over FUSE (go-fuse), a device file whose ioctl, read and
// mmap-ring behaviour follow fatmcap.h, fed from a stream of 53-byte
// cells. The driver under test opens the file like the real /dev/fatmN,
// so its cgo open/ioctl/mmap calls go through the real kernel path.
//
// The simulated card does what the hardware would: HEC check and
// correction, VPI/VCI filtering, and in AAL5 mode reassembly (with package
// atm) and CRC checking, counting everything in its statistics block.
// Production is driven by the reader: each read() or FATMIOC_WAIT makes
// the card process cells until it has records to deliver, so tests are
// deterministic. When the cells run out, read() returns 0 and WAIT
// reports FATM_WAIT_EOF.
//
// The mmap ring needs FUSE passthrough (Linux 6.9+, root): the ring lives
// in a /dev/shm file that backs the FUSE file. Without passthrough the
// device reports ring_size 0 and serves read() only.
//
// Mounting needs /dev/fuse and root (or fusermount); Mount returns the
// error otherwise, for the caller to skip on.
package fatmfs

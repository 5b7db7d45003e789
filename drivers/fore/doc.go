// Package fore is MIRA's ATM WAN capture driver, after the probe of the
// paper that captured STM-1 links through Fore adapters on passive
// splitters. It turns ATM captures into IP packets tagged with their
// VPI/VCI, as drivers.Source values:
//
//   - Open, OpenERF and OpenLegacyATM read capture files (Endace ERF
//     TYPE_ATM and TYPE_AAL5 records, the legacy 64-byte ATM cell records,
//     gzip-compressed or not). Cells go through package atm: HEC, AAL5
//     reassembly per VC, RFC 2684 decapsulation. First-cell-only captures
//     are detected and delivered as truncated packets whose Length comes
//     from the IP header. ERF Ethernet records in the same files are
//     delivered as LinkEthernet without a VC.
//   - OpenLive (or OpenSpec with an operator's "PATH,vc=1/100,..." string)
//     opens a capture device that speaks the ABI of fatmcap.h: ioctls for
//     info, mode, VPI/VCI filters and statistics, an mmap receive ring,
//     read() as the fallback. OpenDevice is the project's only cgo code and
//     needs linux && cgo; other builds return an error wrapping
//     drivers.ErrUnsupported. Package fatmfs simulates such a device over
//     FUSE so the cgo path is tested through the kernel.
//
// Packets are delivered as LinkRaw (routed IPv4/IPv6) or LinkEthernet
// (bridged), with CaptureInfo.VPI, VCI and HasVC set.
//
// Hazards: the data returned by Next aliases reassembly buffers, the file
// buffer or the device ring and is valid until the next call to Next or
// Close. Sources are owned by one goroutine.
package fore

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
//     from the IP header.
//   - OpenDevice opens a capture device that speaks the ABI of fatmcap.h
//     (ioctls, an mmap ring, read/poll fallback). It is the project's only
//     cgo code and needs linux && cgo; other builds return an error
//     wrapping drivers.ErrUnsupported.
//
// Packets are delivered as LinkRaw (routed IPv4/IPv6) or LinkEthernet
// (bridged), with CaptureInfo.VPI, VCI and HasVC set.
//
// Hazards: the data returned by Next aliases reassembly buffers, the file
// buffer or the device ring and is valid until the next call to Next or
// Close. Sources are owned by one goroutine.
package fore

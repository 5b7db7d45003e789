// Package atm implements the ATM cell layer that MIRA's WAN probe needs to
// turn captured cells into IP packets: UNI and NNI cell headers, the header
// error control (HEC) check with single-bit correction, AAL5 reassembly per
// virtual circuit, RFC 2684 (RFC 1483) decapsulation, and the reverse path
// (segmentation into cells) used by the synthetic cell generator and the
// device simulator.
//
// Everything here is pure Go and allocation-free per cell once a VC has
// been seen: Reassembler keeps one reusable buffer per VC, and Processor
// chains HEC check, reassembly and decapsulation.
//
// Hazards: frames returned by Reassembler.Push and Processor methods alias
// the per-VC reassembly buffer (or the caller's cell) and are valid only
// until the next call on the same Reassembler or Processor. A Reassembler
// and a Processor are not safe for concurrent use; one capture goroutine
// owns each. Per-cell failures are never returned as errors: they are
// counted by Reason (per VC and in total) and visible through Stats.
package atm

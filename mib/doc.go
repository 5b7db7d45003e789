// Package mib holds MIRA-PROBE-MIB, the SNMP MIB of the MIRA probe
// (enterprises.32473.1, the RFC 5612 documentation enterprise), and the
// Go constants for its OIDs.
//
// oids_gen.go is generated from MIRA-PROBE-MIB.txt by `go generate`
// (internal/mibgen); TestGeneratedUpToDate fails when the two disagree,
// so edit the MIB and regenerate, never the generated file. The MIB must
// stay `smilint -l 6` clean (TestSmilint).
package mib

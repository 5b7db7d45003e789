// Package erf reads the ATM capture files users have: Endace ERF records
// (type 3 ATM cells, type 4 AAL5 PDUs, and the other types only far enough
// to skip them) and the legacy ATM cell format of the Auckland traces
// (64-byte records with an ERF timestamp). It decodes records; turning
// cells into packets is package atm's job and exposing a capture source is
// package fore's.
//
// Hazard: Record.Data aliases the reader's buffer and is valid only until
// the next call to Next. Readers are not safe for concurrent use.
package erf

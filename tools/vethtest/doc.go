// Package vethtest builds, for tests, two network namespaces joined by a
// veth pair, so live capture can be tested against known traffic without
// touching the host's interfaces.
//
// Each side has a fixed MAC and IPv4 address, a permanent neighbour entry
// for the other side (so no ARP appears on the link) and IPv6 disabled
// (so no neighbour discovery, MLD or router solicitations appear): the
// only frames on the link are the ones the test sends.
//
// The package is Linux-only.
//
// Hazard: Do runs its function on a locked OS thread switched into a
// namespace; goroutines the function starts run elsewhere, in the host
// namespace. Sockets it creates stay in the namespace and may be used
// from any goroutine afterwards.
package vethtest

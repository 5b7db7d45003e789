// Package aggregate labels flows with an aggregate id from configured
// rules and decides a probe's capture scope (paper §3.3, §4.1).
//
// A rule matches on any of: source, destination or either-side prefixes
// (IPv4 and IPv6, looked up in gaissmai/bart tables), source,
// destination or either-side MAC addresses, VLAN ids, capture interfaces,
// ATM VPI/VCI, and the packet's direction relative to the "home"
// networks (incoming, outgoing, transit, internal). Within one condition
// any listed value matches; all the conditions a rule sets must match.
// Rules are tried in order and the first match wins; a packet no rule
// matches gets aggregate 0 ("none").
//
// The capture scope keeps only packets of some aggregates and some
// directions, so that two probes on one path can split the traffic
// between them and never count a packet twice.
//
// A Classifier is read-only after New and safe for concurrent use;
// Classify and InScope allocate nothing.
package aggregate

// Package fastclass is the probe's fast classification (paper §3.2):
// lists of IPv4 and IPv6 addresses and prefixes, each naming a usage
// category. A flow whose destination (else its source) address lies in a
// listed prefix gets that category at its first packet; the meter then
// skips its payload scan and the category id travels with the flow record.
//
// Lists are YAML:
//
//	version: 1
//	categories:
//	  - category: Web
//	    prefixes: [192.0.2.0/24, "2001:db8:80::/48", 198.51.100.7]
//
// or CSV, one "prefix,category" per line ("#" starts a comment). The
// longest matching prefix wins. Category ids count from 1 in order of
// first appearance over all files loaded together; Names maps them back,
// for the IPFIX options record that names categories.
//
// Hazards: a Table is immutable after loading and safe for concurrent
// lookups; Classify allocates nothing.
package fastclass

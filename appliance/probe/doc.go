// Package probe assembles mira-probe: it opens the capture sources named
// by the configuration, runs the packet pipeline, sends expired flow
// records to every IPFIX export target, and serves /metrics (and SNMP)
// while it runs. Reading files, Run returns once every flow has been
// exported; live, it runs until its context is cancelled, then flushes.
package probe

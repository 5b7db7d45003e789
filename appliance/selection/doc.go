// Package selection is the probe's PSAMP selection process (RFC 5474):
// it puts together the capture scope and aggregate labels of package
// aggregate and the packet or flow sampling of package sampling, as
// configured in probe.yaml, and gives the pipeline, the meter and the
// exporter what each needs: a per-worker packet filter, the aggregate
// label of new flows, the sampling stamp of exported records, and the
// options the exporter announces (sampling configuration, aggregate
// names).
//
// Order per packet: scope first (packets out of scope are not this
// probe's to count), then sampling. Both are counted by reason.
//
// A Selection is safe for concurrent use; each worker's Filter carries
// its own sampler state and must stay on that worker.
package selection

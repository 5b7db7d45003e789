// Package workload generates the deterministic multi-pattern benchmark
// workload shared by the Go matcher benchmark and tools/hsbench (the
// vectorscan reference): a pattern set of protocol keywords and random
// literals (plain, case-insensitive, binary and line-anchored) and a corpus
// of packet-sized records (random bytes, HTTP, SMTP and text) with planted
// pattern occurrences.
//
// The same generator feeds BenchmarkScan, the streamed-versus-whole tests
// and tools/hsbench (gomatch -gen writes the files hsbench reads), so the
// Go matcher and vectorscan are measured on identical input.
package workload

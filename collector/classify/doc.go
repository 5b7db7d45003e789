// Package classify turns symptom counts into usage categories at the
// collector: an ordered list of rules, each a category and a boolean
// expression (github.com/expr-lang/expr) over a biflow's symptom counts and
// counters. Rules apply in order, the first that holds names the category;
// a biflow no rule matches keeps the probe's fast-class category, or is
// the report's default category ("Unclassified"). An embedded default rule set
// (default.yaml, returned by Default) covers Mail, Chat, FTP (control and
// data connections: announced ones through ftp_data, others through
// pair), P2P, Leisure, Web, VoIP, Secure, DNS,
// Executable, Archive and Network, then falls back to well-known ports
// only for biflows without any symptom (captures that begin mid-connection).
//
// # Rule language
//
// A rules file is YAML:
//
//	version: 1
//	rules:
//	  - category: Leisure
//	    when: majority(MP3, AUDIO, VIDEO, SPORTS)
//
// In an expression every identifier that is not one of the names below is
// a symptom: its occurrences in the biflow (both directions), 0 when the
// biflow has none (so rules may name symptoms a database lacks, such as
// SPORTS). Names:
//
//	proto, sport, dport          the biflow's protocol and ports (initiator's view)
//	packets, octets              initiator to responder
//	rpackets, roctets            responder to initiator
//	bytes                        octets + roctets
//	duration                     seconds from first to last packet
//	total                        occurrences of all symptoms
//	symptoms                     map of symptom name to occurrences (symptoms["A-B"])
//	pair                         map of symptom name to occurrences in the other
//	                             biflows between the same two addresses that
//	                             overlap this one in time (±PairWindow)
//	ftp_data                     1 when an FTP control connection between the
//	                             same two addresses, within PairWindow, announced
//	                             one of this biflow's ports as its data port
//	                             (PORT, EPRT, 227, 229: flow.App.FTPData), else 0
//	aggregate                    the aggregate's name
//	sum(a, ...)                  the sum of its arguments
//	max(a, ...)                  the largest argument
//	share(a, ...)                sum(a, ...) / total, 0 when total is 0
//	majority(a, ...)             sum(a, ...) is more than half of total
//
// expr's other operators and builtins are available. Errors name the file,
// line, rule number and category.
//
// Rules read a biflow as an Input: the connection (flow.Biflow) with
// its symptom and aggregate names. The report (collector/report) names
// consolidated biflows and classifies them (report.Options.Rules); this
// package imports neither the report nor the store.
//
// # Evaluation
//
// Each rule is compiled by expr and, where it only uses numbers, the
// names above, symptoms["X"] and pair.X lookups, + - * /, comparisons,
// && || !, `in` over a list of integers and the four functions, also
// into Go closures over a fixed environment (compile.go), which is what
// runs: no map of names is built per biflow, the pair context is asked
// of the Index only when a rule reads it, and a rule that needs one of a
// set of symptoms (X > 0, sum(...) > 0, majority(...)) is skipped for
// biflows without any of them. Anything else runs on expr's VM as
// written. Both give the same results (compile_test.go checks them
// against each other on random biflows and expressions).
//
// Hazards: a Rules value is immutable and safe for concurrent use. Rules
// that use pair (UsesPair) need every biflow of the report first: index
// them (NewIndex or Rules.NewIndex, Index.Add) and classify with the
// index (Rules.Classify), as report.Build does in two passes; without an
// index pair evaluates as empty. An index from Rules.NewIndex keeps only
// the biflows whose symptoms those rules read through pair.X (or that
// announced FTP data ports): use it with those rules only.
package classify

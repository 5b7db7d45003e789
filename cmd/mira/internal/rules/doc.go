// Package rules implements `mira rules`: tools for the rule files of the
// probe and the collector. `mira rules import-snort FILE` converts
// Snort/Suricata rules into a symptom database (appliance/symptom's YAML)
// and `mira rules check FILE` compiles a classification rules file
// (collector/classify) and reports its first error with file and line.
//
// # Import mapping
//
// One symptom per classtype (named after it in upper case with "-" made
// "_", "SNORT" for rules without a classtype), because MIRA's categories
// are coarse usage classes and a classtype is the closest Snort notion:
// per-rule symptoms would give thousands of ids no classification rule
// names. Each content becomes one pattern: its |hex| parts are kept,
// nocase becomes nocase: true, offset and depth become the pattern's
// offset and depth window counted from the start of the flow direction's
// payload (as Snort counts them from the start of the payload buffer).
//
// What a pattern cannot express is listed per rule (line, sid, option,
// reason) as comments at the top of the output and on standard error,
// never dropped silently: negated content, relative modifiers (distance,
// within), pcre, byte_test and byte_jump, flow and flowbits, the HTTP and
// other sticky buffers, and the AND between a rule's several contents
// (they become independent patterns, each counted on its own). Rules with
// no usable content are skipped and listed. The converter itself is
// symptom.ImportSnort; this package checks that its output compiles.
package rules

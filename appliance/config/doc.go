// Package config reads the probe's and the collector's YAML configuration.
//
// Defaults are embedded (probe.yaml, collector.yaml in this package), so
// every binary runs with no file at all; a user file overlays them. Unknown
// keys are errors, and every error names the file, the line and the key.
package config

// Package config reads mira-collector's YAML configuration.
//
// Defaults are embedded (collector.yaml in this package), so the collector
// runs with no file at all; a user file overlays them. Unknown keys are
// errors, and every error names the file, the line and the key
// (internal/yamlnode, shared with the probe's appliance/config). Listener
// and forward URLs are checked by internal/endpoint, the syntax the
// exporter uses, without importing the probe's exporting process.
package config

// Package config reads the probe's YAML configuration (mira-probe,
// mira analyze). The collector's is collector/config.
//
// Defaults are embedded (probe.yaml in this package), so every binary runs
// with no file at all; a user file overlays them. Unknown keys are errors,
// and every error names the file, the line and the key.
package config

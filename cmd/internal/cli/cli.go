// Package cli holds the small pieces the MIRA commands share: repeatable
// flags and logger set-up.
package cli

import (
	"log/slog"
	"os"
	"strings"
)

// Strings is a repeatable string flag.
type Strings []string

func (s *Strings) String() string { return strings.Join(*s, ",") }

// Set appends a value.
func (s *Strings) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// Logger returns a slog logger on stderr at the given level ("" = info)
// and format ("json" or text).
func Logger(level, format string) *slog.Logger {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: l}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if format == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(h)
}

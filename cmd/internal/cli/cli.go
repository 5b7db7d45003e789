// Package cli holds the small pieces the MIRA commands share: flag types
// that refuse bad values, logger set-up and the --version text.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Strings is a repeatable string flag.
type Strings []string

func (s *Strings) String() string { return strings.Join(*s, ",") }

// Set appends a value.
func (s *Strings) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// Level is a --log-level flag: debug, info, warn or error; Given says
// whether it was set.
type Level struct {
	Name  string
	Given bool
}

func (l *Level) String() string { return l.Name }

// Set accepts one of the four level names.
func (l *Level) Set(v string) error {
	if _, err := ParseLevel(v); err != nil {
		return err
	}
	l.Name, l.Given = v, true
	return nil
}

// ParseLevel parses a log level name; "" is info.
func ParseLevel(s string) (slog.Level, error) {
	switch s {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (want debug, info, warn or error)", s)
}

// Uint32 is a flag holding a 32-bit unsigned number (an IPFIX
// observation domain id): values beyond 4294967295 and negative ones are
// refused instead of wrapping. Given says whether it was set.
type Uint32 struct {
	N     uint32
	Given bool
}

func (u *Uint32) String() string { return strconv.FormatUint(uint64(u.N), 10) }

// Set parses a decimal number from 0 to 4294967295.
func (u *Uint32) Set(v string) error {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return fmt.Errorf("%s is out of range (0 to 4294967295)", v)
		}
		return fmt.Errorf("%q is not a number from 0 to 4294967295", v)
	}
	u.N, u.Given = uint32(n), true
	return nil
}

// Duration is a flag holding a duration that is not negative; Given says
// whether it was set. Unset, it prints no default in the usage (a
// stand-in such as -1ns read as a value before).
type Duration struct {
	D     time.Duration
	Given bool
}

func (d *Duration) String() string {
	if !d.Given {
		return ""
	}
	return d.D.String()
}

// Set parses a duration (time.ParseDuration) that is not negative.
func (d *Duration) Set(v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 30s, 5m)", v)
	}
	if x < 0 {
		return fmt.Errorf("%s is negative", v)
	}
	d.D, d.Given = x, true
	return nil
}

// Count is a flag holding a non-negative int.
type Count int

func (c *Count) String() string { return strconv.Itoa(int(*c)) }

// Set parses a number that is not negative.
func (c *Count) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", v)
	}
	if n < 0 {
		return fmt.Errorf("%d is negative", n)
	}
	*c = Count(n)
	return nil
}

// Logger returns a slog logger on stderr at the given level ("" = info)
// and format ("json" or "text"; "" = text).
func Logger(level, format string) (*slog.Logger, error) {
	l, err := ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format: unknown format %q (want text or json)", format)
}

// Version is the text of --version: the program, the module version and
// the VCS revision the binary was built from (runtime/debug.ReadBuildInfo).
func Version(program string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return program + " (no build information)\n"
	}
	return versionText(program, bi)
}

func versionText(program string, bi *debug.BuildInfo) string {
	var b strings.Builder
	ver := bi.Main.Version
	if ver == "" {
		ver = "(devel)"
	}
	fmt.Fprintf(&b, "%s %s", program, ver)
	if bi.Main.Path != "" {
		fmt.Fprintf(&b, " (%s)", bi.Main.Path)
	}
	b.WriteString("\n")
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		fmt.Fprintf(&b, "revision %s", rev)
		if at != "" {
			fmt.Fprintf(&b, " (%s)", at)
		}
		if modified {
			b.WriteString(" with local modifications")
		}
		b.WriteString("\n")
	} else {
		b.WriteString("revision unknown (built without VCS information)\n")
	}
	fmt.Fprintf(&b, "built with %s\n", bi.GoVersion)
	return b.String()
}

// PrintVersion writes Version(program) to w.
func PrintVersion(w io.Writer, program string) {
	io.WriteString(w, Version(program))
}

// Parse parses args with fs. Asked for help (-h, --help), it writes the
// usage to stdout and returns flag.ErrHelp, which a command treats as
// success (exit 0); other errors come with the usage on stderr.
func Parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		stdout.Write(out.Bytes())
	case err != nil:
		stderr.Write(out.Bytes())
		return &UsageError{Err: err}
	}
	return err
}

// UsageError is a command line the command cannot run (an unknown flag,
// a value a flag refuses); commands exit 2 on it, as flag.ExitOnError
// does.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

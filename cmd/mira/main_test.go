package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelp: every command and subcommand answers -h and --help with its
// usage on stdout, nothing on stderr, and exit 0.
func TestHelp(t *testing.T) {
	for _, cmd := range [][]string{
		{}, // mira --help
		{"analyze"}, {"flows"}, {"report"}, {"rollup"}, {"synth"},
		{"rules"}, {"rules", "check"}, {"rules", "import-snort"},
		{"image"}, {"image", "build"},
	} {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, cmd...), h)
			var out, errb bytes.Buffer
			code := runMira(context.Background(), args, &out, &errb)
			if code != 0 || errb.Len() != 0 || !strings.Contains(strings.ToLower(out.String()), "usage") {
				t.Errorf("mira %s: exit %d, stderr %q, stdout %q; want exit 0 and the usage on stdout",
					strings.Join(args, " "), code, errb.String(), out.String())
			}
		}
	}
	var out, errb bytes.Buffer
	if code := runMira(context.Background(), []string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "tls") && !strings.Contains(out.String(), "analyze") {
		t.Errorf("mira help: exit %d\n%s", code, out.String())
	}
}

// TestHelpContent: the usage names what the command does.
func TestHelpContent(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"report", "--help"}, []string{"-rules", "-as FILE", "bgpdump -m", "-limit"}},
		{[]string{"analyze", "--help"}, []string{"-symptoms", "-rules", "-progress"}},
		// --flows counts sessions: --flows 500 wrote 1036 flows while
		// the usage said "number of flows".
		{[]string{"synth", "--help"}, []string{"-large", "-progress", "number of sessions (connections), each two unidirectional flows"}},
	} {
		var out, errb bytes.Buffer
		runMira(context.Background(), tc.args, &out, &errb)
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("mira %s lacks %q:\n%s", strings.Join(tc.args, " "), w, out.String())
			}
		}
	}
}

// TestTopHelpNamesFlags: mira --help's line of a command names its
// flags: every flag of mira synth --help and every grouping of mira
// report --by. It had fallen behind (no --flows, --payload-mix, --by
// host|symptom|app), and the table's default order said time where the
// table lists the largest biflows first.
func TestTopHelpNamesFlags(t *testing.T) {
	help := func(args ...string) string {
		var out, errb bytes.Buffer
		runMira(context.Background(), args, &out, &errb)
		return out.String()
	}
	top := help("--help")
	line := func(cmd string) string {
		for _, l := range strings.Split(top, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), cmd+" ") {
				return l
			}
		}
		t.Fatalf("mira --help has no line for %s:\n%s", cmd, top)
		return ""
	}
	synth := line("synth")
	for _, l := range strings.Split(help("synth", "--help"), "\n") {
		if f, ok := strings.CutPrefix(strings.TrimSpace(l), "-"); ok {
			name, _, _ := strings.Cut(f, " ")
			if name != "o" && !strings.Contains(synth, "--"+name) {
				t.Errorf("mira --help's synth line lacks --%s: %s", name, synth)
			}
		}
	}
	rep := line("report  --db")
	by := help("report", "--help")
	_, after, _ := strings.Cut(by, "usage grouping: ")
	groups, _, _ := strings.Cut(after, " (default")
	for _, g := range strings.FieldsFunc(groups, func(r rune) bool { return r == ',' || r == ' ' }) {
		if g == "or" || strings.ContainsAny(g, "()") {
			continue
		}
		if !strings.Contains(rep, g) {
			t.Errorf("mira --help's report line lacks --by %s: %s", g, rep)
		}
	}
	if strings.Contains(by, `(default "time")`) {
		t.Errorf("mira report --help says the order defaults to time; the table lists the largest first")
	}
}

// TestBadFlagValues: values the flags refuse exit 2 (a usage error) with
// the flag named.
func TestBadFlagValues(t *testing.T) {
	for _, args := range [][]string{
		{"analyze", "--workers", "-3"},
		{"report", "--db", "x.db", "--limit", "many"},
		{"synth", "-o", "x.pcap", "--flows", "lots"},
	} {
		var out, errb bytes.Buffer
		if code := runMira(context.Background(), args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "invalid value") || !strings.Contains(errb.String(), "for flag -") {
			t.Errorf("mira %s: exit %d, stderr %q", strings.Join(args, " "), code, errb.String())
		}
	}
}

// TestVersion: mira --version and mira version print the version and
// exit 0; an unknown command exits 2.
func TestVersion(t *testing.T) {
	for _, a := range []string{"--version", "version", "-version"} {
		var out, errb bytes.Buffer
		if code := runMira(context.Background(), []string{a}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "mira ") || !strings.Contains(out.String(), "revision") {
			t.Errorf("mira %s: exit %d, stdout %q, stderr %q", a, code, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := runMira(context.Background(), []string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, errb.String())
	}
}

// TestSynthProgress: mira synth --progress reports on stderr, stdout
// keeps its one line; without --progress (no terminal) stderr is quiet.
func TestSynthProgress(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := runMira(context.Background(), []string{"synth", "-o", dir + "/a.pcap", "--flows", "40", "--progress"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "wrote ") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("stdout %q", out.String())
	}
	if !strings.Contains(errb.String(), "40 of 40 sessions started") || !strings.Contains(errb.String(), "packets written in") {
		t.Errorf("progress on stderr: %q", errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := runMira(context.Background(), []string{"synth", "-o", dir + "/b.pcap", "--flows", "40"}, &out, &errb); code != 0 || errb.Len() != 0 {
		t.Errorf("without --progress: exit %d, stderr %q", code, errb.String())
	}
}

// TestReportNatsRollups: --nats with --source rollups and what the
// rollups cannot answer (a record filter) is refused before anything is
// asked of the cluster, as are --db and --nats together. (The cluster's
// rollup reports: collector/cluster's TestWorkerRollups.)
func TestReportNatsRollups(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "--nats", "nats://127.0.0.1:1", "--source", "rollups", "--port", "25"}, "--port"},
		{[]string{"report", "--nats", "nats://127.0.0.1:1", "--source", "rollups", "--by", "host"}, "--by host"},
		{[]string{"report", "--nats", "nats://127.0.0.1:1", "--db", "x.db"}, "exclude each other"},
	} {
		var out, errb bytes.Buffer
		if code := runMira(context.Background(), tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("mira %s: exit %d, stderr %q", strings.Join(tc.args, " "), code, errb.String())
		}
	}
}

package rules

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mira-project/mira/appliance/symptom"
	"github.com/mira-project/mira/cmd/internal/cli"
	"github.com/mira-project/mira/collector/classify"
)

const usage = `usage: mira rules import-snort [-o OUT.yaml] FILE
       mira rules check FILE`

// Run implements `mira rules SUBCOMMAND ...`. Help (-h, --help, help)
// goes to stdout and returns flag.ErrHelp, which mira treats as success.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "import-snort":
		return runImport(args[1:], stdout, stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, usage)
		return flag.ErrHelp
	}
	return fmt.Errorf("unknown subcommand %q\n%s", args[0], usage)
}

func runImport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mira rules import-snort", flag.ContinueOnError)
	out := fs.String("o", "", "write the symptom database here (default: standard output)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mira rules import-snort [-o OUT.yaml] FILE\n\nconvert Snort/Suricata rules into a symptom database\n\nflags:")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want exactly one rules FILE\n" + usage)
	}
	name := fs.Arg(0)
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	y, issues, err := Import(name, data)
	// Rules with a syntax error are skipped, each named, and counted at
	// the end (also when nothing could be imported).
	bad := 0
	for _, i := range issues {
		if i.Syntax {
			bad++
			fmt.Fprintf(stderr, "%s:%d: syntax error: %s: rule skipped\n", name, i.Line, i.Reason)
		} else if err == nil {
			fmt.Fprintln(stderr, "not expressible:", i)
		}
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "%s: %d %s skipped for syntax errors\n", name, bad, plural(bad, "rule"))
	}
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(y)
		return err
	}
	return os.WriteFile(*out, y, 0o644)
}

// Import converts Snort/Suricata rules (name is used in messages) into a
// symptom database in YAML that symptom.Parse accepts. The options it
// could not express are returned and written as comments at the top of
// the YAML.
func Import(name string, data []byte) ([]byte, []symptom.SnortIssue, error) {
	spec, issues, err := symptom.ImportSnort(name, data)
	if err != nil {
		return nil, issues, fmt.Errorf("import-snort: %w", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Symptoms imported from %s by `mira rules import-snort`:\n", oneLine(name))
	bad := 0
	for _, i := range issues {
		if i.Syntax {
			bad++
		}
	}
	fmt.Fprintf(&b, "# one symptom per classtype; %d rule options could not be expressed", len(issues)-bad)
	if bad > 0 {
		fmt.Fprintf(&b, ", %d %s with a syntax error skipped", bad, plural(bad, "rule"))
	}
	b.WriteString(".\n")
	for _, i := range issues {
		fmt.Fprintf(&b, "#   %s\n", oneLine(i.String()))
	}
	b.Write(symptom.FormatSpec(spec))
	// The probe must accept what we write: compile it here.
	if _, err := symptom.Parse(name+" (imported)", b.Bytes()); err != nil {
		return nil, issues, fmt.Errorf("import-snort: converted database does not compile: %w", err)
	}
	return b.Bytes(), issues, nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// oneLine keeps text on one comment line.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mira rules check", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mira rules check FILE\n\ncompile a classification rules file and list its categories")
	}
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want exactly one rules FILE\n" + usage)
	}
	name := fs.Arg(0)
	r, err := classify.Load(name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d rules, categories %s\n", name, len(r.Rules()), strings.Join(r.Categories(), ", "))
	return nil
}

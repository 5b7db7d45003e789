package rules

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mira-project/mira/appliance/symptom"
)

func scan(db *symptom.DB, payload []byte) symptom.Counts {
	var st symptom.State
	var c symptom.Counts
	db.Scan(&st, &c, payload, 0)
	return c
}

func TestImportSample(t *testing.T) {
	data, err := os.ReadFile("testdata/sample.rules")
	if err != nil {
		t.Fatal(err)
	}
	y, issues, err := Import("testdata/sample.rules", data)
	if err != nil {
		t.Fatal(err)
	}
	all := string(y)
	for _, want := range []string{
		"sid 9000001: flow:established,to_server",
		"sid 9000002: distance:0",
		"sid 9000002: (rule): 2 contents become independent patterns",
		"sid 9000004: http.user_agent",
		"sid 9000004: startswith",
		"sid 9000006: pcre",
		"sid 9000006: (rule): no usable content: rule skipped",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("output lacks the issue %q:\n%s", want, all)
		}
	}
	if len(issues) < 7 {
		t.Errorf("%d issues", len(issues))
	}
	db, names := parseNames(t, "imported.yaml", y)
	if names != "POLICY_VIOLATION,MISC_ACTIVITY,BAD_UNKNOWN,ATTEMPTED_RECON" {
		t.Fatalf("symptoms %v", names)
	}
	id := func(n string) uint16 { s, _ := db.Lookup(n); return s.ID }
	for _, tc := range []struct {
		name    string
		payload string
		sym     string
		want    uint32
	}{
		{"nocase within depth", "EHLO x\r\nauth login\r\n", "POLICY_VIOLATION", 1},
		{"beyond depth 64", strings.Repeat("x", 70) + "AUTH LOGIN", "POLICY_VIOLATION", 0},
		{"hex and offset", "\x13BitTorrent protocol\x00\x00", "POLICY_VIOLATION", 1},
		{"handshake not at offset 0", "xx\x13BitTorrent protocol", "POLICY_VIOLATION", 0},
		{"PE: MZ at 0 and PE anywhere", "MZ\x90\x00....PE\x00\x00", "POLICY_VIOLATION", 2},
		{"hex with nocase", "\x00\x01\x07EXAMPLE\x07invalid\x00", "BAD_UNKNOWN", 1},
		{"escapes", `..a;b"c\d..`, "ATTEMPTED_RECON", 1},
		{"random text", "the quick brown fox", "POLICY_VIOLATION", 0},
	} {
		c := scan(db, []byte(tc.payload))
		if got := c.Get(id(tc.sym)); got != tc.want {
			t.Errorf("%s: %s counted %d, want %d", tc.name, tc.sym, got, tc.want)
		}
	}
}

func TestRunImportAndCheck(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"import-snort", "testdata/sample.rules"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "not expressible: line 3 sid 9000002: distance:0") {
		t.Errorf("stderr: %s", errOut.String())
	}
	if _, err := symptom.Parse("out.yaml", out.Bytes()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.rules")
	os.WriteFile(bad, []byte("alert tcp any any -> any any (msg:\"x\"; pcre:\"/a/\"; sid:1;)\n"), 0o644)
	if err := Run(context.Background(), []string{"import-snort", bad}, &out, &errOut); err == nil {
		t.Error("a file without any usable content imported without error")
	}
	rules := filepath.Join(dir, "r.yaml")
	os.WriteFile(rules, []byte("version: 1\nrules:\n  - category: Mail\n    when: MAIL > 0\n  - category: X\n    when: MAIL +\n"), 0o644)
	err := Run(context.Background(), []string{"check", rules}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `r.yaml:6: key "rules[1].when": rule 2 (X)`) {
		t.Errorf("check error %v", err)
	}
}

func FuzzImport(f *testing.F) {
	data, _ := os.ReadFile("testdata/sample.rules")
	f.Add(data)
	f.Add([]byte(`alert tcp any any -> any any (content:"|zz|"; depth:-1; offset:x; nocase;)`))
	f.Fuzz(func(t *testing.T, data []byte) {
		y, _, err := Import("fuzz.rules", data)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.rules") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		if _, err := symptom.Parse("fuzz.yaml", y); err != nil {
			t.Fatalf("Import returned a database that does not compile: %v", err)
		}
	})
}

// TestImportSkipsSyntaxErrors: a rule with a syntax error (no option
// list, an unterminated quote) is skipped like a rule without usable
// content, named by file:line on stderr and counted at the end, and the
// other rules are imported. Before, the first one stopped the import.
func TestImportSkipsSyntaxErrors(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "mixed.rules")
	os.WriteFile(f, []byte(strings.Join([]string{
		`alert tcp any any -> any any (msg:"ok"; content:"GOOD"; classtype:misc-activity; sid:1;)`,
		`alert tcp any any -> any any msg:"no option list"`,
		`alert tcp any any -> any any (msg:"unterminated; content:"X"; sid:2;)`,
		`alert tcp any any -> any any (msg:"ok too"; content:"FINE"; classtype:bad-unknown; sid:3;)`,
	}, "\n")+"\n"), 0o644)
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"import-snort", f}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	for _, want := range []string{f + ":2: syntax error: rule without an option list: rule skipped",
		f + ":3: syntax error: unterminated quote", f + ": 2 rules skipped for syntax errors"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	_, names := parseNames(t, "out.yaml", out.Bytes())
	if names != "MISC_ACTIVITY,BAD_UNKNOWN" {
		t.Errorf("symptoms %v, want the two good rules'", names)
	}
	if !strings.Contains(out.String(), "2 rules with a syntax error skipped") {
		t.Errorf("the YAML's header does not count the skipped rules:\n%.300s", out.String())
	}
	// Only syntax errors: nothing to import, an error, the count still said.
	errOut.Reset()
	os.WriteFile(f, []byte("alert tcp any any -> any any nothing\n"), 0o644)
	if err := Run(context.Background(), []string{"import-snort", f}, &out, &errOut); err == nil || !strings.Contains(errOut.String(), f+":1: syntax error") {
		t.Errorf("only a bad rule: err %v, stderr %s", err, errOut.String())
	}
}

// TestImportContinuationLines: a rule continued on the next lines with
// a trailing backslash (after blanks) is one rule, as Snort and
// Suricata read it, and its messages name the line it starts on; the
// lines after it keep their numbers. Before, each line was skipped as a
// syntax error.
func TestImportContinuationLines(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "multi.rules")
	os.WriteFile(f, []byte(strings.Join([]string{
		`# a comment ending in a backslash does not continue \`,
		`alert tcp any any -> any any (msg:"split"; \`,
		`    content:"SPL"; \  `,
		`	content:"IT"; distance:0; classtype:misc-activity; sid:1;)`,
		`alert tcp any any -> any any (msg:"bad"; \`,
		`    content:"unterminated; sid:2;)`,
		`alert tcp any any -> any any (msg:"one line"; content:"ONE"; pcre:"/x/"; classtype:bad-unknown; sid:3;)`,
	}, "\n")+"\n"), 0o644)
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"import-snort", f}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	for _, want := range []string{"line 2 sid 1: distance:0", "line 2 sid 1: (rule): 2 contents",
		f + ":5: syntax error: unterminated quote", "line 7 sid 3: pcre", f + ": 1 rule skipped for syntax errors"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	if strings.Count(errOut.String(), "syntax error") != 2 { // the rule's line and the count
		t.Errorf("syntax errors other than rule 2's:\n%s", errOut.String())
	}
	db, err := symptom.Parse("out.yaml", out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := db.Lookup("MISC_ACTIVITY")
	if !ok {
		t.Fatalf("the continued rule was not imported:\n%s", out.String())
	}
	if c := scan(db, []byte("xx SPL yy IT")); c.Get(s.ID) != 2 {
		t.Errorf("the continued rule's contents: %d matches, want 2\n%s", c.Get(s.ID), out.String())
	}
}

// parseNames parses a symptom database and returns it with its symptoms'
// names, comma-separated in order.
func parseNames(t *testing.T, name string, yaml []byte) (*symptom.DB, string) {
	t.Helper()
	db, err := symptom.Parse(name, yaml)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range db.Symptoms() {
		names = append(names, s.Name)
	}
	return db, strings.Join(names, ",")
}

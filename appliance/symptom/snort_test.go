package symptom

import (
	"strings"
	"testing"
)

const snortRules = `# comment
alert tcp any any -> any 25 (msg:"SMTP RCPT"; content:"RCPT TO|3a|"; nocase; offset:0; depth:40; classtype:policy-violation; sid:1001; rev:1;)
alert tcp any any -> any 80 (msg:"two contents"; content:"GET "; depth:4; content:"/evil\;x"; distance:0; classtype:web-application-attack; sid:1002;)
alert tcp any any -> any any (msg:"pcre only"; pcre:"/a+b/"; sid:1003;)
alert tcp any any -> any any (msg:"negated"; content:!"abc"; content:"|de ad be ef|"; flow:established,to_server; sid:1004;)
`

func TestImportSnort(t *testing.T) {
	spec, issues, err := ImportSnort("rules.txt", []byte(snortRules))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range spec.Symptoms {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "POLICY_VIOLATION,WEB_APPLICATION_ATTACK,SNORT" {
		t.Fatalf("symptoms %v", names)
	}
	var got []string
	for _, i := range issues {
		got = append(got, i.String())
	}
	all := strings.Join(got, "\n")
	for _, w := range []string{"line 3 sid 1002: distance:0", "line 3 sid 1002: (rule): 2 contents", "line 4 sid 1003: pcre", "line 4 sid 1003: (rule): no usable content",
		`line 5 sid 1004: content:!"abc": negated`, "line 5 sid 1004: flow:established,to_server"} {
		if !strings.Contains(all, w) {
			t.Errorf("issues lack %q:\n%s", w, all)
		}
	}
	y := FormatSpec(spec)
	db, err := Parse("imported.yaml", y)
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	id := func(n string) uint16 { s, _ := db.Lookup(n); return s.ID }
	c := scanAll(db, []byte("rcpt to:<x>\r\n"), 1460)
	if c.Get(id("POLICY_VIOLATION")) != 1 {
		t.Errorf("nocase content: %v\n%s", countsMap(c), y)
	}
	c = scanAll(db, []byte("GET /evil;x HTTP/1.1\r\n GET "), 1460)
	if c.Get(id("WEB_APPLICATION_ATTACK")) != 2 { // "GET " within depth 4, "/evil;x"
		t.Errorf("depth/escape: %v\n%s", countsMap(c), y)
	}
	c = scanAll(db, []byte("\xde\xad\xbe\xef"), 1460)
	if c.Get(id("SNORT")) != 1 {
		t.Errorf("hex content: %v\n%s", countsMap(c), y)
	}
}

func TestFormatSpecRoundTrip(t *testing.T) {
	spec, err := ParseSpec("default.yaml", DefaultYAML())
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseSpec("formatted.yaml", FormatSpec(spec))
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Symptoms) != len(spec.Symptoms) {
		t.Fatal("symptom count changed")
	}
	for i, s := range spec.Symptoms {
		a := again.Symptoms[i]
		if a.Name != s.Name || a.Description != s.Description || len(a.Patterns) != len(s.Patterns) {
			t.Fatalf("symptom %d changed: %+v", i, a)
		}
		for j, p := range s.Patterns {
			q := a.Patterns[j]
			if string(q.Bytes) != string(p.Bytes) || string(q.Mask) != string(p.Mask) || q.Kind != p.Kind || q.NoCase != p.NoCase ||
				q.Anchor != p.Anchor || q.Offset != p.Offset || q.Depth != p.Depth || q.Validate != p.Validate || q.Regex != p.Regex {
				t.Fatalf("%s pattern %d: %+v became %+v", s.Name, j+1, p, q)
			}
		}
	}
}

func FuzzImportSnort(f *testing.F) {
	f.Add([]byte(snortRules))
	f.Add([]byte("alert tcp any any -> any any (msg:\"a\"; \\\n  content:\"X\"; \\ \n# c\nsid:1;)\n\\\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, issues, err := ImportSnort("fuzz.rules", data)
		// Every issue names the line its rule starts on: a line of
		// the input that is not blank or a comment.
		lines := strings.Split(string(data), "\n")
		for _, is := range issues {
			if is.Line < 1 || is.Line > len(lines) {
				t.Fatalf("issue %v: line %d of %d", is, is.Line, len(lines))
			}
			if l := strings.TrimSpace(lines[is.Line-1]); l == "" || l[0] == '#' {
				t.Fatalf("issue %v names line %q", is, l)
			}
		}
		if err != nil {
			return
		}
		if _, err := Parse("fuzz.yaml", FormatSpec(spec)); err != nil {
			// Imported specs may still be rejected (e.g. a window shorter
			// than its pattern), but never with a YAML syntax error.
			if strings.Contains(err.Error(), "yaml:") {
				t.Fatalf("formatted spec is not valid YAML: %v", err)
			}
		}
	})
}

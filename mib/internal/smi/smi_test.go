package smi

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"empty", "", "empty module"},
		{"no begin", "M DEFINITIONS ::= X", `want "BEGIN"`},
		{"no end", "M DEFINITIONS ::= BEGIN a OBJECT IDENTIFIER ::= { enterprises 1 }", "missing END"},
		{"unknown parent", "M DEFINITIONS ::= BEGIN a OBJECT IDENTIFIER ::= { nowhere 1 } END", `unknown parent "nowhere"`},
		{"bad sub", "M DEFINITIONS ::= BEGIN a OBJECT IDENTIFIER ::= { enterprises x } END", `bad sub-identifier "x"`},
		{"string", "M DEFINITIONS ::= BEGIN \"x END", "unterminated string"},
		{"dup", "M DEFINITIONS ::= BEGIN a OBJECT IDENTIFIER ::= { enterprises 1 } a OBJECT IDENTIFIER ::= { enterprises 2 } END", "duplicate definition"},
		{"loop", "M DEFINITIONS ::= BEGIN a OBJECT IDENTIFIER ::= { b 1 } b OBJECT IDENTIFIER ::= { a 1 } END", "OID loop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.mib", []byte(tc.src))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *SyntaxError", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "smi: t.mib:") {
				t.Fatalf("err = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseMIRA(t *testing.T) {
	src, err := os.ReadFile("../../MIRA-PROBE-MIB.txt")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse("MIRA-PROBE-MIB.txt", src)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(m.Imports, " "), "SNMPv2-SMI SNMPv2-TC SNMPv2-CONF IF-MIB"; got != want {
		t.Errorf("imports %q, want %q", got, want)
	}
	kinds := map[string]Kind{}
	for i, d := range m.Defs {
		kinds[d.Name] = d.Kind
		if i > 0 && Compare(m.Defs[i-1].OID, d.OID) >= 0 {
			t.Errorf("defs not in OID order at %s", d.Name)
		}
	}
	for name, want := range map[string]Kind{
		"miraProbeName": KindScalar, "miraCaptureTable": KindTable, "miraCaptureEntry": KindEntry,
		"miraCapPackets": KindColumn, "miraOverloadEntered": KindNotification,
		"miraCaptureGroup": KindGroup, "miraProbeCompliance": KindCompliance, "miraProbeMIB": KindNode,
	} {
		if kinds[name] != want {
			t.Errorf("%s kind %q, want %q", name, kinds[name], want)
		}
	}
}

func FuzzParse(f *testing.F) {
	if src, err := os.ReadFile("../../MIRA-PROBE-MIB.txt"); err == nil {
		f.Add(src)
	}
	f.Add([]byte("M DEFINITIONS ::= BEGIN a OBJECT IDENTIFIER ::= { enterprises 1 } END"))
	f.Add([]byte("M DEFINITIONS ::= BEGIN x OBJECT-TYPE SYNTAX INTEGER { a(1) } ::= { enterprises 1 } END"))
	f.Fuzz(func(t *testing.T, src []byte) {
		m, err := Parse("fuzz", src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SyntaxError", err)
			}
			return
		}
		// Invariant: the definitions come in strict OID order, none with an
		// empty OID, as the generated tables need.
		for i, d := range m.Defs {
			if len(d.OID) == 0 || (i > 0 && Compare(m.Defs[i-1].OID, d.OID) >= 0) {
				t.Fatalf("definition %s (%v) out of OID order", d.Name, d.OID)
			}
		}
		_, _ = Generate(m, "x", "fuzz")
	})
}

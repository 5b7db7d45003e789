package mib

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mira-project/mira/mib/internal/smi"
	"github.com/mira-project/mira/tools/peertest"
)

// needPeer returns the path of a peer program, skipping the test when it
// is absent (failing under MIRA_REQUIRE_PEERS=1).
func needPeer(t *testing.T, name string) string {
	t.Helper()
	return peertest.Program(t, name)
}

// TestIETFModulesShipped checks that every module MIRA-PROBE-MIB imports
// ships beside it, so that a clone's mib/ is a complete -M directory.
func TestIETFModulesShipped(t *testing.T) {
	m, err := smi.Parse("MIRA-PROBE-MIB.txt", Text)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Imports) == 0 {
		t.Fatal("no imports parsed")
	}
	for _, mod := range m.Imports {
		if _, err := os.Stat(mod + ".txt"); err != nil {
			t.Errorf("imported module %s is not shipped: %v", mod, err)
		}
	}
}

func TestGeneratedUpToDate(t *testing.T) {
	m, err := smi.Parse("MIRA-PROBE-MIB.txt", Text)
	if err != nil {
		t.Fatal(err)
	}
	want, err := smi.Generate(m, "mib", "MIRA-PROBE-MIB.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("oids_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("oids_gen.go is out of date with MIRA-PROBE-MIB.txt: run go generate ./mib")
	}
}

func TestSmilint(t *testing.T) {
	smilint := needPeer(t, "smilint")
	cmd := exec.Command(smilint, "-l", "6", "MIRA-PROBE-MIB.txt")
	cmd.Env = append(os.Environ(), "SMIPATH=:.") // the IETF modules ship beside it
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("smilint: %v\n%s", err, out)
	}
	// smilint exits 0 on errors: any output is a finding.
	if len(out) != 0 {
		t.Fatalf("smilint -l 6 is not clean:\n%s", out)
	}
}

// TestNetSNMPAgrees resolves every definition by name with net-snmp's own
// MIB parser and checks it finds the OID the generated code has. It loads
// the module as the README tells users to (-M +mib -m MIRA-PROBE-MIB):
// any module missing from this directory would show as an error line.
func TestNetSNMPAgrees(t *testing.T) {
	tr := needPeer(t, "snmptranslate")
	var names []string
	for _, o := range Objects {
		names = append(names, ModuleName+"::"+o.Name)
	}
	cmd := exec.Command(tr, append([]string{"-M", "+.", "-m", ModuleName, "-On"}, names...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("snmptranslate: %v\n%s", err, out)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(Objects) {
		t.Fatalf("snmptranslate gave %d lines for %d objects:\n%s", len(lines), len(Objects), out)
	}
	for i, o := range Objects {
		if lines[i] != "."+o.OID {
			t.Errorf("%s: net-snmp says %s, generated %s", o.Name, lines[i], o.OID)
		}
	}
}

func TestObjectsComplete(t *testing.T) {
	groups := map[string]bool{}
	for _, o := range Objects {
		if o.Kind == KindGroup {
			for _, m := range o.Objects {
				groups[m] = true
			}
		}
	}
	for _, o := range Objects {
		switch o.Kind {
		case KindScalar, KindColumn:
			if o.Access == "not-accessible" {
				continue
			}
			if o.Base == "" {
				t.Errorf("%s: no base type", o.Name)
			}
			if !groups[o.Name] {
				t.Errorf("%s is in no conformance group", o.Name)
			}
		case KindNotification:
			if !groups[o.Name] {
				t.Errorf("notification %s is in no group", o.Name)
			}
		}
	}
	if _, ok := Lookup("miraCapPackets"); !ok {
		t.Fatal("Lookup(miraCapPackets) failed")
	}
}

func TestParseOID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []uint32
		err  bool
	}{
		{".1.3.6", []uint32{1, 3, 6}, false},
		{"1.3.6.1.4.1.32473", []uint32{1, 3, 6, 1, 4, 1, 32473}, false},
		{"", nil, true},
		{"1..3", nil, true},
		{"1.3.x", nil, true},
		{"1.4294967296", nil, true},
	} {
		got, err := ParseOID(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParseOID(%q) err = %v", tc.in, err)
			continue
		}
		if smi.Compare(got, tc.want) != 0 {
			t.Errorf("ParseOID(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

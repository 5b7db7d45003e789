package server_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/tools/peertest"
)

// TestTLSProbeToCollector runs mira-probe exporting over tls:// with a
// client certificate into mira-collector listening on tls:// and
// requiring certificates from the test CA: every record arrives. A probe
// with a certificate from another CA delivers nothing and the collector
// counts the refused handshake.
func TestTLSProbeToCollector(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	pcap := capture(t)
	probeBin, collBin := binaries(t)
	pki := peertest.NewTLSFiles(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	port := freePort(t)
	collCfg := write("collector.yaml", fmt.Sprintf("tls: {cert: %s, key: %s, ca: %s}\n", pki.ServerCert, pki.ServerKey, pki.CA))
	c := startCollector(t, collBin, "--config", collCfg, "--listen", fmt.Sprintf("tls://127.0.0.1:%d", port))

	// probe runs mira-probe with the given client certificate and
	// returns its exit error and log.
	probe := func(name, cert, key string) ([]byte, error) {
		cfg := write(name+".yaml", fmt.Sprintf("export:\n  - url: tls://127.0.0.1:%d\n    tls: {ca: %s, cert: %s, key: %s}\n", port, pki.CA, cert, key))
		out, err := exec.Command(probeBin, "--config", cfg, "-r", pcap).CombinedOutput()
		return out, err
	}
	out, err := probe("trusted", pki.ClientCert, pki.ClientKey)
	if err != nil {
		t.Fatalf("mira-probe (trusted): %v\n%s", err, out)
	}
	m := recordsRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("mira-probe: no record count:\n%s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	if n == 0 {
		t.Fatal("the probe exported nothing")
	}
	c.waitRecords(t, n)
	// The refused probe says so: its export fails and it exits non-zero.
	if out, err := probe("rogue", pki.RogueCert, pki.RogueKey); err == nil || !bytes.Contains(out, []byte("tls:")) {
		t.Fatalf("mira-probe with another CA's certificate: exit %v\n%s", err, out)
	}
	c.stop(t) // saves the collector's counters in the store
	st, err := store.Open(c.db, &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := report.FromStoreQuery(context.Background(), st, store.Query{}, report.Options{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Flows != n || rep.Summary.Malformed["tls-handshake"] == 0 {
		t.Fatalf("store holds %d flows (want %d), refused handshakes %d (want > 0)", rep.Summary.Flows, n, rep.Summary.Malformed["tls-handshake"])
	}
}

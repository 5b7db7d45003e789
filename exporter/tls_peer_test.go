package exporter

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// TestTLSToOpenSSL exports over tls:// to socat's OpenSSL listener, which
// requires a client certificate from the test CA and writes what it
// decrypts to a file; ipfixDump then reads that file with no warnings and
// every record: the TLS is standard and the stream inside is IPFIX.
func TestTLSToOpenSSL(t *testing.T) {
	socat := peertest.Program(t, "socat")
	pki := peertest.NewTLSFiles(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	out := filepath.Join(t.TempDir(), "over-tls.ipfix")
	var log bytes.Buffer
	cmd := exec.Command(socat, "-u",
		fmt.Sprintf("OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,cert=%s,key=%s,cafile=%s,verify=1", port, pki.ServerCert, pki.ServerKey, pki.CA),
		"CREATE:"+out)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer cmd.Process.Kill()
	peertest.WaitUntil(t, 10*time.Second, "socat listening", func() bool { return tcpListening(t, port) })

	ca, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(pki.ClientCert, pki.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	recs := append(ipfixtest.Samples(), ipfixtest.Random(11, 500)...)
	e, err := New(fmt.Sprintf("tls://127.0.0.1:%d", port), &Config{TLS: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("socat: %v\n%s", err, log.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("socat did not finish\n%s", log.String())
	}
	checkIpfixDump(t, runIpfixDump(t, out), recs, int(e.Stats().OptionsRecords))
}

// tcpListening says a socket listens on 127.0.0.1 or any address at port
// (/proc/net/tcp, state 0A).
func tcpListening(t *testing.T, port int) bool {
	b, err := os.ReadFile("/proc/thread-self/net/tcp") // not /proc/net: the main thread may be in a test namespace
	switch {
	case errors.Is(err, fs.ErrNotExist):
		peertest.Missing(t, "no /proc/net/tcp: %v", err)
	case err != nil:
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) > 3 && f[3] == "0A" && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
			return true
		}
	}
	return false
}

package exporter

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/mira-project/mira/tools/peertest"
)

// TestTLSRefusalExplained: a collector that requires a client
// certificate refuses an exporter without one after the handshake; the
// exporter's Write or Close reads the collector's alert and says why,
// once, instead of a bare "broken pipe".
func TestTLSRefusalExplained(t *testing.T) {
	pki := peertest.NewTLSFiles(t)
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	refused := make(chan error, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			refused <- c.(*tls.Conn).Handshake() // sends the alert on failure
			c.Close()
		}
	}()
	for _, writes := range []int{0, 1, 50} {
		tr, err := NewTLS(ln.Addr().String(), &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Begin(); err != nil {
			t.Fatal(err) // the client's side of a TLS 1.3 handshake completes
		}
		if herr := <-refused; herr == nil {
			t.Fatal("collector accepted an exporter without a certificate")
		}
		// The collector has refused and closed: what the exporter does
		// next fails, and says why.
		var got error
		msg := make([]byte, 1400)
		for i := 0; i < writes && got == nil; i++ {
			got = tr.Write(msg)
		}
		if cerr := tr.Close(); got == nil {
			got = cerr
		}
		if got == nil {
			t.Fatalf("%d writes: no error after the collector refused", writes)
		}
		const want = "refused the TLS connection: remote error: tls: certificate required (no client certificate is configured"
		if !strings.Contains(got.Error(), want) || strings.Count(got.Error(), "refused the TLS connection") != 1 {
			t.Errorf("%d writes: error %q, want it to contain %q once", writes, got, want)
		}
	}
}

type alertText string

func (a alertText) Error() string { return string(a) }

// TestRefusedOnce: explaining an explained refusal leaves it as it is
// (Close reads the alert after a half-close that failed, and its error
// passes through the same explanation again).
func TestRefusedOnce(t *testing.T) {
	tr := &tcpTransport{addr: "192.0.2.1:4740", tls: &tls.Config{}}
	alert := &net.OpError{Op: "remote error", Err: alertText("tls: certificate required")}
	once := tr.refused(alert)
	twice := tr.refused(once)
	if twice.Error() != once.Error() || strings.Count(twice.Error(), "refused the TLS connection") != 1 ||
		!strings.Contains(once.Error(), "(no client certificate is configured") {
		t.Errorf("once: %v\ntwice: %v", once, twice)
	}
	if !errors.Is(twice, alert) {
		t.Error("the alert is not wrapped")
	}
}

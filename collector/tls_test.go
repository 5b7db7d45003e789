package collector

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/tools/peertest"
)

// TestRoundTripTLS: an exporter with a certificate from the collector's
// CA delivers every record over TLS; an exporter with a certificate from
// another CA, without one, or speaking plain TCP to the TLS port is
// refused in the handshake, counted, and delivers nothing.
func TestRoundTripTLS(t *testing.T) {
	pki := peertest.NewTLSFiles(t)
	srv, err := config.TLS{Cert: pki.ServerCert, Key: pki.ServerKey, CA: pki.CA}.Server()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recs := testRecords()
	s := newSink(len(recs))
	var logs logBuffer
	c := New(s, &Config{Logger: logs.logger()})
	addr, err := c.ListenTLS(ctx, "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	url := "tls://" + addr.String()

	// export sends recs (or the first n of them) and returns the error
	// of Close, else Export's, else the last one the exporter noted.
	exportN := func(tc config.TLS, n int) error {
		cl, err := tc.Client()
		if err != nil {
			t.Fatal(err)
		}
		e, err := exporter.New(url, &exporter.Config{TLS: cl, ExporterMetadata: true, RetryMin: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		err = e.Export(recs[:n])
		if cerr := e.Close(); cerr != nil {
			err = cerr
		}
		if err == nil && e.Stats().LastError != "" {
			err = errors.New(e.Stats().LastError)
		}
		return err
	}
	export := func(tc config.TLS) error { return exportN(tc, len(recs)) }
	for _, tc := range []struct {
		name string
		cfg  config.TLS
		// want is in the exporter's error: the collector's alert, read
		// after the write that failed, not only "broken pipe".
		want string
	}{
		{"certificate from another CA", config.TLS{CA: pki.CA, Cert: pki.RogueCert, Key: pki.RogueKey}, "remote error: tls: certificate required (the configured client certificate is not signed by a CA the collector accepts)"},
		{"no client certificate", config.TLS{CA: pki.CA}, "remote error: tls: certificate required (no client certificate is configured"},
	} {
		// The exporter may only learn of the refusal on a later write
		// (TLS 1.3 verifies the client after the client's Finished), so
		// what counts is that the collector saw a failed handshake and
		// delivered nothing.
		n0 := c.Stats().Malformed["tls-handshake"]
		// One record (the refusal surfaces when Close half-closes) and
		// many (it surfaces on a write).
		for _, n := range []int{1, len(recs)} {
			err := exportN(tc.cfg, n) // (it may retry on a new connection)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Count(err.Error(), "refused the TLS connection") != 1 {
				t.Errorf("%s, %d records: exporter error %v, want it to contain %q once", tc.name, n, err, tc.want)
			}
		}
		peertest.WaitUntil(t, 10*time.Second, tc.name+" refused", func() bool {
			return c.Stats().Malformed["tls-handshake"] > n0
		})
		if st := c.Stats(); st.Records != 0 {
			t.Fatalf("%s: %d records delivered", tc.name, st.Records)
		}
	}
	// The refusals are logged with the exporter's address and the
	// reason (once a minute per address: the first, the rogue CA).
	peertest.WaitUntil(t, 10*time.Second, "refused handshake logged", func() bool {
		return len(logs.lines("tls handshake refused", "exporter=127.0.0.1:", "certificate")) > 0
	})
	// A server certificate the exporter does not trust: the exporter
	// refuses, with an error.
	if err := export(config.TLS{Cert: pki.ClientCert, Key: pki.ClientKey}); err == nil {
		t.Error("exporter accepted a collector certificate from an unknown CA")
	}
	// Plain TCP to the TLS port.
	n0 := c.Stats().Malformed["tls-handshake"]
	plain, err := exporter.New("tcp://"+addr.String(), &exporter.Config{RetryMin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	plain.Export(recs)
	plain.Close()
	peertest.WaitUntil(t, 10*time.Second, "plain TCP refused", func() bool {
		return c.Stats().Malformed["tls-handshake"] > n0
	})

	if err := export(config.TLS{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}); err != nil {
		t.Fatalf("trusted exporter: %v", err)
	}
	s.wait(t)
	checkSame(t, s.recs, recs)
	st := c.Stats()
	if st.Records != uint64(len(recs)) || st.LostRecords != 0 {
		t.Fatalf("stats %+v", st)
	}
	if s.origins[0].Transport != "tls" {
		t.Fatalf("origin %+v", s.origins[0])
	}
}

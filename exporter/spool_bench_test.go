package exporter

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// sink is a stream transport that is always up and discards.
type sink struct{ sess, bytes uint64 }

func (s *sink) Begin() (uint64, error)      { return s.sess, nil }
func (s *sink) Reconnect() (uint64, error)  { s.sess++; return s.sess, nil }
func (s *sink) Write(m []byte) error        { s.bytes += uint64(len(m)); return nil }
func (s *sink) Reliable() bool              { return true }
func (s *sink) Flush() error                { return nil }
func (s *sink) Close() error                { return nil }
func (s *sink) closeConfirm() (bool, error) { return true, nil }

// BenchmarkSpoolWrite measures spooling with the collector down: records
// encoded, written to the spool file (bbolt, fsync'd per save) and kept.
func BenchmarkSpoolWrite(b *testing.B) {
	recs := ipfixtest.Random(11, 1000)
	sp, err := OpenSpool(&link{}, SpoolConfig{Dir: b.TempDir(), MaxBytes: 4 << 30, RetryMin: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	e := NewTransport(sp, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.Export(recs); err != nil {
			b.Fatal(err)
		}
	}
	if err := sp.Flush(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
	sp.abandon()
}

// BenchmarkSpoolReplay measures the replay of a full spool (b.N batches
// of 1000 records) to a collector that has come back: read from the file
// and written to the connection, then released on the confirmed close.
func BenchmarkSpoolReplay(b *testing.B) {
	dir := b.TempDir()
	recs := ipfixtest.Random(12, 1000)
	sp, err := OpenSpool(&link{}, SpoolConfig{Dir: dir, MaxBytes: 4 << 30, RetryMin: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	e := NewTransport(sp, nil)
	for i := 0; i < b.N; i++ {
		if err := e.Export(recs); err != nil {
			b.Fatal(err)
		}
	}
	if err := sp.Flush(); err != nil {
		b.Fatal(err)
	}
	sp.abandon()
	b.ReportAllocs()
	b.ResetTimer()
	k := &sink{}
	sp2, err := OpenSpool(k, SpoolConfig{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	spooled := sp2.bytes
	if err := sp2.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if k.bytes < uint64(spooled)-4*uint64(len(sp2.q)) || spooled == 0 {
		b.Fatalf("replayed %d bytes of %d spooled", k.bytes, spooled)
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkSpoolReplayTCP is BenchmarkSpoolReplay over a loopback TCP
// connection to a reader that discards the stream and confirms it as
// MIRA's collector does (no decoding: the spool's side only).
func BenchmarkSpoolReplayTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := io.Copy(io.Discard, c); err == nil {
					ack := ipfix.AppendHeader(nil, ipfix.Header{})
					ipfix.FinishMessage(ack)
					c.Write(ack)
				}
			}()
		}
	}()
	dir := b.TempDir()
	recs := ipfixtest.Random(13, 1000)
	sp, err := OpenSpool(&link{}, SpoolConfig{Dir: dir, MaxBytes: 4 << 30, RetryMin: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	e := NewTransport(sp, nil)
	for i := 0; i < b.N; i++ {
		if err := e.Export(recs); err != nil {
			b.Fatal(err)
		}
	}
	if err := sp.Flush(); err != nil {
		b.Fatal(err)
	}
	sp.abandon()
	tr, err := NewTCP(ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	sp2, err := OpenSpool(tr, SpoolConfig{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	if err := sp2.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkExportTCP is the reference for the spool benchmarks: the same
// batches of 1000 records encoded and sent straight over a loopback TCP
// connection, no spool.
func BenchmarkExportTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	recs := ipfixtest.Random(13, 1000)
	tr, err := NewTCP(ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	e := NewTransport(tr, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.Export(recs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
	e.Close()
}

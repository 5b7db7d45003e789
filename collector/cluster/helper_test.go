package cluster

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// embeddedJS starts an in-process JetStream server with MIRA's streams
// (one replica) and connects to it; both end with tb.
func embeddedJS(tb testing.TB) (*natsserver.Server, *nats.Conn, jetstream.JetStream) {
	tb.Helper()
	ns, url, err := Embedded("127.0.0.1:0", tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ns.Shutdown)
	nc, js, err := Connect(url, tb.Name())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	if err := Setup(context.Background(), js, 1); err != nil {
		tb.Fatal(err)
	}
	return ns, nc, js
}

// runWorker opens worker name on a store in the test's directory and
// runs it until the test ends.
func runWorker(t testing.TB, name string, nc *nats.Conn, js jetstream.JetStream) *Worker {
	t.Helper()
	w, _ := runWorkerAt(t, name, filepath.Join(t.TempDir(), name+".db"), nc, js, Retention{})
	return w
}

// runWorkerAt opens worker name on the store at path with retention r
// (applied every 100 ms) and runs it until stop is called or the test
// ends.
func runWorkerAt(t testing.TB, name, path string, nc *nats.Conn, js jetstream.JetStream, r Retention) (w *Worker, stop func()) {
	t.Helper()
	w, err := OpenWorker(name, path, nc, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Retention = r
	w.retainEvery = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return w, stop
}

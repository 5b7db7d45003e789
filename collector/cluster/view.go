package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mira-project/mira/collector/store"
)

// View gives the HTTP API and web UI of a mira-collector in cluster mode
// (--nats with --http) the workers' merged results: a snapshot gathered
// as `mira report --nats` gathers it (Gather) into a store file in Dir,
// gathered again by the first request after MaxAge. Requests answered
// from a snapshot keep it open until they are done; a replaced snapshot
// is closed and removed after its last one.
type View struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	Dir    string
	MaxAge time.Duration

	gather sync.Mutex // one gathering at a time
	mu     sync.Mutex
	cur    *snapshot
	n      int
	closed bool
}

type snapshot struct {
	st    *store.Store
	path  string
	at    time.Time
	stats GatherStats
	refs  int
	old   bool // replaced: closed at its last release
}

// Acquire returns a snapshot no older than MaxAge and the function that
// releases it (the signature of server.APIConfig.Acquire).
func (v *View) Acquire(ctx context.Context) (*store.Store, func(), error) {
	if s := v.fresh(); s != nil {
		return s.st, v.releaser(s), nil
	}
	v.gather.Lock()
	defer v.gather.Unlock()
	if s := v.fresh(); s != nil { // gathered while this request waited
		return s.st, v.releaser(s), nil
	}
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil, nil, fmt.Errorf("cluster: view closed")
	}
	v.n++
	path := filepath.Join(v.Dir, "merged-"+strconv.Itoa(v.n)+".db")
	v.mu.Unlock()
	store.Remove(path)
	st, err := store.Open(path, nil)
	if err != nil {
		return nil, nil, err
	}
	gs, err := Gather(ctx, v.NC, v.JS, st)
	if err != nil {
		st.Close()
		store.Remove(path)
		return nil, nil, err
	}
	s := &snapshot{st: st, path: path, at: time.Now(), stats: gs, refs: 1}
	v.mu.Lock()
	if prev := v.cur; prev != nil {
		prev.old = true
		if prev.refs == 0 {
			prev.close()
		}
	}
	v.cur = s
	v.mu.Unlock()
	return st, v.releaser(s), nil
}

// fresh returns the current snapshot, referenced, if it is young enough.
func (v *View) fresh() *snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s := v.cur; s != nil && time.Since(s.at) < v.MaxAge {
		s.refs++
		return s
	}
	return nil
}

func (v *View) releaser(s *snapshot) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			v.mu.Lock()
			defer v.mu.Unlock()
			s.refs--
			if s.old && s.refs == 0 {
				s.close()
			}
		})
	}
}

func (s *snapshot) close() {
	s.st.Close()
	store.Remove(s.path)
}

// Stats describes the current snapshot's merge (zero before the first).
func (v *View) Stats() GatherStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cur == nil {
		return GatherStats{}
	}
	return v.cur.stats
}

// Close closes the current snapshot once its requests are done; later
// requests fail.
func (v *View) Close() {
	v.gather.Lock()
	defer v.gather.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	if s := v.cur; s != nil {
		s.old = true
		if s.refs == 0 {
			s.close()
		}
		v.cur = nil
	}
}

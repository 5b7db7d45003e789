package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/flow"
)

// BoundsSubject: a boundsRequest (JSON); the worker answers as on
// PartSubject (busy messages, then its boundsAnswer (JSON) in messages
// with the header Mira-Part, then the end message).
const BoundsSubject = "mira.worker.bounds."

// boundsRequest asks a worker whether a record it holds lies across a
// bound of a report's range or ends within the pairing window before
// one (report.Params.BoundsCrossed over its store).
type boundsRequest struct {
	Bounds    []int64 `json:"bounds"` // --from, --to that are set (ns)
	Window    int64   `json:"window"` // ns
	Exporter  string  `json:"exporter,omitempty"`
	Domain    uint32  `json:"domain,omitempty"`
	HasDomain bool    `json:"has_domain,omitempty"`
}

// boundsAnswer is a worker's answer on BoundsSubject.
type boundsAnswer struct {
	Crossed bool `json:"crossed"`
}

// errFound stops a scan at the first record found.
var errFound = errors.New("found")

// crossed says whether w holds a record of br's origin active in
// [b-window, b) for a bound b: the records report.Params.BoundsCrossed
// finds in a single collector's store (the store's Overlap selection).
// Partitions whose span does not reach such an interval are not read.
func (w *Worker) crossed(br *boundsRequest) (bool, error) {
	near := false
	w.smu.Lock()
	for _, sp := range w.spans {
		for _, b := range br.Bounds {
			if sp.N > 0 && sp.Last >= b-br.Window && sp.First < b {
				near = true
			}
		}
	}
	w.smu.Unlock()
	if !near {
		return false, nil
	}
	err := w.db.View(func(tx *bolt.Tx) error {
		return eachStored(tx, func(id ID, _ []byte, r *flow.Record) error {
			for _, b := range br.Bounds {
				if r.Last < b-br.Window || r.First >= b {
					continue
				}
				o := id.Origin()
				if (br.Exporter != "" && o.Exporter != br.Exporter) || (br.HasDomain && o.Domain != br.Domain) {
					return nil
				}
				return errFound
			}
			return nil
		})
	})
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}

// bounds answers a request on BoundsSubject.
func (w *Worker) bounds(req *nats.Msg) {
	if req.Reply == "" {
		return
	}
	var br boundsRequest
	err := json.Unmarshal(req.Data, &br)
	var b []byte
	if err == nil {
		stopBusy := busy(w.nc, req.Reply)
		var a boundsAnswer
		a.Crossed, err = w.crossed(&br)
		stopBusy()
		b, _ = json.Marshal(&a)
	}
	end := &nats.Msg{Subject: req.Reply, Header: nats.Header{}}
	end.Header.Set("Mira-Records", "0")
	if err != nil {
		end.Header.Set("Mira-Error", err.Error())
	} else {
		m := &nats.Msg{Subject: req.Reply, Header: nats.Header{}, Data: b}
		m.Header.Set("Mira-Part", "1")
		w.nc.PublishMsg(m)
		end.Header.Set("Mira-Part", strconv.Itoa(len(b)))
	}
	w.nc.PublishMsg(end)
}

// boundsCrossed is report.Params.BoundsCrossed over the cluster: whether
// a record of any worker lies across p's --from or --to or ends within
// the pairing window before one (the workers that do, by name). The
// cluster's records are the union of the workers', so one worker's
// record is enough: then the whole report comes from the records, as a
// single collector's holding them all would.
//
// With --started no bound is crossed (the rollups count whole biflows by
// their start, as the records' report by start does).
func boundsCrossed(ctx context.Context, nc *nats.Conn, workers []string, p *report.Params) ([]string, error) {
	if p.Started {
		return nil, nil
	}
	br := boundsRequest{Window: int64(normWindow(p.Window)), Exporter: p.Query.Exporter, Domain: p.Query.Domain, HasDomain: p.Query.HasDomain}
	if !p.Query.From.IsZero() {
		br.Bounds = append(br.Bounds, p.Query.From.UnixNano())
	}
	if !p.Query.To.IsZero() {
		br.Bounds = append(br.Bounds, p.Query.To.UnixNano())
	}
	if len(br.Bounds) == 0 {
		return nil, nil
	}
	req, err := json.Marshal(&br)
	if err != nil {
		return nil, err
	}
	crossed := make([]bool, len(workers))
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for i, name := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload, _, _, err := ask(ctx, nc, BoundsSubject, name, req)
			if err != nil {
				errs[i] = err
				return
			}
			var a boundsAnswer
			if err := json.Unmarshal(payload, &a); err != nil {
				errs[i] = fmt.Errorf("cluster: worker %s: bounds: %w", name, err)
				return
			}
			crossed[i] = a.Crossed
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var l []string
	for i, c := range crossed {
		if c {
			l = append(l, workers[i])
		}
	}
	return l, nil
}

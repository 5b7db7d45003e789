package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/service"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/collector/web"
)

// APIConfig configures API.
type APIConfig struct {
	// Store is the live store (the collector's).
	Store *store.Store
	// Rules classify the biflows of reports (report.Options.Rules; nil:
	// the probes' categories).
	Rules *classify.Rules
	// Services name the biflows' applications (report.Options.Services;
	// nil: the default list).
	Services *service.List
	// ASFile is the prefix to AS table --by as uses (none when empty).
	ASFile string
	// Rollups is what the store's rollups must be made with to answer
	// (report.LoadRollupConfig; source=rollups or auto).
	Rollups report.RollupSource
	// Before, when set, runs before each request: the collector commits
	// the records it has received and saves its counters, so the answer
	// includes them.
	Before func()
	// Acquire, when set, gives each request its store instead of Store
	// (a cluster's merged snapshot, collector/cluster.View); release is
	// called when the request is answered.
	Acquire func(ctx context.Context) (st *store.Store, release func(), err error)
	// Report, when set, answers /api/report without a store: a
	// cluster's workers consolidate or send their rollups
	// (collector/cluster.Report); a *report.RollupError is the
	// client's (400).
	// p is checked; the rules, services and AS table are the server's.
	Report func(ctx context.Context, p *report.Params) (*report.Report, error)
}

// API serves the data of `mira report` and `mira flows` as an HTTP API:
//
//	GET /api/report?by=aggregate&from=2019-03-14&to=...&format=json
//	GET /api/flows?exporter=...&limit=100
//
// Query parameters are the commands' flags without the dashes
// (report.Params and report.Selection, parsed by the same flag set); format
// defaults to json (csv and table work too). db, as and services are not
// accepted: the store, the AS table and the service list are the
// server's. Bad parameters get 400
// with {"error": "..."}.
func API(cfg APIConfig) http.Handler {
	mux := http.NewServeMux()
	// serve answers a request with run over the request's store, or with
	// direct when it is set and says it handled the request (its errors
	// are bad parameters when a paramError, else a failure to answer).
	type directFunc func(ctx context.Context, args []string, buf *bytes.Buffer) (handled bool, err error)
	serveDirect := func(direct directFunc, run func(ctx context.Context, st *store.Store, args []string, buf *bytes.Buffer) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				httpError(w, http.StatusMethodNotAllowed, "method not allowed")
				return
			}
			q := r.URL.Query()
			format := "json"
			var args []string
			keys := make([]string, 0, len(q))
			for k := range q {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				switch k {
				case "db", "as", "services":
					httpError(w, http.StatusBadRequest, "parameter "+k+" is set by the server")
					return
				case "format":
					format = q.Get(k)
					continue
				}
				for _, v := range q[k] {
					// One argument: a boolean flag (started=1,
					// no-dedup=true) takes its value only so.
					args = append(args, "--"+k+"="+v)
				}
			}
			args = append(args, "--format", format)
			if cfg.Before != nil {
				cfg.Before()
			}
			var buf bytes.Buffer
			handled := false
			if direct != nil {
				var err error
				handled, err = direct(r.Context(), args, &buf)
				var pe paramError
				if errors.As(err, &pe) {
					httpError(w, http.StatusBadRequest, err.Error())
					return
				}
				if err != nil {
					httpError(w, http.StatusServiceUnavailable, err.Error())
					return
				}
			}
			if !handled {
				st, release, err := web.AcquireStore(r.Context(), cfg.Store, cfg.Acquire)
				if err != nil {
					httpError(w, http.StatusServiceUnavailable, err.Error())
					return
				}
				defer release()
				if err := run(r.Context(), st, args, &buf); err != nil {
					httpError(w, http.StatusBadRequest, err.Error())
					return
				}
			}
			switch format {
			case "json":
				w.Header().Set("Content-Type", "application/json")
			case "csv":
				w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			default:
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			}
			w.Write(buf.Bytes())
		}
	}
	serve := func(run func(ctx context.Context, st *store.Store, args []string, buf *bytes.Buffer) error) http.HandlerFunc {
		return serveDirect(nil, run)
	}
	reportParams := func(args []string) (*report.Params, error) {
		if cfg.ASFile != "" {
			args = append(args, "--as", cfg.ASFile)
		}
		var p report.Params
		fs := flag.NewFlagSet("/api/report", flag.ContinueOnError)
		p.Register(fs)
		if err := parseParams(fs, args); err != nil {
			return nil, err
		}
		return &p, p.Check()
	}
	var direct directFunc
	if cfg.Report != nil {
		direct = func(ctx context.Context, args []string, buf *bytes.Buffer) (bool, error) {
			p, err := reportParams(args)
			if err != nil {
				return false, paramError{err}
			}
			rep, err := cfg.Report(ctx, p)
			var re *report.RollupError
			var oe *report.OverrideError
			if errors.As(err, &re) || errors.As(err, &oe) {
				return false, paramError{err}
			}
			if err != nil {
				return false, err
			}
			return true, rep.Write(buf, p.Format)
		}
	}
	mux.HandleFunc("/api/report", serveDirect(direct, func(ctx context.Context, st *store.Store, args []string, buf *bytes.Buffer) error {
		p, err := reportParams(args)
		if err != nil {
			return err
		}
		opts := p.Options()
		opts.Rules = cfg.Rules
		opts.Services = cfg.Services
		rep, err := p.Report(ctx, st, opts, cfg.Rollups)
		if err != nil {
			return err
		}
		return rep.Write(buf, p.Format)
	}))
	// /api/rollups says whether the rollups answer the report the
	// parameters describe with its source (auto when not given: the
	// web UI's views; or rollups), and its span: for auto exactly what
	// /api/report?source=auto answers from (report.Params.Report with
	// RollupsOnly; a cluster's: cluster.Report), without making the
	// records' report.
	rollupParams := func(args []string) (*report.Params, error) {
		if cfg.ASFile != "" {
			args = append(args, "--as", cfg.ASFile)
		}
		var p report.Params
		fs := flag.NewFlagSet("/api/rollups", flag.ContinueOnError)
		p.Register(fs)
		p.Source = report.SourceAuto
		if err := parseParams(fs, args); err != nil {
			return nil, err
		}
		if p.Source != report.SourceAuto && p.Source != report.SourceRollups {
			return nil, fmt.Errorf("source %q: /api/rollups answers for auto or rollups", p.Source)
		}
		p.RollupsOnly = true
		return &p, p.Check()
	}
	type rollupAnswer struct {
		Available bool `json:"available"`
		// Source: what the report with that source is made from,
		// rollups, composed (auto: the rollups corrected by the
		// records around the bounds, rollup.edges) or records (auto),
		// none when source=rollups cannot answer.
		Source string             `json:"source,omitempty"`
		Reason string             `json:"reason,omitempty"`
		Rollup *report.RollupInfo `json:"rollup,omitempty"`
		First  *report.Timestamp  `json:"first,omitempty"`
		Last   *report.Timestamp  `json:"last,omitempty"`
	}
	writeRollups := func(p *report.Params, rep *report.Report, err error, buf *bytes.Buffer) error {
		var a rollupAnswer
		var re *report.RollupError
		switch {
		case errors.As(err, &re):
			a.Reason = re.Reason
			if p.Source == report.SourceAuto {
				a.Source = report.SourceRecords
			}
		case err != nil:
			return err
		default:
			a.Available, a.Source, a.Rollup, a.First, a.Last = true, report.SourceRollups, rep.Summary.Rollup, rep.Summary.First, rep.Summary.Last
			if ri := rep.Summary.Rollup; ri != nil && ri.Edges != nil {
				a.Source = report.SourceComposed
			}
		}
		return json.NewEncoder(buf).Encode(a)
	}
	var rollDirect directFunc
	if cfg.Report != nil {
		// A cluster: the workers' rollups answer (cfg.Report).
		rollDirect = func(ctx context.Context, args []string, buf *bytes.Buffer) (bool, error) {
			p, err := rollupParams(args)
			if err != nil {
				return false, paramError{err}
			}
			rep, err := cfg.Report(ctx, p)
			return true, writeRollups(p, rep, err, buf)
		}
	}
	mux.HandleFunc("/api/rollups", serveDirect(rollDirect, func(ctx context.Context, st *store.Store, args []string, buf *bytes.Buffer) error {
		p, err := rollupParams(args)
		if err != nil {
			return err
		}
		opts := p.Options()
		opts.Rules = cfg.Rules
		opts.Services = cfg.Services
		rep, err := p.Report(ctx, st, opts, cfg.Rollups)
		return writeRollups(p, rep, err, buf)
	}))
	mux.HandleFunc("/api/flows", serve(func(ctx context.Context, st *store.Store, args []string, buf *bytes.Buffer) error {
		var sel report.Selection
		fs := flag.NewFlagSet("/api/flows", flag.ContinueOnError)
		sel.Register(fs)
		if err := parseParams(fs, args); err != nil {
			return err
		}
		if err := sel.Check(); err != nil {
			return err
		}
		l, err := report.FlowsFromStore(ctx, st, sel.Query, withRules(sel.FlowOptions(), cfg.Rules))
		if err != nil {
			return err
		}
		return l.Write(buf, sel.Format)
	}))
	return mux
}

func withRules(o report.Options, r *classify.Rules) report.Options {
	o.Rules = r
	return o
}

// parseParams parses the flags the query parameters became.
// paramError is a request's bad parameter.
type paramError struct{ error }

func parseParams(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

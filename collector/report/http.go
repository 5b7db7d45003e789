package report

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sort"

	"github.com/mira-project/mira/collector/store"
)

// HandlerConfig configures Handler.
type HandlerConfig struct {
	// Store is the live store (the collector's).
	Store *store.Store
	// Build builds reports (FromStoreQuery when nil), e.g. with the
	// collector's classification rules.
	Build BuildFunc
	// ASFile is the prefix to AS table --by as uses (none when empty).
	ASFile string
	// Before, when set, runs before each request: the collector commits
	// the records it has received so the answer includes them.
	Before func()
}

// Handler serves the data of `mira report` and `mira flows` as an HTTP
// API:
//
//	GET /api/report?by=aggregate&from=2019-03-14&to=...&format=json
//	GET /api/flows?exporter=...&limit=100
//
// Query parameters are the commands' flags without the dashes; format
// defaults to json (csv and table work too). db and as are not accepted:
// the store and the AS table are the server's. Bad parameters get 400
// with {"error": "..."}.
func Handler(cfg HandlerConfig) http.Handler {
	mux := http.NewServeMux()
	serve := func(run func(ctx context.Context, args []string, buf *bytes.Buffer) error) http.HandlerFunc {
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
				case "db", "as":
					httpError(w, http.StatusBadRequest, "parameter "+k+" is set by the server")
					return
				case "format":
					format = q.Get(k)
					continue
				}
				for _, v := range q[k] {
					args = append(args, "--"+k, v)
				}
			}
			args = append(args, "--format", format)
			if cfg.Before != nil {
				cfg.Before()
			}
			var buf bytes.Buffer
			if err := run(r.Context(), args, &buf); err != nil {
				httpError(w, http.StatusBadRequest, err.Error())
				return
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
	mux.HandleFunc("/api/report", serve(func(ctx context.Context, args []string, buf *bytes.Buffer) error {
		if cfg.ASFile != "" {
			args = append(args, "--as", cfg.ASFile)
		}
		return reportOn(ctx, args, buf, cfg.Store, cfg.Build)
	}))
	mux.HandleFunc("/api/flows", serve(func(ctx context.Context, args []string, buf *bytes.Buffer) error {
		return flowsOn(ctx, args, buf, cfg.Store)
	}))
	return mux
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

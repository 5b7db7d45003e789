// Package web is mira-collector's web UI: a single page (static/,
// embedded with go:embed, no CDN, nothing fetched at run time) that reads
// the collector's HTTP API (/api/report, /api/flows, and /api/probes
// served here) and draws its charts with uPlot (static/vendor, built from
// npm/package-lock.json; go build never needs npm).
//
// Views: overview (totals, estimates with intervals, usage over time
// stacked by category), usage (by aggregate, category, AS, probe, host)
// with drill-down, top talkers and top biflows, symptoms heatmap, probes
// (health per probe), and the flow explorer (biflows down to their
// records). Filters and the view live in the URL's query, so a link
// reproduces the view; every view downloads as CSV and JSON.
//
// The UI and the API are read-only: only GET and HEAD are served.
// Protect adds a bearer token or HTTP basic authentication.
package web

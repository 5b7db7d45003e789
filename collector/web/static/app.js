// mira-collector web UI: one page, state in the URL's query, data from
// /api/report (the same JSON as `mira report --format json`), /api/flows
// and /api/probes. No framework; charts by uPlot.
"use strict";

(function () {
  const FILTERS = ["from", "to", "started", "probe", "aggregate", "category", "host", "port", "proto", "symptom", "app"];
  const VIEWS = ["overview", "usage", "talkers", "symptoms", "probes", "explorer"];
  const PALETTE = ["#1f5fae", "#e07b00", "#2e9d4d", "#c0392b", "#7d4cb0", "#00838f", "#b8860b", "#d14d8b",
    "#556b2f", "#5d6d7e", "#8e6c4e", "#3949ab"];
  const view = document.getElementById("view");
  let current = null; // what the view shows, for the downloads: {name, columns, rows, json}
  let charts = [];

  // ---- state in the URL ----
  function state() { return new URLSearchParams(location.search); }
  function go(changes, replace) {
    const q = state();
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined || v === "") q.delete(k); else q.set(k, String(v));
    }
    const url = "?" + q.toString();
    if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
    render();
  }
  function link(changes) {
    const q = state();
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined || v === "") q.delete(k); else q.set(k, String(v));
    }
    return "?" + q.toString();
  }
  // apiParams turns the URL's filters into the API's query parameters.
  function apiParams(extra) {
    const q = state(), p = {};
    for (const k of FILTERS) {
      const v = q.get(k);
      if (!v) continue;
      if (k === "probe") {
        const i = v.lastIndexOf("/");
        if (i > 0 && /^\d+$/.test(v.slice(i + 1))) { p.exporter = v.slice(0, i); p.domain = v.slice(i + 1); }
        else p.exporter = v;
      } else p[k] = v;
    }
    return Object.assign(p, extra || {});
  }
  function apiURL(path, params) {
    const q = new URLSearchParams();
    for (const k of Object.keys(params).sort()) q.set(k, params[k]);
    const s = q.toString();
    return s ? path + "?" + s : path;
  }
  async function api(path, params) {
    const url = apiURL(path, params);
    // Against the origin, which holds no user:password@ of the page's
    // address: fetch refuses a URL with credentials, and a relative one
    // inherits them (the browser keeps them for the origin).
    const resp = await fetch(location.origin + url, { credentials: "same-origin" });
    let body;
    try { body = await resp.json(); } catch (e) { throw new Error(url + ": " + resp.status + " " + resp.statusText); }
    if (!resp.ok) throw new Error((body && body.error) || (url + ": " + resp.status));
    return body;
  }

  // ---- formatting ----
  const nf = new Intl.NumberFormat("en-US");
  function num(v) { return v === undefined || v === null ? "–" : nf.format(v); }
  function bytes(v) {
    if (v === undefined || v === null) return "–";
    const u = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let i = 0, x = v;
    while (x >= 1000 && i < u.length - 1) { x /= 1000; i++; }
    return (i === 0 ? String(x) : x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0)) + " " + u[i];
  }
  function ts(s) { return s ? s.replace("T", " ").replace("Z", "") : "–"; }
  function tsParam(ms) { return new Date(ms).toISOString().replace(".000Z", "Z"); }
  function dur(a, b) {
    const s = (Date.parse(b) - Date.parse(a)) / 1000;
    return s < 60 ? s.toFixed(3) + " s" : s < 3600 ? (s / 60).toFixed(1) + " min" : (s / 3600).toFixed(1) + " h";
  }
  const PROTO = { 1: "ICMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 58: "ICMPv6", 132: "SCTP" };
  function proto(p) { return PROTO[p] || String(p); }
  function ep(a, port) { return (a.includes(":") ? "[" + a + "]" : a) + ":" + port; }
  // epNode is ep with a line break allowed before the port.
  function epNode(a, port) { return el("span", {}, a.includes(":") ? "[" + a + "]" : a, el("wbr"), ":" + port); }
  function symList(m) { return Object.keys(m || {}).sort().map(k => k + "=" + m[k]).join(" ") || "–"; }
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }
  // drill makes an in-page link that changes the URL state.
  function drill(text, changes, attrs) {
    return el("a", Object.assign({ class: "drill", href: link(changes), onclick: ev => { ev.preventDefault(); go(changes); } }, attrs || {}), text);
  }

  // ---- tables and downloads ----
  // table: columns [{key, label, num, fmt(row) -> node|string, csv(row)}], rows objects.
  function table(columns, rows, opts) {
    opts = opts || {};
    const cls = c => [c.num ? "num" : "", c.wide ? "wide-only" : "", c.cls || ""].join(" ").trim() || null;
    const thead = el("thead", {}, el("tr", {}, ...columns.map(c => el("th", { class: cls(c), text: c.label }))));
    const tbody = el("tbody");
    for (const r of rows) {
      const tr = el("tr", { class: opts.onrow ? "click" : null });
      if (opts.selected && opts.selected(r)) tr.classList.add("selected");
      for (const c of columns) {
        const v = c.fmt ? c.fmt(r) : (c.num ? num(r[c.key]) : r[c.key]);
        const td = el("td", { class: cls(c) });
        if (c.metric) td.setAttribute("data-col", c.metric);
        td.append(v === undefined || v === null || v === "" ? "–" : v);
        tr.append(td);
      }
      if (opts.onrow) tr.addEventListener("click", ev => { if (ev.target.tagName !== "A") opts.onrow(r); });
      tbody.append(tr);
    }
    return el("div", { class: "scroll" }, el("table", { "data-table": opts.name || "" }, thead, tbody));
  }
  function csvOf(columns, rows) {
    const esc = s => { s = s === undefined || s === null ? "" : String(s); return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; };
    const lines = [columns.map(c => esc(c.label)).join(",")];
    for (const r of rows) lines.push(columns.map(c => esc(c.csv ? c.csv(r) : r[c.key])).join(","));
    return lines.join("\n") + "\n";
  }
  // downloads offers the view's main table as CSV and the data behind the
  // view as JSON (what the API answered), as links to blobs made now
  // (current must be set) and freed at the next render.
  let blobs = [];
  function blobLink(id, name, type, text, label) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    blobs.push(url);
    return el("a", { class: "button light", id, href: url, download: name }, label);
  }
  function downloads(name) {
    if (!current) return el("div", { class: "downloads" });
    return el("div", { class: "downloads" },
      blobLink("dl-csv", name + ".csv", "text/csv", csvOf(current.columns, current.rows), "CSV"),
      blobLink("dl-json", name + ".json", "application/json", JSON.stringify(current.json, null, 2), "JSON"));
  }

  // ---- time buckets ----
  const STEPS = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400];
  function bucketFor(firstMs, lastMs, target) {
    const span = Math.max(1, (lastMs - firstMs) / 1000);
    for (const s of STEPS) if (span / s <= target) return s;
    return STEPS[STEPS.length - 1];
  }
  // range is the time range to bucket: the URL's from and to, else the
  // stored records' span (from /api/probes: a scan of the records,
  // much cheaper than a report, which pairs them).
  async function range() {
    const q = state();
    let from = q.get("from") ? Date.parse(normTime(q.get("from"))) : NaN;
    let to = q.get("to") ? Date.parse(normTime(q.get("to"))) : NaN;
    if (isFinite(from) && isFinite(to)) return [from, to];
    // The rollups know the span at once when they hold every record
    // (a scan of 10 M records takes seconds) and retention cut none of
    // it (covered_from: older records may remain); else the probes' scan.
    const r = await api("/api/rollups", apiParams({}));
    if (r.available && r.rollup.complete && !r.rollup.late_records && !r.rollup.covered_from) {
      if (!isFinite(from) && r.first) from = Date.parse(r.first);
      if (!isFinite(to) && r.last) to = Date.parse(r.last);
      return [from, to];
    }
    const pp = {};
    if (q.get("from")) pp.from = q.get("from");
    if (q.get("to")) pp.to = q.get("to");
    const probes = await api("/api/probes", pp);
    const firsts = probes.filter(p => p.first).map(p => Date.parse(p.first)), lasts = probes.filter(p => p.last).map(p => Date.parse(p.last));
    if (!isFinite(from) && firsts.length) from = Math.min(...firsts);
    if (!isFinite(to) && lasts.length) to = Math.max(...lasts);
    return [from, to];
  }
  // sumRows sums bucketed usage rows by key (biflows, packets, octets and
  // hits add up exactly: each biflow is in one bucket), in the order of
  // octets as the report sorts them.
  function sumRows(rows, key) {
    const m = new Map();
    for (const r of rows) {
      const a = m.get(r[key]) || { [key]: r[key], biflows: 0, packets: 0, octets: 0, hits: 0 };
      a.biflows += r.biflows; a.packets += r.packets; a.octets += r.octets; a.hits += r.hits || 0;
      m.set(r[key], a);
    }
    return [...m.values()].sort((a, b) => b.octets - a.octets || (a[key] < b[key] ? -1 : a[key] > b[key] ? 1 : 0));
  }
  function normTime(v) {
    if (/^\d{4}-\d\d-\d\d$/.test(v)) return v + "T00:00:00Z";
    if (/^\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(v)) return v.replace(" ", "T") + "Z";
    return v;
  }

  // allBuckets lists every bucket from the first to the last one present
  // (empty buckets too, so that time stays linear), at most 2000.
  function allBuckets(present, step) {
    const ms = [...new Set(present)].map(b => Date.parse(b)).sort((a, b) => a - b);
    if (ms.length === 0) return [];
    const out = [];
    for (let t = ms[0]; t <= ms[ms.length - 1] && out.length < 2000; t += step * 1000) out.push(new Date(t).toISOString().replace(".000Z", ".000Z"));
    return out;
  }
  function bucketLabel(b, step) {
    const s = ts(b);
    return step < 60 ? s.slice(11, 19) : step < 86400 ? s.slice(5, 16) : s.slice(0, 10);
  }

  // ---- charts ----
  function stackedChart(container, xs, series, opts) {
    // series: [{label, values[]}] drawn stacked: each band filled from the
    // sum of the series below it; the legend shows each series' own value.
    const width = Math.max(280, container.clientWidth - 4);
    const cum = [];
    let acc = xs.map(() => 0);
    for (const s of series) { acc = acc.map((a, i) => a + (s.values[i] || 0)); cum.push(acc); }
    const data = [xs];
    const useries = [{ label: "time", value: (u, v) => v === null ? "–" : new Date(v * 1000).toISOString().slice(0, 19).replace("T", " ") }];
    const bands = [];
    const stepped = uPlot.paths.stepped({ align: 1 });
    series.forEach((s, i) => {
      const color = PALETTE[i % PALETTE.length];
      data.push(cum[i]);
      const own = s.values;
      useries.push({ label: s.label, stroke: color, fill: color + "cc", width: 1, paths: stepped, points: { show: false },
        value: (u, v, si, idx) => idx === null || idx === undefined ? "–" : opts.fmt(own[idx] || 0) });
      // Each band fills from the series below it to this one.
      if (i > 0) bands.push({ series: [i + 1, i], fill: color + "cc" });
    });
    const u = new uPlot({
      width, height: opts.height || 260, series: useries, bands,
      scales: { x: { time: true } },
      tzDate: t => uPlot.tzDate(new Date(t * 1e3), "Etc/UTC"),
      axes: [{ stroke: "#5d6875" }, { stroke: "#5d6875", size: 64, values: (u, vs) => vs.map(v => opts.axis(v)) }],
      cursor: { drag: { x: true, y: false } },
      hooks: { setSelect: [u => {
        if (!opts.onselect || u.select.width < 3) return;
        const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
        opts.onselect(a * 1000, b * 1000);
      }] },
    }, data, container);
    charts.push({ u, container });
    return u;
  }
  window.addEventListener("resize", () => {
    for (const c of charts) c.u.setSize({ width: Math.max(280, c.container.clientWidth - 4), height: c.u.height });
  });

  // ---- views ----
  function header(title, name, extra) {
    return el("div", { class: "toolbar" }, el("h2", { text: title }), ...(extra || []), downloads(name));
  }
  // cutNote says where a report's numbers start when retention deleted
  // older records or rollups inside the range (the summary's
  // rollup.note and records_note, mira report's "Range cut:" lines), or
  // null.
  function cutNote(s) {
    const notes = [s.rollup && s.rollup.note, s.records_note].filter(Boolean);
    return notes.length ? el("p", { class: "note cut", "data-note": "range-cut", text: "Range cut: " + notes.join("; ") }) : null;
  }
  function metricCard(label, value, metric, sub, cls) {
    const v = el("div", { class: "value" }, value);
    if (metric) v.setAttribute("data-metric", metric);
    return el("div", { class: "card " + (cls || "") }, el("div", { class: "label", text: label }), v, sub ? el("div", { class: "sub" }, sub) : null);
  }

  async function overview() {
    const my = seq;
    const q = state();
    const metric = q.get("metric") || "octets";
    // One report, bucketed: its summary is the range's, its rows the
    // chart's, and summed by category the table's.
    const [from, to] = await range();
    const step = isFinite(from) && isFinite(to) ? bucketFor(from, to, 72) : 60;
    const series = await api("/api/report", apiParams({ by: "category", limit: "1", bucket: step + "s", source: "auto" }));
    const s = series.summary;
    const byCat = sumRows(series.usage, "category");
    current = {
      columns: [{ key: "category", label: "Category" }, { key: "biflows", label: "Biflows", num: true }, { key: "packets", label: "Packets", num: true },
        { key: "octets", label: "Bytes", num: true }],
      rows: byCat, json: series,
    };
    const msel = el("select", { id: "metric", onchange: ev => go({ metric: ev.target.value }) },
      ...["octets", "packets", "biflows"].map(m => { const o = el("option", { value: m, text: m === "octets" ? "bytes" : m }); if (m === metric) o.selected = true; return o; }));
    const cards = el("div", { class: "cards" },
      // The totals lead to the biflows behind them.
      metricCard("Packets", drill(num(s.packets), { view: "explorer", metric: null }), "packets"),
      metricCard("Bytes", drill(num(s.octets), { view: "explorer", metric: null }), "octets", bytes(s.octets)),
      metricCard("Biflows", drill(num(s.biflows), { view: "explorer", metric: null }), "biflows", num(s.flows) + " flow records"),
      metricCard("Time range", ts(s.first).slice(0, 19), null, s.first ? "to " + ts(s.last).slice(0, 19) : "no data", "range"));
    const e = s.estimate;
    let estBlock = null;
    if (e) {
      const pct = Math.round(e.confidence * 1000) / 10;
      estBlock = el("div", {},
        el("h3", { text: "Estimated totals (sampled traffic, " + pct + "% intervals)" }),
        el("div", { class: "cards" },
          metricCard("Est. packets", num(e.packets), "est-packets", "[" + num(e.packets_low) + ", " + num(e.packets_high) + "]", "est"),
          metricCard("Est. bytes", num(e.octets), "est-octets", "[" + num(e.octets_low) + ", " + num(e.octets_high) + "] " + bytes(e.octets), "est"),
          metricCard("Est. biflows", (e.biflows_lower_bound ? "≥ " : "") + num(Math.round(e.biflows)), "est-biflows",
            e.biflows_lower_bound ? "lower bound under packet sampling" : "[" + num(Math.round(e.biflows_low)) + ", " + num(Math.round(e.biflows_high)) + "]", "est")));
    }
    const chartBox = el("div", { class: "chart", id: "usage-chart" });
    show(my, header("Overview", "overview"), cutNote(s), cards, estBlock,
      el("div", { class: "panel" },
        el("div", { class: "toolbar" }, el("h3", { text: "Usage over time by category" }), el("label", {}, "Show ", msel),
          el("span", { class: "legend-note", text: "per " + stepName(step) + " bucket (biflows by start); drag to zoom into a range" +
            (s.rollup ? "; from the rollups (" + (s.rollup.resolution === "1h0m0s" ? "hourly" : "per-minute") + " totals kept at ingest" +
              (s.rollup.edges ? ", the records around the range's bounds" : "") + ")" : "") })),
        chartBox),
      el("h3", { text: "By category" }),
      table(current.columns.map(c => c.key === "category" ? Object.assign({}, c, { fmt: r => drill(r.category, { view: "usage", category: r.category, by: "aggregate" }) })
        : c.key === "biflows" ? Object.assign({}, c, { fmt: r => drill(num(r.biflows), { view: "explorer", category: r.category }) }) : c), byCat, { name: "categories" }));
    // chart data
    const buckets = allBuckets(series.usage.map(r => r.bucket), step);
    const idx = new Map(buckets.map((b, i) => [Date.parse(b), i]));
    const totals = new Map();
    for (const r of series.usage) totals.set(r.category, (totals.get(r.category) || 0) + r[metric]);
    const cats = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a) || a.localeCompare(b));
    const vals = new Map(cats.map(c => [c, buckets.map(() => 0)]));
    for (const r of series.usage) vals.get(r.category)[idx.get(Date.parse(r.bucket))] += r[metric];
    if (buckets.length === 0) { chartBox.append(el("p", { class: "note", text: "No traffic in this range." })); return; }
    // One more point closes the last bucket's step.
    const xs = buckets.map(b => Date.parse(b) / 1000);
    xs.push(xs[xs.length - 1] + step);
    for (const v of vals.values()) v.push(v[v.length - 1]);
    const fmt = metric === "octets" ? bytes : num;
    stackedChart(chartBox, xs, cats.map(c => ({ label: c, values: vals.get(c) })), {
      fmt, axis: v => metric === "octets" ? bytes(v) : (v >= 1e6 ? (v / 1e6) + "M" : v >= 1e3 ? (v / 1e3) + "k" : String(v)),
      // The chart counts biflows by start: the range zoomed into
      // selects them so (started), not those active in it.
      onselect: (a, b) => go({ from: tsParam(Math.floor(a / 1000) * 1000), to: tsParam(Math.ceil(b / 1000) * 1000), started: "1" }),
    });
  }
  function stepName(s) {
    return s % 86400 === 0 ? s / 86400 + " d" : s % 3600 === 0 ? s / 3600 + " h" : s % 60 === 0 ? s / 60 + " min" : s + " s";
  }

  // usageColumns are the usage table's columns for grouping by, with the
  // drill-down each cell offers.
  function usageColumns(by) {
    const cols = [];
    const aggCell = r => drill(r.aggregate || "(none)", { view: "usage", aggregate: r.aggregate || "-", by: "category" });
    const catCell = r => drill(r.category, { view: "usage", category: r.category, by: "host" });
    const filt = r => {
      const f = {};
      if (by === "aggregate,category" || by === "aggregate") f.aggregate = r.aggregate || "-";
      if (by === "aggregate,category" || by === "category") f.category = r.category;
      if (by === "host") f.host = r.host;
      if (by === "probe" && r.probe && !r.probe.includes(";")) f.probe = r.probe;
      if (by === "symptom") f.symptom = r.symptom;
      if (by === "app") f.app = r.app;
      return f;
    };
    switch (by) {
      case "aggregate": cols.push({ key: "aggregate", label: "Aggregate", fmt: aggCell }); break;
      case "category": cols.push({ key: "category", label: "Category", fmt: catCell }); break;
      case "probe": cols.push({ key: "probe", label: "Probes", fmt: r => r.probe && !r.probe.includes(";") ? drill(r.probe, { view: "probes", probe: r.probe }) : r.probe }); break;
      case "host": cols.push({ key: "host", label: "Host", fmt: r => drill(r.host, { view: "explorer", host: r.host }) }); break;
      case "app": cols.push({ key: "app", label: "Application", fmt: r => drill(r.app, { view: "usage", app: r.app, by: "category" }) }); break;
      case "as": cols.push({ key: "src_as", label: "Src AS", fmt: r => r.src_as ? "AS" + r.src_as : "unknown" }, { key: "dst_as", label: "Dst AS", fmt: r => r.dst_as ? "AS" + r.dst_as : "unknown" }); break;
      default: cols.push({ key: "aggregate", label: "Aggregate", fmt: aggCell }, { key: "category", label: "Category", fmt: catCell });
    }
    cols.push({ key: "biflows", label: "Biflows", num: true, metric: "biflows", fmt: r => drill(num(r.biflows), Object.assign({ view: "explorer", by: null }, filt(r))) },
      { key: "packets", label: "Packets", num: true, metric: "packets" },
      { key: "octets", label: "Bytes", num: true, metric: "octets" },
      { key: "estimated_octets", label: "Est. bytes", num: true, metric: "estimated_octets" },
      { key: "estimate", label: "Est. bytes interval", fmt: r => r.estimate ? "[" + num(r.estimate.octets_low) + ", " + num(r.estimate.octets_high) + "]" : "",
        csv: r => r.estimate ? r.estimate.octets_low + "-" + r.estimate.octets_high : "" });
    return cols;
  }

  async function usage() {
    const my = seq;
    const q = state();
    const by = q.get("by") || "aggregate,category";
    const rep = await api("/api/report", apiParams({ by, limit: "1", source: "auto" }));
    const cols = usageColumns(by);
    current = { columns: cols, rows: rep.usage, json: rep };
    const sel = el("select", { id: "by", onchange: ev => go({ by: ev.target.value }) },
      ...[["aggregate,category", "aggregate × category"], ["aggregate", "aggregate"], ["category", "category"], ["as", "AS (source × destination)"], ["probe", "probe"], ["host", "host"], ["app", "application"]]
        .map(([v, t]) => { const o = el("option", { value: v, text: t }); if (v === by) o.selected = true; return o; }));
    const s = rep.summary;
    show(my, header("Usage", "usage-" + by.replace(",", "-"), [el("label", {}, "By ", sel)]), cutNote(s),
      el("p", { class: "note" }, "Totals: ", el("span", { "data-total": "biflows", text: num(s.biflows) }), " biflows, ",
        el("span", { "data-total": "packets", text: num(s.packets) }), " packets, ", el("span", { "data-total": "octets", text: num(s.octets) }), " bytes (" + bytes(s.octets) + ")",
        by === "host" ? ". A biflow counts for both its endpoints." : ". Click a name to drill down, a biflow count to list the biflows."),
      table(cols, rep.usage, { name: "usage" }));
  }

  async function talkers() {
    const my = seq;
    const q = state();
    const n = parseInt(q.get("limit") || "25", 10);
    // One report: its usage by host, its biflows the largest.
    const hosts = await api("/api/report", apiParams({ by: "host", order: "bytes", limit: String(n) }));
    const top = hosts;
    const hcols = usageColumns("host").filter(c => c.key !== "estimate");
    const rows = hosts.usage.slice(0, n);
    const bcols = biflowColumns();
    current = { columns: hcols, rows, json: hosts };
    const lsel = el("select", { id: "limit", onchange: ev => go({ limit: ev.target.value }) },
      ...["10", "25", "100", "500"].map(v => { const o = el("option", { value: v, text: "top " + v }); if (v === String(n)) o.selected = true; return o; }));
    show(my, header("Top talkers", "top-talkers", [lsel]), cutNote(hosts.summary),
      el("p", { class: "note", text: num(hosts.usage.length) + " hosts in " + num(hosts.summary.biflows) + " biflows; a host's traffic is that of every biflow it is an endpoint of." }),
      table(hcols, rows, { name: "talkers" }),
      el("h3", { text: "Top biflows by bytes" }),
      table(bcols, top.biflows, { name: "top-biflows", onrow: b => go(Object.assign({ view: "explorer" }, biflowSel(b))) }));
  }

  function biflowColumns() {
    return [
      { key: "first", label: "First", wide: true, fmt: b => ts(b.first) },
      { key: "duration", label: "Duration", wide: true, fmt: b => dur(b.first, b.last), csv: b => (Date.parse(b.last) - Date.parse(b.first)) / 1000 },
      { key: "proto", label: "Proto", wide: true, fmt: b => proto(b.proto) },
      { key: "src", label: "Initiator", cls: "ep", fmt: b => epNode(b.src, b.sport), csv: b => ep(b.src, b.sport) },
      { key: "dst", label: "Responder", cls: "ep", fmt: b => epNode(b.dst, b.dport), csv: b => ep(b.dst, b.dport) },
      { key: "packets", label: "Packets", num: true, wide: true, fmt: b => num(b.packets + b.rpackets), csv: b => b.packets + b.rpackets },
      { key: "octets", label: "Bytes", num: true, fmt: b => num(b.octets + b.roctets), csv: b => b.octets + b.roctets },
      { key: "scanned", label: "Scanned", num: true, wide: true, fmt: b => scannedNode(b.scanned_octets, b.rscanned_octets),
        csv: b => (b.scanned_octets || 0) + (b.rscanned_octets || 0) },
      { key: "category", label: "Category" },
      { key: "app", label: "Application", fmt: b => b.app === "unknown" ? "" : b.app, csv: b => b.app },
      { key: "aggregate", label: "Aggregate", wide: true },
      { key: "symptoms", label: "Symptoms", cls: "ep", fmt: b => symList(b.symptoms), csv: b => symList(b.symptoms) },
      { key: "sampling", label: "Sampling", wide: true, fmt: b => b.sampling < 1 ? "1/" + Math.round(1 / b.sampling) : "none" },
      { key: "probes", label: "Probes", wide: true, fmt: b => (b.origins || b.probes || []).join(" "), csv: b => (b.origins || b.probes || []).join(";") },
      { key: "flows", label: "Records", num: true, wide: true },
    ];
  }
  // scannedNode shows a biflow's scanned payload octets (both directions;
  // each in the title), "–" when none were (not scanned, or not known).
  function scannedNode(fwd, rev) {
    fwd = fwd || 0; rev = rev || 0;
    if (fwd + rev === 0) return "–";
    return el("span", { title: num(fwd) + " initiator → responder, " + num(rev) + " back" }, num(fwd + rev));
  }
  // biflowSel names one biflow in the URL.
  function biflowSel(b) {
    return { bf: [b.src, b.sport, b.dst, b.dport, b.proto, b.first, b.last].join("|") };
  }

  async function symptoms() {
    const my = seq;
    const [from, to] = await range();
    const step = isFinite(from) && isFinite(to) ? bucketFor(from, to, 36) : 60;
    const heat = await api("/api/report", apiParams({ by: "symptom", limit: "1", bucket: step + "s", source: "auto" }));
    const tot = { usage: sumRows(heat.usage, "symptom") };
    const cols = [{ key: "symptom", label: "Symptom", fmt: r => drill(r.symptom, { view: "explorer", symptom: r.symptom }) },
      { key: "biflows", label: "Biflows", num: true, metric: "biflows" }, { key: "hits", label: "Hits", num: true, metric: "hits" },
      { key: "packets", label: "Packets", num: true, metric: "packets" }, { key: "octets", label: "Bytes", num: true, metric: "octets" }];
    current = { columns: cols, rows: tot.usage, json: heat };
    const syms = tot.usage.map(r => r.symptom);
    const buckets = allBuckets(heat.usage.map(r => r.bucket), step);
    const grid = el("div", { class: "heat", id: "heatmap" });
    grid.style.gridTemplateColumns = "max-content repeat(" + buckets.length + ", minmax(2.6rem, 1fr))";
    grid.append(el("div", { class: "rowh", text: "symptom \\ " + stepName(step) }));
    for (const b of buckets) grid.append(el("div", { class: "colh", title: b, text: bucketLabel(b, step) }));
    const cell = new Map(heat.usage.map(r => [r.symptom + "\u0000" + Date.parse(r.bucket), r]));
    const max = Math.max(1, ...heat.usage.map(r => r.biflows));
    for (const s of syms) {
      grid.append(el("div", { class: "rowh", text: s }));
      for (const b of buckets) {
        const r = cell.get(s + "\u0000" + Date.parse(b));
        const n = r ? r.biflows : 0;
        const c = el("div", { class: "cell" + (n ? "" : " zero"), "data-symptom": s, "data-bucket": b, title: s + " " + ts(b) + ": " + n + " biflows" + (r ? ", " + r.hits + " hits" : ""), text: n ? num(n) : "·" });
        if (n) {
          const a = 0.15 + 0.85 * Math.sqrt(n / max);
          c.style.background = "rgba(179, 38, 30, " + a.toFixed(3) + ")";
          if (a > 0.55) c.style.color = "#fff";
          const t0 = Date.parse(b);
          // The cell counts the biflows that started in its bucket:
          // the explorer lists those (started), not those active in it.
          c.addEventListener("click", () => go({ view: "explorer", symptom: s, from: tsParam(t0), to: tsParam(t0 + step * 1000), started: "1" }));
        }
        grid.append(c);
      }
    }
    show(my, header("Symptoms", "symptoms"),
      el("p", { class: "note", text: "Biflows carrying each symptom per " + stepName(step) + " (by biflow start). Click a cell for its biflows." }),
      syms.length ? el("div", { class: "scroll panel" }, grid) : el("p", { class: "note", text: "No symptoms in this range." }),
      el("h3", { text: "Totals" }), table(cols, tot.usage, { name: "symptoms" }));
  }

  async function probes() {
    const my = seq;
    const q = state();
    const pp = {};
    if (q.get("from")) pp.from = q.get("from");
    if (q.get("to")) pp.to = q.get("to");
    const [list, rep] = await Promise.all([api("/api/probes", pp), api("/api/report", apiParams({ by: "probe", limit: "1" }))]);
    const only = q.get("probe");
    const shown = only ? list.filter(p => p.probe === only || p.exporter === only) : list;
    const now = Date.now();
    const cols = [
      { key: "probe", label: "Probe", fmt: p => drill(p.probe, { view: "explorer", probe: p.probe }) },
      { key: "records", label: "Records", num: true },
      { key: "last", label: "Last record", fmt: p => p.last ? el("span", { title: dur(p.last, new Date(now).toISOString()) + " ago", class: now - Date.parse(p.last) > 300000 ? "warn" : "ok" }, ts(p.last)) : "–", csv: p => p.last || "" },
      { key: "sampling", label: "Sampling", metric: "sampling", fmt: p => p.sampling && p.sampling.interval > 1 ? "1/" + p.sampling.interval + (p.sampling.flow ? " flows" : " packets") : (p.sampling ? "none (announced)" : "none"),
        csv: p => p.sampling ? p.sampling.interval + (p.sampling.flow ? " flow" : " packet") : "" },
      { key: "sampling_changes", label: "Sampling announcements", num: true },
      { key: "spool", label: "Spool (stored / missing)", fmt: p => p.spool ? p.spool.map(s => num(s.stored) + " / " + num(s.missing)).join(", ") : "–",
        csv: p => p.spool ? p.spool.map(s => s.stored + "/" + s.missing).join(";") : "" },
      { key: "packets", label: "Packets", num: true },
      { key: "octets", label: "Bytes", num: true },
    ];
    // Loss ledgers (one per exporting process; a restarted probe has
    // several): summed per probe into its row.
    const ledgers = rep.summary.ledgers || [];
    const ledgerOf = new Map();
    for (const l of ledgers) {
      const k = (l.probe || "-") + "/" + l.domain;
      const a = ledgerOf.get(k) || { processes: 0, lost: 0, loss: {} };
      a.processes++;
      for (const [st, n] of Object.entries(l.loss || {})) { a.loss[st] = (a.loss[st] || 0) + n; a.lost += n; }
      ledgerOf.set(k, a);
    }
    cols.splice(6, 0, { key: "ledger_loss", label: "Lost (ledger)", num: true,
      fmt: p => { const a = ledgerOf.get(p.probe); if (!a) return "–"; const stages = Object.entries(a.loss).filter(([, n]) => n > 0).map(([st, n]) => st + " " + num(n)).join(", ");
        return el("span", { class: a.lost > 0 ? "bad" : "ok", title: stages || "no loss" }, num(a.lost) + (stages ? " (" + stages + ")" : "")); },
      csv: p => ledgerOf.has(p.probe) ? ledgerOf.get(p.probe).lost : "" });
    current = { columns: cols, rows: shown, json: { probes: list, report: rep } };
    const s2 = rep.summary;
    const skip = new Set(["flows", "biflows", "listed", "packets", "octets", "estimated_octets", "first", "last", "estimate", "loss", "ledgers"]);
    const kv = el("dl", { class: "kv", id: "collector-counters" });
    for (const [k, v] of Object.entries(s2)) {
      if (skip.has(k) || k.startsWith("estimated_")) continue;
      const dd = el("dd", { "data-counter": k });
      if (v && typeof v === "object") dd.textContent = Object.entries(v).map(([a, b]) => a + ": " + (typeof b === "object" ? JSON.stringify(b) : num(b))).join(", ") || "none";
      else dd.textContent = typeof v === "number" ? num(v) : String(v);
      if ((k === "lost" || k === "dropped" || k === "socket_drops") && v > 0) dd.className = "bad";
      kv.append(el("dt", { text: k.replace(/_/g, " ") }), dd);
    }
    const loss = s2.loss || {};
    const stages = Object.keys(loss);
    // One row: the loss at each stage, over all probes and the collector.
    const lossTable = stages.length ? table(
      stages.map(st => ({ key: st, label: st, num: true, fmt: r => el("span", { class: r[st] > 0 ? "bad" : null, "data-loss": st }, num(r[st])) })),
      [loss], { name: "loss" }) : el("p", { class: "note", text: "This report has no loss ledger." });
    const ledgerCols = [{ key: "probe", label: "Probe", fmt: l => (l.probe || "-") + "/" + l.domain }, { key: "started", label: "Process started", fmt: l => ts(l.started) },
      { key: "messages", label: "Messages", num: true }, { key: "records", label: "Records", num: true },
      ...[...new Set(ledgers.flatMap(l => Object.keys(l.loss || {})))].sort().map(st => ({ key: st, label: st, num: true, fmt: l => num((l.loss || {})[st] || 0), csv: l => (l.loss || {})[st] || 0 }))];
    show(my, header("Probes", "probes"),
      el("p", { class: "note", text: "Each probe (exporter/observation domain) as the store shows it: its records in the range, when the last one ended, its announced sampling (a self-regulating probe announces each change), the loss its ledger reports and, for spooling exporters, the sequence numbers stored and missing." }),
      table(cols, shown, { name: "probes" }),
      el("h3", { text: "Loss ledger" }), lossTable,
      ledgers.length ? el("h3", { text: "Ledgers by exporting process" }) : null,
      ledgers.length ? table(ledgerCols, ledgers, { name: "ledgers" }) : null,
      el("h3", { text: "Collector counters (report summary)" }),
      el("div", { class: "panel" }, kv.childElementCount ? kv : el("p", { class: "note", text: "The store has no collector counters yet." })),
      el("h3", { text: "Usage by probe set" }),
      table(usageColumns("probe"), rep.usage, { name: "probe-usage" }));
  }

  async function explorer() {
    const my = seq;
    const q = state();
    const order = q.get("order") || "bytes";
    const n = parseInt(q.get("limit") || "100", 10);
    const off = Math.max(0, parseInt(q.get("offset") || "0", 10) || 0);
    const rep = await api("/api/report", apiParams(Object.assign({ by: "category", order, limit: String(n) }, off > 0 ? { offset: String(off) } : {})));
    const cols = biflowColumns();
    const bf = q.get("bf");
    current = { columns: cols, rows: rep.biflows, json: rep };
    const osel = el("select", { id: "order", onchange: ev => go({ order: ev.target.value, offset: null }) },
      ...[["bytes", "largest first"], ["time", "by start"]].map(([v, t]) => { const o = el("option", { value: v, text: t }); if (v === order) o.selected = true; return o; }));
    const s = rep.summary;
    // Pages of n biflows (the report's --offset and next_offset); "show"
    // lists more on one page.
    const more = s.biflows > s.listed && off === 0 ? drill("show " + Math.min(s.biflows, n * 4) + "", { limit: n * 4 }) : null;
    const prev = off > 0 ? drill("← previous " + num(n), { offset: Math.max(0, off - n) || null, bf: null }, { id: "page-prev" }) : null;
    const next = s.next_offset ? drill("next " + num(Math.min(n, s.biflows - s.next_offset)) + " →", { offset: s.next_offset, bf: null }, { id: "page-next" }) : null;
    const listed = s.listed ? el("span", { "data-page": "listed", text: num(off + 1) + "–" + num(off + s.listed) }) : el("span", { "data-page": "listed", text: "none" });
    const parts = [header("Flow explorer", "biflows", [el("label", {}, "Order ", osel)]),
      el("p", { class: "note" }, el("span", { "data-total": "biflows", text: num(s.biflows) }), " biflows (",
        el("span", { "data-total": "packets", text: num(s.packets) }), " packets, ", el("span", { "data-total": "octets", text: num(s.octets) }),
        " bytes), ", listed, " listed. ", prev, prev && (next || more) ? " " : null, next, " ", more, " ", " Click a biflow for its records."),
      table(cols, rep.biflows, { name: "biflows", onrow: b => go(biflowSel(b)), selected: b => bf === biflowSel(b).bf })];
    // The selected biflow's records come first, above the list.
    if (bf) parts.splice(2, 0, await records(bf));
    show(my, ...parts);
    const sel = document.getElementById("records");
    if (sel) sel.scrollIntoView({ block: "nearest" });
  }

  // records lists the stored records of the biflow bf names.
  async function records(bf) {
    const [src, sport, dst, dport, pr, first, last] = bf.split("|");
    const p = { host: src, port: sport, proto: pr, from: first, to: new Date(Date.parse(last) + 1).toISOString() };
    const probe = apiParams().exporter;
    if (probe) p.exporter = probe;
    const l = await api("/api/flows", p);
    const mine = l.flows.filter(f => f.proto === +pr && ((f.src === src && f.sport === +sport && f.dst === dst && f.dport === +dport) ||
      (f.src === dst && f.sport === +dport && f.dst === src && f.dport === +sport)));
    const cols = [
      { key: "first", label: "First", fmt: f => ts(f.first) }, { key: "last", label: "Last", wide: true, fmt: f => ts(f.last) },
      { key: "dir", label: "Direction", fmt: f => f.src === src && f.sport === +sport ? "initiator → responder" : "responder → initiator" },
      { key: "packets", label: "Packets", num: true }, { key: "octets", label: "Bytes", num: true },
      { key: "scanned_octets", label: "Scanned", num: true, metric: "scanned_octets", fmt: f => f.scanned_octets ? num(f.scanned_octets) : "–", csv: f => f.scanned_octets || 0 },
      { key: "tcp_flags", label: "TCP flags", wide: true }, { key: "end_reason", label: "End", wide: true },
      { key: "symptoms", label: "Symptoms", fmt: f => symList(f.symptoms), csv: f => symList(f.symptoms) },
      { key: "sampling", label: "Sampling", fmt: f => f.sampling < 1 ? "1/" + Math.round(1 / f.sampling) : "none" },
      { key: "probe", label: "Probe", fmt: f => (f.exporter || "-") + "/" + f.domain, csv: f => (f.exporter || "-") + "/" + f.domain },
    ];
    return el("div", { class: "panel", id: "records" },
      el("div", { class: "toolbar" }, el("h3", { text: "Records of " + proto(+pr) + " " + ep(src, sport) + " ↔ " + ep(dst, dport) }),
        el("div", { class: "downloads" },
          blobLink("dl-records-csv", "records.csv", "text/csv", csvOf(cols, mine), "CSV"),
          blobLink("dl-records-json", "records.json", "application/json", JSON.stringify(mine, null, 2), "JSON"),
          drill("close", { bf: null }))),
      table(cols, mine, { name: "records" }));
  }

  // ---- shell ----
  const form = document.getElementById("filters");
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const ch = { bf: null, offset: null };
    for (const k of FILTERS) ch[k] = form.elements[k].value.trim();
    go(ch);
  });
  document.getElementById("clear").addEventListener("click", () => {
    const ch = { bf: null, offset: null };
    for (const k of FILTERS) ch[k] = null;
    go(ch);
  });
  document.querySelectorAll("#nav a").forEach(a => a.addEventListener("click", ev => {
    ev.preventDefault();
    go({ view: a.dataset.view, by: null, bf: null, limit: null, order: null, offset: null });
  }));
  window.addEventListener("popstate", render);
  const filterbox = document.getElementById("filterbox");
  if (window.innerWidth <= 600) filterbox.open = false;

  // seq numbers the renders: a view whose data arrives after the user
  // moved on (a newer render started) is not shown.
  let seq = 0;
  const STALE = new Error("stale render");
  function show(my, ...nodes) {
    if (my !== seq) throw STALE;
    view.replaceChildren(...nodes.filter(n => n !== null && n !== undefined));
  }
  async function render() {
    const q = state();
    const v = VIEWS.includes(q.get("view")) ? q.get("view") : "overview";
    document.querySelectorAll("#nav a").forEach(a => a.classList.toggle("active", a.dataset.view === v));
    for (const k of FILTERS) form.elements[k].value = q.get(k) || "";
    const active = FILTERS.filter(k => q.get(k)).length;
    document.getElementById("filtercount").textContent = active ? "(" + active + " active)" : "";
    const chips = document.getElementById("chips");
    chips.replaceChildren(...FILTERS.filter(k => q.get(k)).map(k => el("span", { class: "chip", "data-filter": k }, k === "started" ? "biflows started in the range" : k + ": " + q.get(k),
      el("button", { type: "button", title: "remove", onclick: () => go({ [k]: null, bf: null, offset: null }) }, "×"))));
    for (const u of blobs) URL.revokeObjectURL(u);
    blobs = [];
    for (const c of charts) c.u.destroy();
    charts = [];
    current = null;
    const my = ++seq;
    view.setAttribute("data-state", "loading");
    view.replaceChildren(el("p", { class: "loading", text: "Loading…" }));
    try {
      await { overview, usage, talkers, symptoms, probes, explorer }[v]();
    } catch (e) {
      if (e === STALE || my !== seq) return;
      view.replaceChildren(el("div", { class: "error", id: "error", text: String(e.message || e) }));
    }
    if (my === seq) {
      view.setAttribute("data-view", v);
      view.setAttribute("data-state", "ready");
      document.title = "MIRA · " + v;
    }
  }
  render();
})();

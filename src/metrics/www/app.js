// plantwatch dashboard: polls the five metrics views every 5 s and draws them
// with inline SVG and tables. Each panel's data-state is loading | ok | empty | error.
"use strict";

const REFRESH_MS = 5000;
const SVG_NS = "http://www.w3.org/2000/svg";
const pageZone = new URLSearchParams(location.search).get("zone") || "";

const VIEWS = [
  { panel: "panel-temperature", path: "/v1/metrics/temperature/zones", query: { window_hours: 24 }, render: renderTemperature },
  { panel: "panel-alerts", path: "/v1/metrics/alerts/breakdown", query: { window_hours: 168, top: 6 }, render: renderAlerts },
  { panel: "panel-activity", path: "/v1/metrics/activity/trend", query: {}, render: renderActivity },
  { panel: "panel-firmware", path: "/v1/metrics/firmware/status", query: {}, render: renderFirmware },
  { panel: "panel-health", path: "/v1/metrics/devices/health", query: { silent_minutes: 10, limit: 100 }, render: renderHealth },
];

// ---- small DOM helpers ---------------------------------------------------

function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") n.className = v; else n.setAttribute(k, v);
  }
  for (const c of children) n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return n;
}

function svg(tag, attrs, text) {
  const n = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = String(text);
  return n;
}

// A label shortened to max characters (code points: never half of a
// surrogate pair) with "…"; the whole text stays in a tooltip.
function shortLabel(tag, attrs, text, max) {
  const chars = Array.from(text);
  const n = svg(tag, attrs, chars.length > max ? chars.slice(0, max - 1).join("") + "…" : text);
  if (chars.length > max) n.append(svg("title", {}, text));
  return n;
}

function fmtInt(n) { return Number(n).toLocaleString("en-US"); }
function fmtTemp(c) { return `${Number(c).toFixed(1)} °C`; }
function fmtPct(x) { return `${(x * 100).toFixed(x >= 0.1 ? 0 : 1)} %`; }

function fmtDuration(sec) {
  sec = Math.max(0, Math.round(sec));
  if (sec < 90) return `${sec} s`;
  if (sec < 5400) return `${Math.round(sec / 60)} min`;
  if (sec < 172800) return `${(sec / 3600).toFixed(1)} h`;
  return `${(sec / 86400).toFixed(1)} d`;
}

function fmtUtc(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—";
}

function message(text, cls) { return el("div", { class: "msg " + (cls || "") }, text); }

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// ---- views ----------------------------------------------------------------

function renderTemperature(body, d, meta) {
  meta.textContent = `last ${d.window_hours} h · hourly buckets`;
  if (!d.zones.length) {
    body.append(message("No temperature readings in this window."));
    return "empty";
  }
  let lo = Math.min(...d.zones.map(z => z.min_c));
  let hi = Math.max(...d.zones.map(z => z.max_c));
  const pad = Math.max(1, (hi - lo) * 0.08);
  lo = Math.floor(lo - pad); hi = Math.ceil(hi + pad);
  const W = 760, left = 130, right = 190, rowH = 34, top = 22;
  const H = top + d.zones.length * rowH + 4;
  const x = v => left + (v - lo) / (hi - lo) * (W - left - right);
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "temperature by zone" });
  const step = niceMax((hi - lo) / 5);
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) {
    s.append(svg("line", { x1: x(t), x2: x(t), y1: top - 4, y2: H, class: "gridline" }));
    s.append(svg("text", { x: x(t), y: 12, "text-anchor": "middle", class: "muted" }, `${+t.toFixed(1)}°`));
  }
  d.zones.forEach((z, i) => {
    const y = top + i * rowH + rowH / 2;
    s.append(shortLabel("text", { x: 0, y: y + 4 }, z.zone, 18));
    s.append(svg("rect", { x: x(z.min_c), y: y - 6, width: Math.max(2, x(z.max_c) - x(z.min_c)), height: 12, rx: 6, fill: "var(--range)" }));
    s.append(svg("circle", { cx: x(z.avg_c), cy: y, r: 6, fill: "var(--accent)", stroke: "#0f1419", "stroke-width": 2 }));
    s.append(svg("text", { x: W - right + 14, y: y + 4, "font-weight": 600 }, fmtTemp(z.avg_c)));
    s.append(svg("text", { x: W - right + 82, y: y + 4, class: "muted" },
      `${z.min_c.toFixed(1)}–${z.max_c.toFixed(1)} · n=${fmtInt(z.count)}`));
  });
  body.append(s, el("div", { class: "legend" },
    el("span", {}, el("i", { style: "background:var(--accent);border-radius:50%" }), "average"),
    el("span", {}, el("i", { style: "background:var(--range)" }), "min – max")));
  return "ok";
}

function renderAlerts(body, d, meta) {
  meta.textContent = `last ${d.window_hours >= 48 && d.window_hours % 24 === 0 ? d.window_hours / 24 + " days" : d.window_hours + " h"}`;
  const kpis = el("div", { class: "kpis" }, el("div", { class: "kpi total" }, el("div", { class: "v" }, fmtInt(d.total)), el("div", { class: "l" }, "total")));
  for (const s of d.by_severity) {
    kpis.append(el("div", { class: "kpi " + s.severity }, el("div", { class: "v" }, fmtInt(s.count)), el("div", { class: "l" }, s.severity)));
  }
  body.append(kpis);
  if (!d.total) {
    body.append(message("No alerts in this window."));
    return "empty";
  }
  const W = 420, rowH = 34;
  const max = Math.max(...d.top_codes.map(c => c.count));
  const s = svg("svg", { viewBox: `0 0 ${W} ${d.top_codes.length * rowH}`, role: "img", "aria-label": "top alert codes" });
  d.top_codes.forEach((c, i) => {
    const y = i * rowH;
    const w = Math.max(2, (c.count / max) * (W - 60));
    s.append(shortLabel("text", { x: 0, y: y + 12 }, c.code, 48));
    s.append(svg("rect", { x: 0, y: y + 17, width: w, height: 11, rx: 3, fill: "var(--warn)", opacity: 0.85 }));
    s.append(svg("text", { x: w + 6, y: y + 27, class: "muted" }, fmtInt(c.count)));
  });
  body.append(el("div", { class: "summary" }, "Top codes"), s);
  return "ok";
}

function renderActivity(body, d, meta) {
  meta.textContent = `${d.days[0].day} → ${d.days[d.days.length - 1].day} (UTC)`;
  const series = [
    { key: "readings", name: "Readings", color: "var(--accent)" },
    { key: "alerts", name: "Alerts", color: "var(--warn)" },
    { key: "active_devices", name: "Active devices", color: "var(--accent-2)" },
  ];
  const W = 760, rowH = 74, left = 110, labelH = 18;
  const colW = (W - left) / d.days.length;
  const s = svg("svg", { viewBox: `0 0 ${W} ${series.length * rowH + labelH}`, role: "img", "aria-label": "activity per day" });
  series.forEach((ser, r) => {
    const y0 = r * rowH;
    const total = d.days.reduce((a, day) => a + day[ser.key], 0);
    const max = Math.max(1, ...d.days.map(day => day[ser.key]));
    s.append(svg("text", { x: 0, y: y0 + 30, "font-weight": 600 }, ser.name));
    s.append(svg("text", { x: 0, y: y0 + 48, class: "muted" }, ser.key === "active_devices" ? `peak ${fmtInt(max === 1 && total === 0 ? 0 : max)}` : `Σ ${fmtInt(total)}`));
    s.append(svg("line", { x1: left, x2: W, y1: y0 + rowH - 10, y2: y0 + rowH - 10, class: "gridline" }));
    d.days.forEach((day, i) => {
      const v = day[ser.key];
      const h = (v / max) * (rowH - 30);
      const bx = left + i * colW + colW * 0.18;
      s.append(svg("rect", { x: bx, y: y0 + rowH - 10 - h, width: colW * 0.64, height: Math.max(v ? 2 : 0, h), rx: 3, fill: ser.color, opacity: 0.9 }));
      s.append(svg("text", { x: bx + colW * 0.32, y: y0 + rowH - 14 - h, "text-anchor": "middle", class: "muted", "font-size": 11 }, fmtInt(v)));
    });
  });
  d.days.forEach((day, i) => {
    const dt = new Date(day.day + "T00:00:00Z");
    const label = dt.toLocaleDateString("en-US", { weekday: "short", day: "numeric", timeZone: "UTC" });
    s.append(svg("text", { x: left + (i + 0.5) * colW, y: series.length * rowH + 10, "text-anchor": "middle", class: "muted" }, label));
  });
  body.append(s);
  const quiet = d.days.every(day => !day.readings && !day.alerts && !day.active_devices);
  return quiet ? "empty" : "ok";
}

function donut(versions) {
  const R = 50, r = 32, c = 60;
  const s = svg("svg", { viewBox: "0 0 120 120", role: "img", "aria-label": "firmware share" });
  const colors = ["var(--accent-2)", "var(--accent)", "#a98bff", "var(--warn)", "#ff8fab", "#6b7b8c"];
  let a0 = -Math.PI / 2;
  versions.forEach((v, i) => {
    const a1 = a0 + v.share * 2 * Math.PI;
    const color = colors[Math.min(i, colors.length - 1)];
    if (v.share >= 0.9999) {
      s.append(svg("circle", { cx: c, cy: c, r: (R + r) / 2, fill: "none", stroke: color, "stroke-width": R - r }));
    } else if (v.share > 0) {
      const large = a1 - a0 > Math.PI ? 1 : 0;
      const p = (rad, ang) => `${c + rad * Math.cos(ang)} ${c + rad * Math.sin(ang)}`;
      s.append(svg("path", { d: `M ${p(R, a0)} A ${R} ${R} 0 ${large} 1 ${p(R, a1)} L ${p(r, a1)} A ${r} ${r} 0 ${large} 0 ${p(r, a0)} Z`, fill: color }));
    }
    v._color = color;
    a0 = a1;
  });
  return s;
}

function renderFirmware(body, d, meta) {
  meta.textContent = `${fmtInt(d.total_devices)} devices · ${fmtInt(d.outdated_devices)} outdated`;
  if (!d.versions.length) {
    body.append(message("No devices known yet."));
    return "empty";
  }
  const shown = d.versions.slice(0, 6);
  const chart = donut(shown);
  const tbody = el("tbody");
  for (const v of shown) {
    const badge = v.outdated ? el("span", { class: "badge old" }, "outdated") : el("span", { class: "badge newest" }, "newest");
    tbody.append(el("tr", {},
      el("td", {}, el("i", { style: `display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:6px;background:${v._color}` }), v.firmware || "(unknown)"),
      el("td", { class: "num" }, fmtInt(v.devices)),
      el("td", { class: "num" }, fmtPct(v.share)),
      el("td", {}, badge),
      el("td", { class: "num", title: fmtUtc(v.last_seen_ms) }, v.last_seen_ms ? fmtDuration((Date.now() - v.last_seen_ms) / 1000) : "never")));
  }
  const table = el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "version"), el("th", { class: "num" }, "devices"),
    el("th", { class: "num" }, "share"), el("th", {}, ""), el("th", { class: "num" }, "seen"))), tbody);
  body.append(el("div", { class: "fw" }, chart, table));
  if (d.versions.length > shown.length) body.append(el("div", { class: "meta" }, `+ ${d.versions.length - shown.length} more versions`));
  return "ok";
}

function renderHealth(body, d, meta) {
  const mins = Math.round((d.as_of_ms - d.threshold_ms) / 60000);
  meta.textContent = `no data for ${mins} min or more`;
  if (!d.total_devices) {
    body.append(message("No devices known yet."));
    return "empty";
  }
  body.append(el("div", { class: "summary" }, el("b", {}, fmtInt(d.silent_devices)), " of ", el("b", {}, fmtInt(d.total_devices)),
    ` devices silent for more than ${mins} min`));
  if (!d.silent.length) {
    body.append(message("All devices are reporting."));
    return "ok";
  }
  const shown = d.silent.slice(0, 12);
  const tbody = el("tbody");
  const maxSilent = Math.max(...shown.map(x => x.silent_seconds), 1);
  for (const x of shown) {
    const bar = svg("svg", { viewBox: "0 0 100 8", preserveAspectRatio: "none", style: "height:8px;width:120px;display:inline-block" });
    bar.append(svg("rect", { x: 0, y: 0, width: Math.max(2, 100 * x.silent_seconds / maxSilent), height: 8, rx: 2, fill: "var(--crit)", opacity: 0.8 }));
    tbody.append(el("tr", {}, el("td", {}, x.device_id), el("td", {}, x.zone),
      el("td", { class: "num" }, fmtDuration(x.silent_seconds)), el("td", {}, bar), el("td", {}, fmtUtc(x.last_seen_ms))));
  }
  body.append(el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "device"), el("th", {}, "zone"),
    el("th", { class: "num" }, "silent for"), el("th", {}, ""), el("th", {}, "last seen"))), tbody));
  if (d.silent_devices > shown.length) body.append(el("div", { class: "meta" }, `+ ${fmtInt(d.silent_devices - shown.length)} more`));
  return "ok";
}

// ---- read key -----------------------------------------------------------------
// Through the gateway (http://127.0.0.1:8000/index.html) the views need a read
// key in the apikey header. The page asks for it once per browser tab and keeps
// it in sessionStorage (gone when the tab closes, never in a URL); a refused key
// is forgotten and asked for again. Served by the metrics service itself, the
// views answer without a key and nothing is asked.
const KEY_ITEM = "plantwatch.readKey";
let keyDeclined = false;

function currentKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

// used: the key the refused request carried. Parallel views refused with the
// same key ask only once; a cancelled prompt is not repeated until reload.
function askForKey(used) {
  if (keyDeclined || currentKey() !== used) return;
  sessionStorage.removeItem(KEY_ITEM);
  const key = window.prompt("This dashboard needs a read key (./plantwatch keys add NAME --read):");
  if (key && key.trim()) sessionStorage.setItem(KEY_ITEM, key.trim());
  else keyDeclined = true;
}

// ---- polling ----------------------------------------------------------------

function viewUrl(v) {
  const q = new URLSearchParams();
  for (const [k, val] of Object.entries(v.query)) q.set(k, val);
  if (pageZone) q.set("zone", pageZone);
  const qs = q.toString();
  return qs ? `${v.path}?${qs}` : v.path;
}

async function load(v) {
  const panel = document.getElementById(v.panel);
  const body = panel.querySelector("[data-body]");
  const meta = panel.querySelector("[data-meta]");
  try {
    const used = currentKey();
    const r = await fetch(viewUrl(v), { cache: "no-store", headers: used ? { apikey: used } : {} });
    if (r.status === 401 || r.status === 403) {
      askForKey(used);
      throw new Error(r.status === 401 ? "a read key is needed" : "this key may not read analytics");
    }
    const d = await r.json();
    if (!r.ok) throw new Error(d.error ? d.error.message : `HTTP ${r.status}`);
    const fresh = document.createElement("div");
    const state = v.render(fresh, d, meta);
    body.replaceChildren(...fresh.childNodes);
    panel.dataset.state = state;
    return true;
  } catch (e) {
    body.replaceChildren(message(`Unavailable: ${e.message}`, "error"));
    panel.dataset.state = "error";
    return false;
  }
}

async function refresh() {
  const results = await Promise.all(VIEWS.map(load));
  const ok = results.every(Boolean);
  const status = document.getElementById("status");
  status.className = "status " + (ok ? "ok" : "error");
  document.getElementById("status-text").textContent = ok ? "live" : "some views unavailable";
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString("en-GB") + (pageZone ? ` · zone ${pageZone}` : "");
  setTimeout(refresh, REFRESH_MS);
}

refresh();

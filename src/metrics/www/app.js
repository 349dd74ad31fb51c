// plantwatch dashboard: polls the metrics REST shim while the tab is visible
// and draws the answers with inline SVG and tables: the five views, the
// pipeline panel, and the history of a selected zone and device (minute
// buckets of /v1/zones/{zone}/readings and /v1/devices/{id}/readings, the
// device's recent alerts). Each panel's data-state is
// idle | loading | ok | empty | error. Text from the API is always inserted as
// text (textContent, text nodes, attributes), never parsed as HTML.
"use strict";

const REFRESH_MS = 5000;
const HISTORY_EVERY = 3; // the history panels refresh every 3rd poll (15 s)
const SVG_NS = "http://www.w3.org/2000/svg";
const MINUTE = 60000;
const HOUR = 3600000;
const DAY = 86400000;
const WINDOWS = { "24h": { ms: DAY, hours: 24, label: "last 24 h" }, "7d": { ms: 7 * DAY, hours: 168, label: "last 7 days" } };
const DEVICE_ALERTS = 20;
const pageZone = new URLSearchParams(location.search).get("zone") || "";

// What the user selected; mirrored in the location hash so a reload keeps it.
const selection = readSelection();

const VIEWS = [
  { panel: "panel-temperature", path: "/v1/metrics/temperature/zones", query: () => ({ window_hours: WINDOWS[selection.window].hours }), render: renderTemperature },
  { panel: "panel-alerts", path: "/v1/metrics/alerts/breakdown", query: () => ({ window_hours: 168, top: 6 }), render: renderAlerts },
  { panel: "panel-activity", path: "/v1/metrics/activity/trend", query: () => ({}), render: renderActivity },
  { panel: "panel-firmware", path: "/v1/metrics/firmware/status", query: () => ({}), render: renderFirmware },
  { panel: "panel-health", path: "/v1/metrics/devices/health", query: () => ({ silent_minutes: 10, limit: 100 }), render: renderHealth },
  { panel: "panel-pipeline", path: "/v1/metrics/pipeline", query: () => ({}), render: renderPipeline, unfiltered: true },
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

// text shortened to max characters (code points: never half of a surrogate
// pair) with "…"; long tells whether it was shortened.
function shorten(text, max) {
  const chars = Array.from(text);
  return chars.length > max ? { shown: chars.slice(0, max - 1).join("") + "…", long: true } : { shown: text, long: false };
}

// An SVG label shortened to max characters; the whole text stays in a tooltip.
function shortLabel(tag, attrs, text, max) {
  const s = shorten(text, max);
  const n = svg(tag, attrs, s.shown);
  if (s.long) n.append(svg("title", {}, text));
  return n;
}

// The same for HTML: the whole text in the title attribute.
function shortText(tag, attrs, text, max) {
  const s = shorten(text, max);
  const n = el(tag, attrs, s.shown);
  if (s.long) n.title = text;
  return n;
}

function fmtInt(n) { return Number(n).toLocaleString("en-US"); }
function fmtTemp(c) { return `${Number(c).toFixed(1)} °C`; }
function fmtPct(x) { return `${(x * 100).toFixed(x >= 0.1 ? 0 : 1)} %`; }
function fmtUnit(u) { return u === "C" ? "°C" : u === "F" ? "°F" : u; }
function fmtValue(v, unit) { return `${Number(v).toFixed(Math.abs(v) >= 1000 ? 0 : 1)}${unit ? " " + fmtUnit(unit) : ""}`; }

function fmtDuration(sec) {
  sec = Math.max(0, Math.round(sec));
  if (sec < 90) return `${sec} s`;
  if (sec < 5400) return `${Math.round(sec / 60)} min`;
  if (sec < 172800) return `${(sec / 3600).toFixed(1)} h`;
  return `${(sec / 86400).toFixed(1)} d`;
}

function fmtMs(ms) {
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 10000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

function fmtUtc(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—";
}

// Local time of the browser: "14:05", or with the date "Tue 3, 14:05".
function fmtLocal(ms, withDate) {
  const d = new Date(ms);
  const hm = d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  return withDate ? `${fmtLocalDay(ms)}, ${hm}` : hm;
}

// The local day of ms: "Tue 3".
function fmtLocalDay(ms) {
  const d = new Date(ms);
  return `${d.toLocaleDateString("en-US", { weekday: "short" })} ${d.getDate()}`;
}

// The browser's offset from UTC at ms, as "UTC+01:00".
function utcOffset(ms) {
  const off = -new Date(ms).getTimezoneOffset();
  const a = Math.abs(off);
  return `UTC${off < 0 ? "−" : "+"}${String(Math.floor(a / 60)).padStart(2, "0")}:${String(a % 60).padStart(2, "0")}`;
}

// "1m", "10m", "3h", "1d": the step of step_ms. (The REST answer's "step"
// is not used: the RFC 3339 twin of step_ms has the same name.)
function stepLabel(ms) {
  if (!ms) return "raw";
  if (ms % DAY === 0) return `${ms / DAY}d`;
  if (ms % HOUR === 0) return `${ms / HOUR}h`;
  return `${Math.round(ms / MINUTE)}m`;
}

function slug(s) { return String(s).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "unknown"; }

function message(text, cls) { return el("div", { class: "msg " + (cls || "") }, text); }

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// The drawing width of a panel's body in CSS pixels (charts are drawn 1:1 so
// their text stays readable on a phone).
function bodyWidth(panelId, fallback) {
  const b = document.querySelector(`#${panelId} [data-body]`);
  const w = b ? b.clientWidth : 0;
  return Math.max(300, Math.round(w || fallback));
}

function narrow(W) { return W < 560; }

// ---- views ----------------------------------------------------------------

function renderTemperature(body, d, meta) {
  meta.textContent = `${WINDOWS[selection.window].label} · hourly buckets · click a zone`;
  if (!d.zones.length) {
    body.append(message("No temperature readings in this window."));
    return "empty";
  }
  let lo = Math.min(...d.zones.map(z => z.min_c));
  let hi = Math.max(...d.zones.map(z => z.max_c));
  const pad = Math.max(1, (hi - lo) * 0.08);
  lo = Math.floor(lo - pad); hi = Math.ceil(hi + pad);
  const W = bodyWidth("panel-temperature", 760), small = narrow(W);
  const left = small ? 92 : 130, right = small ? 70 : 190, rowH = small ? 44 : 34, top = 22;
  const H = top + d.zones.length * rowH + 4;
  const x = v => left + (v - lo) / (hi - lo) * (W - left - right);
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "temperature by zone" });
  const step = niceMax((hi - lo) / (small ? 3 : 5));
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) {
    s.append(svg("line", { x1: x(t), x2: x(t), y1: top - 4, y2: H, class: "gridline" }));
    s.append(svg("text", { x: x(t), y: 12, "text-anchor": "middle", class: "muted" }, `${+t.toFixed(1)}°`));
  }
  d.zones.forEach((z, i) => {
    const y = top + i * rowH + rowH / 2;
    const g = svg("g", { class: "zone-row" + (z.zone === selection.zone ? " selected" : ""), "data-zone": z.zone, tabindex: 0, role: "button" });
    g.append(svg("rect", { x: 0, y: y - rowH / 2, width: W, height: rowH, class: "hit" }));
    g.append(shortLabel("text", { x: 0, y: y + 4 }, z.zone, small ? 12 : 18));
    g.append(svg("rect", { x: x(z.min_c), y: y - 6, width: Math.max(2, x(z.max_c) - x(z.min_c)), height: 12, rx: 6, fill: "var(--range)" }));
    g.append(svg("circle", { cx: x(z.avg_c), cy: y, r: 6, fill: "var(--accent)", stroke: "#0f1419", "stroke-width": 2 }));
    g.append(svg("text", { x: W - right + 14, y: small ? y - 3 : y + 4, "font-weight": 600 }, fmtTemp(z.avg_c)));
    g.append(svg("text", { x: small ? W - right + 14 : W - right + 82, y: small ? y + 13 : y + 4, class: "muted" },
      small ? `n=${fmtInt(z.count)}` : `${z.min_c.toFixed(1)}–${z.max_c.toFixed(1)} · n=${fmtInt(z.count)}`));
    g.addEventListener("click", () => selectZone(z.zone));
    g.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); selectZone(z.zone); } });
    s.append(g);
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
    kpis.append(el("div", { class: "kpi " + slug(s.severity) }, el("div", { class: "v" }, fmtInt(s.count)), el("div", { class: "l" }, s.severity)));
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
  const W = bodyWidth("panel-activity", 760), small = narrow(W);
  const rowH = 74, left = small ? 84 : 110, labelH = 18;
  const colW = (W - left) / d.days.length;
  const H = series.length * rowH + labelH;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "activity per day" });
  series.forEach((ser, r) => {
    const y0 = r * rowH;
    const total = d.days.reduce((a, day) => a + day[ser.key], 0);
    const max = Math.max(1, ...d.days.map(day => day[ser.key]));
    s.append(svg("text", { x: 0, y: y0 + 30, "font-weight": 600 }, small && ser.key === "active_devices" ? "Devices" : ser.name));
    s.append(svg("text", { x: 0, y: y0 + 48, class: "muted" }, ser.key === "active_devices" ? `peak ${fmtInt(max === 1 && total === 0 ? 0 : max)}` : `Σ ${fmtInt(total)}`));
    s.append(svg("line", { x1: left, x2: W, y1: y0 + rowH - 10, y2: y0 + rowH - 10, class: "gridline" }));
    d.days.forEach((day, i) => {
      const v = day[ser.key];
      const h = (v / max) * (rowH - 30);
      const bx = left + i * colW + colW * 0.18;
      s.append(svg("rect", { x: bx, y: y0 + rowH - 10 - h, width: colW * 0.64, height: Math.max(v ? 2 : 0, h), rx: 3, fill: ser.color, opacity: 0.9 }));
      s.append(svg("text", { x: bx + colW * 0.32, y: y0 + rowH - 14 - h, "text-anchor": "middle", class: "muted", "font-size": small ? 10 : 11 }, fmtInt(v)));
    });
  });
  d.days.forEach((day, i) => {
    const dt = new Date(day.day + "T00:00:00Z");
    const label = small ? dt.toLocaleDateString("en-US", { day: "numeric", timeZone: "UTC" })
      : dt.toLocaleDateString("en-US", { weekday: "short", day: "numeric", timeZone: "UTC" });
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
      el("td", { class: "num" }, fmtDuration(x.silent_seconds)), el("td", { class: "bar" }, bar), el("td", { class: "seen" }, fmtUtc(x.last_seen_ms))));
  }
  body.append(el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "device"), el("th", {}, "zone"),
    el("th", { class: "num" }, "silent for"), el("th", { class: "bar" }, ""), el("th", { class: "seen" }, "last seen"))), tbody)));
  if (d.silent_devices > shown.length) body.append(el("div", { class: "meta" }, `+ ${fmtInt(d.silent_devices - shown.length)} more`));
  return "ok";
}

// ---- pipeline -----------------------------------------------------------------

function verdictBadge(verdict) {
  return el("span", { class: "verdict v-" + slug(verdict) }, verdict || "unknown");
}

function renderPipeline(body, d, meta) {
  meta.textContent = `as of ${fmtLocal(d.as_of_ms)} · latency over ${d.window_minutes} min`;
  body.append(el("div", { class: "pipeline-verdict v-" + slug(d.in_sync ? "in sync" : d.verdict), id: "pipeline-verdict" },
    el("span", { class: "dot" }), d.verdict || (d.in_sync ? "in sync" : "not in sync")));
  body.append(el("div", { class: "kpis" },
    el("div", { class: "kpi total", id: "pipeline-p50" }, el("div", { class: "v" }, fmtMs(d.latency_p50_ms)), el("div", { class: "l" }, "latency p50")),
    el("div", { class: "kpi warning", id: "pipeline-p99" }, el("div", { class: "v" }, fmtMs(d.latency_p99_ms)), el("div", { class: "l" }, "latency p99")),
    el("div", { class: "kpi info" }, el("div", { class: "v" }, fmtInt(d.latency_samples)), el("div", { class: "l" }, "samples"))));
  if (!d.partitions.length) {
    body.append(message("No partitions known yet."));
    return "empty";
  }
  const tbody = el("tbody");
  for (const p of d.partitions) {
    tbody.append(el("tr", { "data-topic": p.topic, "data-partition": p.partition, "data-verdict": slug(p.verdict) },
      el("td", { class: "topic" }, shortText("span", {}, p.topic, 24), el("span", { class: "muted" }, ` · ${p.partition}`)),
      el("td", { class: "num" }, fmtInt(p.accepted)),
      el("td", { class: "num" }, fmtInt(p.counted)),
      el("td", { class: "num" + (p.lag > 0 ? " hot" : "") }, fmtInt(p.lag)),
      el("td", { class: "num wide-only" }, fmtInt(p.dead_letters)),
      el("td", { class: "wide-only", title: fmtUtc(p.last_stored_ms) }, p.last_stored_ms ? fmtDuration((d.as_of_ms - p.last_stored_ms) / 1000) + " ago" : "never"),
      el("td", {}, verdictBadge(p.verdict),
        p.stalled_since_ms ? el("span", { class: "muted" }, ` since ${fmtLocal(p.stalled_since_ms, true)}`) : "")));
  }
  body.append(el("div", { class: "scroll" }, el("table", { class: "pipeline" }, el("thead", {}, el("tr", {},
    el("th", {}, "partition"), el("th", { class: "num" }, "accepted"), el("th", { class: "num" }, "counted"),
    el("th", { class: "num" }, "lag"), el("th", { class: "num wide-only" }, "dead letters"), el("th", { class: "wide-only" }, "last stored"),
    el("th", {}, "verdict"))), tbody)));
  const dlq = el("ul", { class: "reasons", id: "pipeline-dlq" });
  for (const r of d.dead_letters) {
    dlq.append(el("li", { "data-reason": r.reason }, shortText("span", { class: "reason" }, r.reason, 32), el("b", {}, fmtInt(r.count))));
  }
  body.append(el("div", { class: "summary" }, "Dead letters by reason"),
    d.dead_letters.length ? dlq : message("No dead letters."));
  return "ok";
}

// ---- history charts -----------------------------------------------------------

// Ticks in the browser's local time between from and to, at most max of them:
// whole local hours (1, 2, 3, 6, 12) or days.
function timeTicks(from, to, max) {
  const span = to - from;
  const hours = [1, 2, 3, 6, 12].find(h => span / (h * HOUR) <= max);
  const ticks = [];
  const t = new Date(from);
  if (hours) {
    t.setMinutes(0, 0, 0);
    while (t.getTime() < from || t.getHours() % hours) t.setHours(t.getHours() + 1);
    for (; t.getTime() < to; t.setHours(t.getHours() + hours)) ticks.push({ ms: t.getTime(), label: t.getHours() === 0 ? fmtLocalDay(t.getTime()) : fmtLocal(t.getTime()) });
  } else {
    const days = [1, 2, 7].find(n => span / (n * DAY) <= max) || 14;
    t.setHours(0, 0, 0, 0);
    while (t.getTime() < from) t.setDate(t.getDate() + 1);
    for (; t.getTime() < to; t.setDate(t.getDate() + days)) ticks.push({ ms: t.getTime(), label: fmtLocalDay(t.getTime()) });
  }
  return ticks;
}

// Runs of buckets drawn as one line: a gap of more than 3 steps breaks it.
function runs(buckets, stepMs) {
  const out = [];
  let cur = [];
  for (const b of buckets) {
    if (cur.length && b.start_ms - cur[cur.length - 1].start_ms > 3 * stepMs) { out.push(cur); cur = []; }
    cur.push(b);
  }
  if (cur.length) out.push(cur);
  return out;
}

// The chart of one ReadingHistory: avg line, min–max band, a marker per
// bucket, axes in the history's unit and local time, a tooltip on hover.
function historyChart(h, W, name) {
  const small = narrow(W);
  const H = small ? 220 : 260, left = small ? 44 : 56, right = 12, top = 22, bottom = 34;
  const unit = fmtUnit(h.unit);
  const stepMs = h.step_ms || MINUTE;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "history", role: "img",
    "aria-label": `${name}: ${h.type} in ${unit}`, "data-buckets": h.buckets.length, "data-step-ms": stepMs, "data-count": h.count });
  let lo = Math.min(...h.buckets.map(b => b.min)), hi = Math.max(...h.buckets.map(b => b.max));
  const pad = Math.max(0.5, (hi - lo) * 0.1);
  const ystep = niceMax((hi - lo + 2 * pad) / 4);
  lo = Math.floor((lo - pad) / ystep) * ystep; hi = Math.ceil((hi + pad) / ystep) * ystep;
  const x = ms => left + (ms - h.from_ms) / (h.to_ms - h.from_ms) * (W - left - right);
  const y = v => top + (hi - v) / (hi - lo) * (H - top - bottom);
  const mid = b => x(b.start_ms + stepMs / 2);
  for (let v = lo; v <= hi + ystep / 2; v += ystep) {
    s.append(svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), class: "gridline" }));
    s.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "muted tick-y" }, +v.toFixed(2)));
  }
  s.append(svg("text", { x: 0, y: 12, class: "axis-unit" }, `${h.type} (${unit})`));
  for (const t of timeTicks(h.from_ms, h.to_ms, Math.floor((W - left - right) / (small ? 58 : 76)))) {
    s.append(svg("line", { x1: x(t.ms), x2: x(t.ms), y1: top, y2: H - bottom + 4, class: "gridline faint" }));
    s.append(svg("text", { x: x(t.ms), y: H - bottom + 17, "text-anchor": "middle", class: "muted tick-x" }, t.label));
  }
  s.append(svg("text", { x: W - right, y: H - 2, "text-anchor": "end", class: "muted axis-time" }, `local time (${utcOffset(h.to_ms)}) · ${stepLabel(h.step_ms)} buckets`));
  for (const run of runs(h.buckets, stepMs)) {
    const upper = run.map(b => `${mid(b).toFixed(1)},${y(b.max).toFixed(1)}`);
    const lower = run.map(b => `${mid(b).toFixed(1)},${y(b.min).toFixed(1)}`).reverse();
    s.append(svg("path", { d: `M${upper.join("L")}L${lower.join("L")}Z`, class: "band" }));
    s.append(svg("path", { d: "M" + run.map(b => `${mid(b).toFixed(1)},${y(b.avg).toFixed(1)}`).join("L"), class: "avg" }));
  }
  const r = h.buckets.length > 300 ? 1.2 : h.buckets.length > 60 ? 2 : 3;
  for (const b of h.buckets) s.append(svg("circle", { cx: mid(b).toFixed(1), cy: y(b.avg).toFixed(1), r, class: "pt", "data-start-ms": b.start_ms }));
  const guide = svg("line", { x1: 0, x2: 0, y1: top, y2: H - bottom, class: "guide", visibility: "hidden" });
  const overlay = svg("rect", { x: left, y: top, width: W - left - right, height: H - top - bottom, class: "overlay" });
  s.append(guide, overlay);
  const xs = h.buckets.map(mid);
  const show = e => {
    const box = s.getBoundingClientRect();
    const px = (e.clientX - box.left) * (W / box.width);
    let i = 0;
    for (let j = 1; j < xs.length; j++) if (Math.abs(xs[j] - px) < Math.abs(xs[i] - px)) i = j;
    const b = h.buckets[i];
    guide.setAttribute("x1", xs[i]); guide.setAttribute("x2", xs[i]); guide.setAttribute("visibility", "visible");
    showTooltip(e.clientX, e.clientY, [
      `${fmtLocal(b.start_ms, true)} – ${fmtLocal(b.start_ms + stepMs)}`,
      `avg ${fmtValue(b.avg, h.unit)}`,
      `min ${fmtValue(b.min, h.unit)} · max ${fmtValue(b.max, h.unit)}`,
      `${fmtInt(b.count)} reading${b.count === 1 ? "" : "s"}`]);
  };
  overlay.addEventListener("pointermove", show);
  overlay.addEventListener("pointerdown", show);
  overlay.addEventListener("pointerleave", () => { guide.setAttribute("visibility", "hidden"); hideTooltip(); });
  return s;
}

function showTooltip(cx, cy, lines) {
  const tip = document.getElementById("tooltip");
  tip.replaceChildren(...lines.map((l, i) => el("div", { class: i ? "" : "head" }, l)));
  tip.hidden = false;
  const w = tip.offsetWidth, h = tip.offsetHeight;
  tip.style.left = `${Math.max(4, Math.min(window.innerWidth - w - 4, cx + 12))}px`;
  tip.style.top = `${Math.max(4, cy - h - 12)}px`;
}

function hideTooltip() { document.getElementById("tooltip").hidden = true; }

function historySummary(h) {
  if (!h.buckets.length) return "";
  const sum = h.buckets.reduce((a, b) => a + b.avg * b.count, 0);
  const min = Math.min(...h.buckets.map(b => b.min)), max = Math.max(...h.buckets.map(b => b.max));
  return `avg ${fmtValue(sum / h.count, h.unit)} · min ${fmtValue(min, h.unit)} · max ${fmtValue(max, h.unit)} · ${fmtInt(h.count)} readings`;
}

function chartBlock(panelId, h, name) {
  if (!h.buckets.length) return message(`No ${h.type} readings of ${name} in this window.`);
  return el("div", { class: "chart" }, el("div", { class: "summary" }, historySummary(h)),
    historyChart(h, bodyWidth(panelId, 900), name),
    el("div", { class: "legend" },
      el("span", {}, el("i", { style: "background:var(--accent)" }), "average"),
      el("span", {}, el("i", { style: "background:var(--range)" }), "min – max")));
}

// d: {readings: ZoneReadingsResponse, devices: [{device_id, silent_seconds}], total}
function renderZone(body, d, meta) {
  const h = d.readings.history;
  meta.textContent = `${WINDOWS[selection.window].label} · ${stepLabel(h.step_ms)} buckets`;
  body.append(el("div", { class: "selected-name" }, "zone ", shortText("b", { id: "zone-name" }, d.readings.zone, 48)));
  body.append(chartBlock("panel-zone", h, d.readings.zone));
  const list = el("ul", { class: "devices", id: "zone-devices" });
  for (const dev of d.devices) {
    const b = el("button", { type: "button", class: "device", "data-device": dev.device_id, "aria-pressed": String(dev.device_id === selection.device) },
      shortText("span", { class: "name" }, dev.device_id, 28),
      el("span", { class: "muted" }, dev.silent_seconds === null ? "reporting" : `silent ${fmtDuration(dev.silent_seconds)}`));
    b.addEventListener("click", () => selectDevice(dev.device_id));
    list.append(el("li", {}, b));
  }
  body.append(el("div", { class: "summary" }, `Devices (${fmtInt(d.devices.length)}${d.total > d.devices.length ? ` of ${fmtInt(d.total)}` : ""}) · click one for its history`),
    d.devices.length ? list : message("No devices known in this zone."));
  return h.buckets.length || d.devices.length ? "ok" : "empty";
}

// d: {readings: DeviceReadingsResponse, alerts: DeviceAlertsResponse}
function renderDevice(body, d, meta) {
  const h = d.readings.history;
  meta.textContent = `${WINDOWS[selection.window].label} · ${stepLabel(h.step_ms)} buckets`;
  body.append(el("div", { class: "selected-name" }, "device ", shortText("b", { id: "device-name" }, d.readings.device_id, 64)));
  body.append(chartBlock("panel-device", h, d.readings.device_id));
  const alerts = d.alerts.page.alerts;
  body.append(el("div", { class: "summary" }, alerts.length ? `Recent alerts (newest first, at most ${DEVICE_ALERTS})` : "Recent alerts"));
  if (!alerts.length) {
    body.append(message("No alerts of this device in this window.", "alerts-none"));
  } else {
    const list = el("ol", { class: "alerts", id: "device-alerts" });
    for (const a of alerts) {
      list.append(el("li", { "data-severity": slug(a.severity), "data-token": a.token },
        el("span", { class: "when", title: fmtUtc(a.ts_ms) }, fmtLocal(a.ts_ms, true)),
        el("span", { class: "sev " + slug(a.severity) }, a.severity),
        shortText("span", { class: "code" }, a.code, 32),
        shortText("span", { class: "text" }, a.message, 120)));
    }
    body.append(list);
  }
  return h.buckets.length || alerts.length ? "ok" : "empty";
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

// ---- requests -------------------------------------------------------------------

function url(path, query) {
  const q = new URLSearchParams();
  for (const [k, val] of Object.entries(query || {})) if (val !== undefined && val !== "") q.set(k, val);
  const qs = q.toString();
  return qs ? `${path}?${qs}` : path;
}

// The JSON answer of a GET, or an Error with the API's message.
async function getJson(u) {
  const used = currentKey();
  const r = await fetch(u, { cache: "no-store", headers: used ? { apikey: used } : {} });
  if (r.status === 401 || r.status === 403) {
    askForKey(used);
    throw new Error(r.status === 401 ? "a read key is needed" : "this key may not read analytics");
  }
  if (r.status === 429) throw new Error("too many requests; retrying shortly");
  let d;
  try {
    d = await r.json();
  } catch (e) {
    throw new Error(`HTTP ${r.status}`);
  }
  if (!r.ok) throw new Error(d && d.error ? d.error.message : d && d.message ? d.message : `HTTP ${r.status}`);
  return d;
}

// The window [from, to) of the history panels: to is the next whole minute,
// so answers within one minute ask the same question.
function historyWindow() {
  const to = Math.floor(Date.now() / MINUTE) * MINUTE + MINUTE;
  return { from: String(to - WINDOWS[selection.window].ms), to: String(to) };
}

const seq = {};
const lastPaint = {};

// Draws d into a panel with render (also again on resize); a render of an
// older request than the last one started for the panel is dropped.
function paint(panelId, render, d, mine) {
  if (mine !== undefined && mine !== seq[panelId]) return;
  const panel = document.getElementById(panelId);
  const body = panel.querySelector("[data-body]");
  const fresh = document.createElement("div");
  const state = render(fresh, d, panel.querySelector("[data-meta]"));
  body.replaceChildren(...fresh.childNodes);
  panel.dataset.state = state;
  lastPaint[panelId] = { render, d, width: body.clientWidth };
}

function paintError(panelId, e, mine) {
  if (mine !== undefined && mine !== seq[panelId]) return;
  const panel = document.getElementById(panelId);
  panel.querySelector("[data-body]").replaceChildren(message(`Unavailable: ${e.message}`, "error"));
  panel.dataset.state = "error";
  delete lastPaint[panelId];
}

function paintIdle(panelId, text, metaText) {
  seq[panelId] = (seq[panelId] || 0) + 1;
  const panel = document.getElementById(panelId);
  panel.querySelector("[data-body]").replaceChildren(message(text));
  panel.querySelector("[data-meta]").textContent = metaText;
  panel.dataset.state = "idle";
  delete lastPaint[panelId];
}

async function load(v) {
  const mine = seq[v.panel] = (seq[v.panel] || 0) + 1;
  const q = v.query();
  if (pageZone && !v.unfiltered) q.zone = pageZone;
  try {
    paint(v.panel, v.render, await getJson(url(v.path, q)), mine);
    return true;
  } catch (e) {
    paintError(v.panel, e, mine);
    return false;
  }
}

// The devices of a zone, from what the views already answer: the zone's
// devices silent for 15 min or more (device health) and those with a
// temperature reading in the last 20 min (the zone's raw readings).
async function zoneDevices(zone) {
  const [health, raw] = await Promise.allSettled([
    getJson(url("/v1/metrics/devices/health", { silent_minutes: 15, limit: 1000, zone })),
    getJson(url(`/v1/zones/${encodeURIComponent(zone)}/readings`, { type: "temperature", step: "raw", from: String(Date.now() - 20 * MINUTE), limit: 1000 })),
  ]);
  if (health.status === "rejected" && raw.status === "rejected") throw health.reason;
  const seen = new Map();
  if (raw.status === "fulfilled") for (const p of raw.value.history.points) seen.set(p.device_id, null);
  if (health.status === "fulfilled") for (const s of health.value.silent) if (!seen.has(s.device_id)) seen.set(s.device_id, s.silent_seconds);
  const devices = [...seen].map(([device_id, silent_seconds]) => ({ device_id, silent_seconds }))
    .sort((a, b) => (a.device_id < b.device_id ? -1 : a.device_id > b.device_id ? 1 : 0));
  return { devices, total: health.status === "fulfilled" ? health.value.total_devices : devices.length };
}

async function loadZone() {
  const zone = selection.zone;
  if (!zone) return true;
  const mine = seq["panel-zone"] = (seq["panel-zone"] || 0) + 1;
  try {
    const w = historyWindow();
    const [readings, devs] = await Promise.all([
      getJson(url(`/v1/zones/${encodeURIComponent(zone)}/readings`, { type: "temperature", from: w.from, to: w.to, step: "auto" })),
      zoneDevices(zone)]);
    paint("panel-zone", renderZone, { readings, devices: devs.devices, total: devs.total }, mine);
    return true;
  } catch (e) {
    paintError("panel-zone", e, mine);
    return false;
  }
}

async function loadDevice() {
  const device = selection.device;
  if (!device) return true;
  const mine = seq["panel-device"] = (seq["panel-device"] || 0) + 1;
  try {
    const w = historyWindow();
    const base = `/v1/devices/${encodeURIComponent(device)}`;
    const [readings, alerts] = await Promise.all([
      getJson(url(`${base}/readings`, { type: "temperature", from: w.from, to: w.to, step: "auto" })),
      getJson(url(`${base}/alerts`, { from: w.from, to: w.to, limit: DEVICE_ALERTS }))]);
    paint("panel-device", renderDevice, { readings, alerts }, mine);
    return true;
  } catch (e) {
    paintError("panel-device", e, mine);
    return false;
  }
}

// ---- selection ----------------------------------------------------------------

function readSelection() {
  const h = new URLSearchParams(location.hash.slice(1));
  const w = h.get("window");
  return { window: WINDOWS[w] ? w : "24h", zone: h.get("zone") || "", device: h.get("device") || "" };
}

function writeSelection() {
  const h = new URLSearchParams();
  if (selection.window !== "24h") h.set("window", selection.window);
  if (selection.zone) h.set("zone", selection.zone);
  if (selection.device) h.set("device", selection.device);
  history.replaceState(null, "", h.toString() ? "#" + h.toString() : location.pathname + location.search);
}

function markSelected() {
  for (const g of document.querySelectorAll("#panel-temperature .zone-row")) g.classList.toggle("selected", g.dataset.zone === selection.zone);
  for (const b of document.querySelectorAll("#zone-devices .device")) b.setAttribute("aria-pressed", String(b.dataset.device === selection.device));
  for (const b of document.querySelectorAll("#window button")) b.setAttribute("aria-pressed", String(b.dataset.window === selection.window));
}

function loadingPanel(panelId, text) {
  const panel = document.getElementById(panelId);
  panel.dataset.state = "loading";
  panel.querySelector("[data-body]").replaceChildren(message(text));
}

function selectZone(zone) {
  if (zone !== selection.zone) {
    selection.zone = zone;
    selection.device = "";
    paintIdle("panel-device", "Click one of the zone's devices.", "no device selected");
  }
  writeSelection();
  markSelected();
  loadingPanel("panel-zone", "loading…");
  document.getElementById("panel-zone").scrollIntoView({ behavior: "smooth", block: "nearest" });
  loadZone();
}

function selectDevice(device) {
  selection.device = device;
  writeSelection();
  markSelected();
  loadingPanel("panel-device", "loading…");
  document.getElementById("panel-device").scrollIntoView({ behavior: "smooth", block: "nearest" });
  loadDevice();
}

function selectWindow(w) {
  if (!WINDOWS[w] || w === selection.window) return;
  selection.window = w;
  writeSelection();
  markSelected();
  load(VIEWS[0]);
  if (selection.zone) { loadingPanel("panel-zone", "loading…"); loadZone(); }
  if (selection.device) { loadingPanel("panel-device", "loading…"); loadDevice(); }
}

// ---- polling ------------------------------------------------------------------
// One poll every REFRESH_MS while the tab is visible; a hidden tab polls
// nothing and polls at once when it is shown again.
let timer = 0;
let polls = 0;

async function refresh() {
  clearTimeout(timer);
  timer = 0;
  const jobs = VIEWS.map(load);
  if (polls++ % HISTORY_EVERY === 0) jobs.push(loadZone(), loadDevice());
  const ok = (await Promise.all(jobs)).every(Boolean);
  const status = document.getElementById("status");
  status.className = "status " + (ok ? "ok" : "error");
  document.getElementById("status-text").textContent = ok ? "live" : "some views unavailable";
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString("en-GB") + (pageZone ? ` · zone ${pageZone}` : "");
  if (!document.hidden && !timer) timer = setTimeout(refresh, REFRESH_MS);
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    clearTimeout(timer);
    timer = 0;
    document.getElementById("status-text").textContent = "paused (tab hidden)";
  } else if (!timer) {
    polls = 0;
    refresh();
  }
});

// The renders that draw at their panel's width.
const SIZED = new Set([renderTemperature, renderActivity, renderZone, renderDevice]);

// Charts are drawn at their panel's width: a change of the grid's width
// (window resized, phone rotated) draws them again from the last answers.
let resizeTimer = 0;
let gridWidth = 0;
new ResizeObserver(entries => {
  const w = Math.round(entries[0].contentRect.width);
  const first = !gridWidth;
  if (w === gridWidth) return;
  gridWidth = w;
  if (first) return;
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const [panelId, p] of Object.entries(lastPaint)) {
      const body = document.querySelector(`#${panelId} [data-body]`);
      if (SIZED.has(p.render) && body.clientWidth !== p.width) paint(panelId, p.render, p.d);
    }
    markSelected();
  }, 100);
}).observe(document.querySelector("main.grid"));

for (const b of document.querySelectorAll("#window button")) b.addEventListener("click", () => selectWindow(b.dataset.window));
markSelected();
if (selection.zone) loadingPanel("panel-zone", "loading…");
if (selection.device) loadingPanel("panel-device", "loading…");
refresh();

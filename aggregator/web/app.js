// The global view: the fleet registry, usage per cluster and per workspace,
// and a query box. It reads the service's public API only.
"use strict";

const REFRESH_MS = 15000;
const API = "api/v1/";

// The Prometheus envelope: data on success, the error text otherwise, and any
// warnings (a member down, a push cluster gone quiet) collected for the banner.
async function api(path, params, warnings) {
  const url = API + path + (params ? "?" + new URLSearchParams(params) : "");
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" } });
  } catch (err) {
    throw new Error(`${path}: ${err.message}`);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`${path}: HTTP ${response.status} with a body that is not JSON`);
  }
  if (body.status !== "success") throw new Error(body.error || `${path}: HTTP ${response.status}`);
  if (warnings && body.warnings) warnings.push(...body.warnings);
  return body.data;
}

async function instant(query, warnings) {
  const data = await api("query", { query }, warnings);
  return data.result;
}

// {labelValue: number} from an instant vector, keyed by `label`.
function byLabel(result, label) {
  const out = {};
  for (const s of result) out[s.metric[label] ?? ""] = Number(s.value[1]);
  return out;
}

function formatBytes(n) {
  if (!isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

function formatNumber(n, digits = 2) {
  if (n === null || n === undefined || !isFinite(n)) return "–";
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
}

// Seconds since the epoch from the registry's times (a number, or RFC 3339 text).
function toSeconds(t) {
  if (t === null || t === undefined || t === "") return null;
  const n = typeof t === "number" ? t : Number(t);
  if (isFinite(n)) return n;
  const ms = Date.parse(t);
  return isFinite(ms) ? ms / 1000 : null;
}

function formatAge(seconds) {
  if (seconds === null) return "never";
  const age = Math.max(0, Date.now() / 1000 - seconds);
  if (age < 90) return `${Math.round(age)}s ago`;
  if (age < 5400) return `${Math.round(age / 60)}m ago`;
  if (age < 172800) return `${Math.round(age / 3600)}h ago`;
  return `${Math.round(age / 86400)}d ago`;
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (text instanceof Node) td.appendChild(text);
  else td.textContent = text;
  return td;
}

// "used / total" with a bar, or just "used" when the total is unknown.
function usage(used, total, format) {
  const wrap = document.createElement("div");
  wrap.className = "usage";
  if (used === undefined) {
    wrap.textContent = "no data";
    wrap.classList.add("muted");
    return wrap;
  }
  const label = document.createElement("span");
  label.textContent = total ? `${format(used)} / ${format(total)}` : format(used);
  wrap.appendChild(label);
  if (total) {
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    const pct = Math.min(100, (100 * used) / total);
    fill.style.width = `${pct.toFixed(1)}%`;
    fill.className = pct > 90 ? "hot" : pct > 70 ? "warm" : "";
    bar.appendChild(fill);
    bar.title = `${pct.toFixed(1)}%`;
    wrap.appendChild(bar);
  }
  return wrap;
}

function fillTable(table, rows, columns, emptyText) {
  const body = table.tBodies[0];
  body.replaceChildren();
  if (!rows.length) {
    const tr = body.insertRow();
    tr.appendChild(cell(emptyText, "empty")).colSpan = columns;
    return;
  }
  for (const row of rows) body.appendChild(row);
}

function renderClusters(clusters, use) {
  const rows = clusters.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.cluster = c.name;
    const health = document.createElement("span");
    health.className = c.healthy ? "badge ok" : "badge bad";
    health.textContent = c.healthy ? "healthy" : "unhealthy";
    if (c.last_error) health.title = c.last_error;
    const seen = toSeconds(c.mode === "pull" ? c.last_success_time : c.last_sample_time);
    const fresh = cell(formatAge(seen));
    if (c.last_error) {
      const err = document.createElement("div");
      err.className = "error-text";
      err.textContent = c.last_error;
      fresh.appendChild(err);
    }
    tr.append(
      cell(c.name, "name"),
      cell(c.mode),
      cell(health),
      fresh,
      cell(formatNumber(c.active_series, 0), "num"),
      cell(formatNumber(c.samples_per_second, 1), "num"),
      cell(usage(use.cpuUsed[c.name], use.cpuTotal[c.name], (v) => `${formatNumber(v)} cores`), "cpu"),
      cell(usage(use.memUsed[c.name], use.memTotal[c.name], formatBytes), "mem"),
    );
    return tr;
  });
  fillTable(document.getElementById("clusters"), rows, 8, "no clusters yet: configure push or pull clusters, or send remote write");
  const healthy = clusters.filter((c) => c.healthy).length;
  document.getElementById("summary").textContent =
    `${clusters.length} cluster${clusters.length === 1 ? "" : "s"}, ${healthy} healthy`;
}

function renderWorkspaces(cpu, mem) {
  const spaces = new Map();
  const add = (result, key) => {
    for (const s of result) {
      const name = s.metric.workspace;
      if (!spaces.has(name)) spaces.set(name, { cpu: 0, mem: 0, clusters: new Set(), seen: new Set() });
      const w = spaces.get(name);
      w[key] += Number(s.value[1]);
      w.seen.add(key);
      if (s.metric.cluster) w.clusters.add(s.metric.cluster);
    }
  };
  add(cpu, "cpu");
  add(mem, "mem");
  const rows = [...spaces.keys()].sort().map((name) => {
    const w = spaces.get(name);
    const tr = document.createElement("tr");
    tr.dataset.workspace = name;
    tr.append(
      cell(name, "name"),
      cell([...w.clusters].sort().join(", ")),
      cell(w.seen.has("cpu") ? formatNumber(w.cpu, 3) : "–", "num cpu"),
      cell(w.seen.has("mem") ? formatBytes(w.mem) : "–", "num mem"),
    );
    return tr;
  });
  fillTable(document.getElementById("workspaces"), rows, 4,
    "no workspace data: needs container metrics (cAdvisor) and kube_namespace_labels with label_kubesphere_io_workspace");
}

function showWarnings(warnings, errors) {
  const box = document.getElementById("warnings");
  box.replaceChildren();
  const unique = [...new Set(warnings)];
  for (const text of errors) {
    const p = document.createElement("p");
    p.className = "error-text";
    p.textContent = text;
    box.appendChild(p);
  }
  for (const text of unique) {
    const p = document.createElement("p");
    p.textContent = text;
    box.appendChild(p);
  }
  box.hidden = !box.childElementCount;
}

let refreshing = false;

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  const warnings = [];
  const errors = [];
  const safely = (promise, fallback) => promise.catch((err) => { errors.push(err.message); return fallback; });
  try {
    const [clusters, ...fleet] = await Promise.all([
      safely(api("clusters", null, warnings), []),
      ...Object.values(FLEET_QUERIES).map((q) => safely(instant(q, warnings), [])),
    ]);
    const use = {};
    Object.keys(FLEET_QUERIES).forEach((key, i) => { use[key] = byLabel(fleet[i], "cluster"); });
    renderClusters(clusters, use);
    const [cpu, mem] = await Promise.all([
      safely(instant(WORKSPACE_QUERIES.cpu, warnings), []),
      safely(instant(WORKSPACE_QUERIES.mem, warnings), []),
    ]);
    renderWorkspaces(cpu, mem);
    showWarnings(warnings, errors);
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } finally {
    refreshing = false;
  }
}

async function runQuery(event) {
  if (event) event.preventDefault();
  const query = document.getElementById("query").value.trim();
  const status = document.getElementById("query-status");
  const plot = document.getElementById("plot");
  const legend = document.getElementById("legend");
  if (!query) return;
  const span = Number(document.getElementById("range").value);
  const end = Math.floor(Date.now() / 1000);
  const start = end - span;
  const step = Math.max(1, Math.round(span / 240));
  status.className = "status";
  status.textContent = "running…";
  const warnings = [];
  const params = new URLSearchParams(location.hash.slice(1));
  params.set("q", query);
  history.replaceState(null, "", "#" + params);
  try {
    const began = performance.now();
    const data = await api("query_range", { query, start, end, step }, warnings);
    const ms = Math.round(performance.now() - began);
    drawPlot(plot, legend, data.result, start, end, step);
    status.textContent = `${data.result.length} series, ${ms} ms` + (warnings.length ? ` — ${warnings.join("; ")}` : "");
    if (warnings.length) status.classList.add("warn");
  } catch (err) {
    plot.replaceChildren();
    legend.replaceChildren();
    status.textContent = err.message;
    status.classList.add("error-text");
  }
}

function start() {
  document.getElementById("query-form").addEventListener("submit", runQuery);
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("q");
  if (fromHash) {
    document.getElementById("query").value = fromHash;
    runQuery();
  }
  refresh();
  setInterval(() => {
    if (document.getElementById("live").checked && !document.hidden) refresh();
  }, REFRESH_MS);
}

start();

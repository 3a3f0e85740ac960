// A small SVG line plot of a range-query matrix: no library, no build step.
"use strict";

const PALETTE = [
  "#3b7dd8", "#e0703a", "#3aa55d", "#c94f7c", "#8a63d2", "#c9a227",
  "#2aa5a5", "#7a7a7a", "#d2452f", "#5a8f29",
];
const MAX_SERIES = 40;
const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// Round tick steps: 1, 2 or 5 times a power of ten.
function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
}

// Time ticks on whole minutes, hours or days, as a clock reader expects.
const TIME_STEPS = [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

function timeStep(span, count) {
  const wanted = span / Math.max(count, 1);
  return TIME_STEPS.find((s) => s >= wanted) || Math.ceil(wanted / 86400) * 86400;
}

function formatTick(v) {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e9 || a < 1e-3) return v.toExponential(1);
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
  if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k";
  return String(Number(v.toPrecision(3)));
}

function formatTime(seconds, span) {
  const d = new Date(seconds * 1000);
  const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (span <= 86400) return hm;
  return d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + hm;
}

function seriesName(metric) {
  const { __name__: name, ...rest } = metric;
  const pairs = Object.keys(rest).sort().map((k) => `${k}="${rest[k]}"`);
  return (name || "") + (pairs.length || !name ? `{${pairs.join(", ")}}` : "");
}

// Draw `result` (the `data.result` of a matrix answer) into `container`, and its
// legend into `legend`; `start`, `end`, `step` in seconds.
function drawPlot(container, legend, result, start, end, step) {
  container.replaceChildren();
  legend.replaceChildren();
  const series = result.slice(0, MAX_SERIES).map((s) => ({
    name: seriesName(s.metric),
    points: s.values.map(([t, v]) => [Number(t), Number(v)]).filter(([, v]) => isFinite(v)),
  }));
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of series) for (const [, v] of s.points) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
  if (lo > 0 && lo < hi * 0.5) lo = 0;

  const width = Math.max(container.clientWidth || 800, 320);
  const height = 280;
  const pad = { left: 56, right: 12, top: 10, bottom: 26 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const x = (t) => pad.left + ((t - start) / Math.max(end - start, 1)) * innerW;
  const y = (v) => pad.top + innerH - ((v - lo) / (hi - lo)) * innerH;

  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.appendChild(svgEl("title", {}, `${series.length} series`));
  const yStep = niceStep(hi - lo, 5);
  for (let v = Math.ceil(lo / yStep) * yStep; v <= hi + yStep * 1e-9; v += yStep) {
    svg.appendChild(svgEl("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "gridline" }));
    svg.appendChild(svgEl("text", { x: pad.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, formatTick(v)));
  }
  const tStep = timeStep(end - start, Math.max(2, Math.floor(innerW / 110)));
  for (let t = Math.ceil(start / tStep) * tStep; t <= end; t += tStep) {
    svg.appendChild(svgEl("text", { x: x(t), y: height - 8, class: "tick", "text-anchor": "middle" }, formatTime(t, end - start)));
  }
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    // A gap of more than two steps breaks the line, as Grafana does.
    let d = "";
    let prev = null;
    for (const [t, v] of s.points) {
      d += `${prev === null || t - prev > 2 * step ? "M" : "L"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      prev = t;
    }
    const path = svgEl("path", { d, stroke: color, class: "series", "data-series": s.name });
    path.appendChild(svgEl("title", {}, s.name));
    svg.appendChild(path);
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color;
    item.append(swatch, document.createTextNode(s.name));
    legend.appendChild(item);
  });
  if (result.length > MAX_SERIES) {
    const more = document.createElement("li");
    more.textContent = `… and ${result.length - MAX_SERIES} more series not drawn`;
    legend.appendChild(more);
  }
  container.appendChild(svg);
}

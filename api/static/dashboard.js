/* trainlab dashboard: every page's data comes from /api/v1 (the sign-in cookie goes along), so
   the API's authentication guards the dashboard too. Charts: Chart.js, shipped in /static. */
"use strict";

const API = "/api/v1";
const FINAL = ["succeeded", "failed", "cancelled", "pruned"];
const POLL_MS = 2000;
const COLORS = ["#2f6fdf", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#0b7285", "#5c940d", "#862e9c"];
window.trainlabCharts = {}; // key -> Chart, for people (and tests) poking at the page

/* ---------- helpers ---------- */

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fill(id, ...children) {
  const node = document.getElementById(id);
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

function show(id, visible) {
  document.getElementById(id).hidden = !visible;
}

function fmt(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    const abs = Math.abs(value);
    return abs !== 0 && (abs < 1e-3 || abs >= 1e4) ? value.toExponential(3) : value.toFixed(4);
  }
  if (typeof value === "object") {
    if ("mean" in value && "std" in value) return `${fmt(value.mean)} ± ${fmt(value.std)}`;
    return JSON.stringify(value);
  }
  return String(value);
}

function seconds(value) {
  if (value === null || value === undefined) return "";
  return value < 120 ? `${value.toFixed(1)}s` : `${(value / 60).toFixed(1)}m`;
}

function badge(status, text = status) {
  // pruned has its own colour: a pruner's decision, not a failure
  return h("span", { class: `status ${status}` }, text);
}

function problem(message) {
  const node = document.getElementById("problem");
  node.textContent = message;
  node.hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(API + path, { credentials: "same-origin", ...options });
  if (response.status === 401 || response.status === 403) {
    const next = encodeURIComponent(location.pathname + location.search);
    location.assign(`/login?next=${next}&refused=${response.status}`);
    throw new Error("sign in needed");
  }
  if (!response.ok) {
    const body = await response.text();
    throw new Error(`${response.status} on ${path}: ${body.slice(0, 300)}`);
  }
  return response.json();
}

function repeat(step) {
  // run step(); again every POLL_MS while it returns true
  const run = () =>
    step()
      .then((again) => {
        problem("");
        if (again) setTimeout(run, POLL_MS);
      })
      .catch((error) => {
        problem(error.message);
        setTimeout(run, POLL_MS * 3);
      });
  run();
}

function shortName(path) {
  // a dotted path's last two parts (optimizer.lr, validation.loss): the run table's and the
  // parallel coordinates' headers show these, their tooltips all of it
  const parts = path.split(".");
  return parts.length > 2 ? parts.slice(-2).join(".") : path;
}

function scalars(object) {
  return Object.fromEntries(
    Object.entries(object || {}).filter(([, v]) => typeof v === "number" || (v && typeof v === "object" && "mean" in v)),
  );
}

function keyValueCard(title, values) {
  const rows = Object.entries(values).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, fmt(v))));
  return rows.length ? h("div", { class: "card" }, h("h3", {}, title), h("table", {}, rows)) : null;
}

function table(headers, rows) {
  return h(
    "table",
    { class: "grid" },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : h("td", {}, c)))))),
  );
}

/* ---------- charts ---------- */

function legendOptions(count) {
  // a few lines: legend on top; many: a narrow legend on the right, so the plot keeps its height;
  // very many: no legend (the tooltip names each line)
  if (count > MAX_LEGEND) return { display: false };
  if (count > 4) return { display: true, position: "right", labels: { boxWidth: 10, font: { size: 10 } } };
  return { display: true, position: "top" };
}

const MAX_LEGEND = 16;

function lineChart(container, key, title, datasets, xTitle = "epoch", opts = {}) {
  // Create the chart once; later calls swap its data in place (live updates without flicker).
  // opts.logY: a log scale whenever every value is positive (learning rates span decades).
  const data = datasets.map((d, i) => ({
    label: d.label,
    data: d.points,
    borderColor: d.color || COLORS[i % COLORS.length],
    backgroundColor: d.color || COLORS[i % COLORS.length],
    borderDash: d.dash || [],
    showLine: d.line !== false,
    pointRadius: d.radius ?? (d.points.length > 60 ? 0 : 2),
    borderWidth: d.width || 2,
  }));
  const positive = datasets.some((d) => d.points.length) && datasets.every((d) => d.points.every((p) => p.y > 0));
  const yType = (opts.logY && positive) || wideRange(datasets) ? "logarithmic" : "linear";
  const legend = legendOptions(datasets.length);
  let chart = window.trainlabCharts[key];
  if (chart && chart.canvas.isConnected) {
    chart.data.datasets = data;
    chart.options.scales.y.type = yType;
    chart.options.plugins.legend = legend;
    chart.update("none");
  } else {
    const canvas = h("canvas", { "aria-label": title, role: "img" });
    container.append(h("div", { class: datasets.length > 4 ? "chart many" : "chart", "data-chart": key }, canvas));
    chart = new Chart(canvas, {
      type: "line",
      data: { datasets: data },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        normalized: true,
        interaction: { mode: "nearest", intersect: false },
        plugins: { title: { display: true, text: title }, legend },
        scales: {
          x: { type: "linear", title: { display: true, text: xTitle } },
          y: { type: yType, ticks: { callback: axisTick } },
        },
      },
    });
    window.trainlabCharts[key] = chart;
  }
  chart.canvas.parentNode.dataset.points = String(data.reduce((n, d) => n + d.data.length, 0));
  return chart;
}

function wideRange(datasets) {
  // losses that fall by orders of magnitude (a PINN's) read better on a log scale
  const ys = datasets.flatMap((d) => d.points.map((p) => p.y));
  return ys.length > 1 && ys.every((y) => y > 0) && Math.max(...ys) / Math.min(...ys) > 1e3;
}

function axisTick(value) {
  // a log axis over more than a decade labels only the decades (1e-5, 1e-4...): the steps
  // between crowd it; a narrower one labels every tick
  if (this.type === "logarithmic" && Math.log10(this.max) - Math.log10(this.min) > 1) {
    const exponent = Math.log10(Math.abs(value));
    if (Math.abs(exponent - Math.round(exponent)) > 1e-9) return "";
  }
  return tick(value);
}

function tick(value) {
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return Number(value).toExponential(1);
  return Number(Number(value).toPrecision(4));
}

function seriesByName(metrics) {
  // {name: {split: [{x: step, y: value}]}}
  const out = {};
  for (const m of metrics) {
    ((out[m.name] ||= {})[m.split] ||= []).push({ x: m.step, y: m.value });
  }
  for (const splits of Object.values(out)) for (const points of Object.values(splits)) points.sort((a, b) => a.x - b.x);
  return out;
}

function metricOrder(a, b) {
  const rank = (n) => (n === "loss" ? 0 : n === "lr" ? 2 : 1);
  return rank(a) - rank(b) || a.localeCompare(b);
}

const TINY = 1e-12;

function seriesShape(splits) {
  // "value": no split has two points (a scalar such as a PINN's final error: a value, not a
  // one-point chart); "tiny": every value below TINY in size (a boundary term the network meets
  // exactly, ~1e-31: rounding noise drawn as a curve would mislead); otherwise "curve"
  const all = Object.values(splits);
  if (all.every((points) => points.length <= 1)) return "value";
  if (all.every((points) => points.every((p) => Math.abs(p.y) < TINY))) return "tiny";
  return "curve";
}

function curveValues(entries) {
  // one card of the series that are not drawn: each split's last value, or "≈0" for tiny ones
  const rows = entries.flatMap(([name, splits, shape]) =>
    Object.entries(splits).map(([split, points]) => {
      const last = points[points.length - 1];
      const largest = Math.max(...points.map((p) => Math.abs(p.y)));
      const text = shape === "tiny" ? `≈0 (below ${TINY.toExponential(0)})` : fmt(last.y);
      const title = shape === "tiny" ? `largest ${largest.toExponential(2)} over ${points.length} steps` : `step ${last.x}`;
      return h("tr", { "data-metric": name, "data-split": split, "data-shape": shape }, h("td", {}, name), h("td", {}, split), h("td", { class: "num", title }, text));
    }),
  );
  return rows.length ? h("div", { class: "card" }, h("h3", {}, "values (a single point, or ≈0 throughout)"), h("table", {}, rows)) : null;
}

function drawCurves(container, metrics, prefix, xTitle = "epoch", valuesId = null) {
  // a chart per metric, a line per split; with valuesId, single points and identically tiny
  // series are listed there as values instead
  const byName = seriesByName(metrics);
  const names = Object.keys(byName).sort(metricOrder);
  if (!names.length) return;
  const values = [];
  for (const name of names) {
    const shape = seriesShape(byName[name]);
    if (valuesId && shape !== "curve") {
      values.push([name, byName[name], shape]);
      continue;
    }
    container.querySelectorAll("p.muted").forEach((p) => p.remove());
    const datasets = Object.entries(byName[name]).map(([split, points]) => ({
      label: split,
      points,
      color: split === "train" ? COLORS[0] : split === "validation" ? COLORS[1] : undefined,
    }));
    lineChart(container, `${prefix}:${name}`, name, datasets, xTitle, { logY: name === "lr" });
  }
  if (valuesId) fill(valuesId, curveValues(values));
}

/* ---------- who is signed in ---------- */

function whoami() {
  // "signed in as NAME" in every page's header ("(admin)" for an admin, who sees everyone's runs);
  // window.trainlabMe is the answer of /me (null if it failed) for the pages that need it
  window.trainlabMe = api("/me").catch(() => null);
  window.trainlabMe.then((me) => {
    const node = document.getElementById("whoami");
    if (me && node) node.textContent = `signed in as ${me.name}${me.is_admin ? " (admin)" : ""}`;
  });
}

/* ---------- sign in ---------- */

function loginPage() {
  const form = document.getElementById("login");
  const refused = new URLSearchParams(location.search).get("refused");
  if (refused) {
    const error = document.getElementById("login-error");
    error.textContent = "The server wants a valid token (it answered " + refused + "). Sign in again.";
    error.hidden = false;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = document.getElementById("token").value.trim();
    try {
      const probe = await fetch(`${API}/experiments?limit=1`, {
        credentials: "omit",
        headers: { Authorization: `Bearer ${token}` },
      });
      if (probe.status === 401 || probe.status === 403) {
        const error = document.getElementById("login-error");
        error.textContent = "The server refused this token.";
        error.hidden = false;
        return;
      }
    } catch (_) {
      /* the server will tell on the next page */
    }
    form.submit();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const pages = { list: window.listPage, login: loginPage, experiment: window.experimentPage, compare: window.comparePage };
  const name = document.body.dataset.page;
  if (name !== "login" && document.getElementById("whoami")) whoami();
  const page = pages[name];
  if (page) Promise.resolve(page()).catch((error) => problem(error.message));
});

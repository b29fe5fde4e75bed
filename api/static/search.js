/* trainlab dashboard: a search's views, the ones Optuna's dashboard draws, from the parent's
   summary (trials, importances, objective) and its spec's space: the optimization history, the
   parameter importances (fANOVA), parallel coordinates and the table of trials. Helpers in
   dashboard.js; trialValue in experiment.js. */
"use strict";

const SVG = "http://www.w3.org/2000/svg";
// line colours from the best trial (dark blue) to the worst (orange)
const VALUE_STOPS = [
  [8, 48, 107],
  [66, 146, 198],
  [253, 174, 107],
];

function searchObjective(summary) {
  const declared = summary.objective || {};
  const metric = typeof declared === "object" ? declared.metric || "" : String(declared);
  const direction = declared.direction || summary.direction || (MINIMIZED.test(metric) ? "minimize" : "maximize");
  return { metric, direction };
}

function flatTrials(trials) {
  return trials.map((t) => {
    const row = {};
    for (const [k, v] of Object.entries(t)) {
      if (v && typeof v === "object" && !Array.isArray(v)) for (const [k2, v2] of Object.entries(v)) row[`${k}.${k2}`] = v2;
      else row[k] = v;
    }
    return row;
  });
}

function trialsTable(trials) {
  const flat = flatTrials(trials);
  const columns = [...new Set(flat.flatMap((r) => Object.keys(r)))];
  const cell = (r, c) =>
    c === "experiment" && r[c]
      ? h("td", {}, h("a", { href: `/experiments/${r[c]}` }, `#${r[c]}`))
      : c === "state"
        ? h("td", {}, badge(r[c] === "complete" ? "succeeded" : r[c], r[c]))
        : h("td", { class: typeof r[c] === "number" ? "num" : "" }, fmt(r[c]));
  fill("trials", table(columns, flat.map((r) => columns.map((c) => cell(r, c)))));
}

function drawHistory(trials, objective) {
  // each trial's value (points) and the best so far (a line), by trial number
  const points = trials.map((t, i) => ({ x: t.number ?? t.trial ?? i + 1, y: trialValue(t) })).filter((p) => typeof p.y === "number");
  let best = null;
  const bestSoFar = points.map((p) => {
    best = best === null ? p.y : objective.direction === "minimize" ? Math.min(best, p.y) : Math.max(best, p.y);
    return { x: p.x, y: best };
  });
  lineChart(
    document.getElementById("trial-history"),
    "trials",
    `optimization history (${objective.metric || "objective"}, ${objective.direction})`,
    [
      { label: "trial", points, line: false, radius: 3 },
      { label: "best so far", points: bestSoFar, dash: [6, 3], radius: 0 },
    ],
    "trial",
  );
}

function drawImportances(summary) {
  // fANOVA importances as horizontal bars, the most important on top (each labelled with its share)
  const container = document.getElementById("trial-history");
  const importances = Object.entries(summary.importances || {}).filter(([, v]) => typeof v === "number");
  const note = summary.importances_note || (importances.length ? "" : "no parameter importances");
  const noteNode = document.getElementById("importances-note");
  noteNode.textContent = note;
  noteNode.hidden = !note;
  if (!importances.length) return;
  importances.sort((a, b) => b[1] - a[1]);
  const labels = importances.map(([k, v]) => `${k} (${v.toFixed(2)})`);
  const values = importances.map(([, v]) => v);
  let chart = window.trainlabCharts.importances;
  if (chart && chart.canvas.isConnected) {
    chart.data.labels = labels;
    chart.data.datasets[0].data = values;
    chart.update("none");
    return;
  }
  const canvas = h("canvas", { "aria-label": "parameter importances", role: "img" });
  container.append(h("div", { class: "chart", "data-chart": "importances" }, canvas));
  chart = new Chart(canvas, {
    type: "bar",
    data: { labels, datasets: [{ label: "importance", data: values, backgroundColor: COLORS[0] }] },
    options: {
      indexAxis: "y",
      animation: false,
      maintainAspectRatio: false,
      plugins: { title: { display: true, text: "parameter importances (fANOVA)" }, legend: { display: false } },
      scales: { x: { min: 0, title: { display: true, text: "share of the objective's variance" } } },
    },
  });
  window.trainlabCharts.importances = chart;
}

/* ---------- parallel coordinates (SVG) ---------- */

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, v);
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function axisScale(name, values, param) {
  // position in [0, 1] of a value on one axis: the space's range (log when it says log), widened to
  // the values seen; categories (a categorical space, or values that are not numbers) evenly spaced
  const numeric = values.every((v) => typeof v === "number") && !(param && param.type === "categorical");
  if (!numeric) {
    const keys = [...new Set([...(param && Array.isArray(param.choices) ? param.choices : []), ...values].map((v) => JSON.stringify(v)))];
    const at = (v) => (keys.length > 1 ? keys.indexOf(JSON.stringify(v)) / (keys.length - 1) : 0.5);
    const every = Math.ceil(keys.length / 12); // at most a dozen labels on one axis
    const ticks = keys.filter((_, i) => i % every === 0).map((k) => [at(JSON.parse(k)), fmt(JSON.parse(k))]);
    return { name, kind: "categorical", at, ticks };
  }
  let lo = Math.min(...values, ...(param && typeof param.low === "number" ? [param.low] : []));
  let hi = Math.max(...values, ...(param && typeof param.high === "number" ? [param.high] : []));
  const log = !!(param && param.log) && lo > 0;
  const f = log ? Math.log10 : (x) => x;
  if (f(hi) === f(lo)) [lo, hi] = log ? [lo / 10, hi * 10] : [lo - 1, hi + 1];
  const at = (v) => (f(v) - f(lo)) / (f(hi) - f(lo));
  const middle = log ? Math.sqrt(lo * hi) : (lo + hi) / 2;
  return { name, kind: log ? "log" : "linear", at, ticks: [lo, middle, hi].map((v) => [at(v), String(tick(Number(v.toPrecision(3))))]) };
}

function valueColour(t) {
  // t = 0: the best value, 1: the worst
  const x = Math.min(1, Math.max(0, t)) * (VALUE_STOPS.length - 1);
  const i = Math.min(VALUE_STOPS.length - 2, Math.floor(x));
  const mix = VALUE_STOPS[i].map((c, k) => Math.round(c + (VALUE_STOPS[i + 1][k] - c) * (x - i)));
  return `rgb(${mix.join(",")})`;
}

function drawParallel(exp, trials, objective) {
  // one vertical axis per parameter plus the objective; one line per complete trial, coloured
  // by its value (dark: best), the best drawn last and thicker
  const container = document.getElementById("parallel");
  const space = (exp.spec && exp.spec.space) || {};
  const scored = trials.filter((t) => (t.state || "complete") === "complete" && typeof trialValue(t) === "number");
  const names = [...new Set([...Object.keys(space), ...scored.flatMap((t) => Object.keys(t.params || {}))])];
  const complete = scored.filter((t) => names.every((n) => n in (t.params || {})));
  const key = JSON.stringify([names, complete.map((t) => [t.trial, trialValue(t)])]);
  if (container.dataset.drawn === key) return;
  container.dataset.drawn = key;
  if (complete.length < 1 || !names.length) {
    container.replaceChildren(h("p", { class: "muted" }, "parallel coordinates: no complete trial yet"));
    return;
  }
  const label = objective.metric || "objective";
  const axes = names.map((n) => axisScale(n, complete.map((t) => (t.params || {})[n]).filter((v) => v !== undefined), space[n]));
  axes.push({ ...axisScale(label, complete.map(trialValue), null), objective: true });
  const width = Math.max(480, container.clientWidth || 960);
  const height = 340;
  const [top, bottom, left, right] = [48, 24, 60, 90];
  const x = (i) => left + (i * (width - left - right)) / Math.max(1, axes.length - 1);
  const y = (t) => top + (1 - t) * (height - top - bottom);
  const values = complete.map(trialValue);
  const [best, worst] = objective.direction === "maximize" ? [Math.max(...values), Math.min(...values)] : [Math.min(...values), Math.max(...values)];
  const badness = (v) => (worst === best ? 0 : (v - best) / (worst - best));
  const ordered = [...complete].sort((a, b) => badness(trialValue(b)) - badness(trialValue(a))); // worst first, best on top
  const lines = ordered.map((t, i) => {
    const value = trialValue(t);
    const coords = axes.map((a, j) => `${x(j).toFixed(1)},${y(a.at(a.objective ? value : (t.params || {})[a.name])).toFixed(1)}`);
    const params = names.map((n) => `${n}=${fmt((t.params || {})[n])}`).join(", ");
    const isBest = i === ordered.length - 1;
    return svg(
      "path",
      { class: isBest ? "trial best" : "trial", "data-trial": t.trial, d: `M${coords.join("L")}`, stroke: valueColour(badness(value)), "stroke-width": isBest ? 3 : 1.5, fill: "none", "stroke-opacity": 0.85 },
      svg("title", {}, `trial ${t.trial}: ${label} ${fmt(value)}; ${params}`),
    );
  });
  const axisNodes = axes.map((a, j) =>
    svg(
      "g",
      { class: "axis", "data-param": a.name, "data-scale": a.kind },
      svg("line", { x1: x(j), x2: x(j), y1: y(0), y2: y(1), stroke: "#1d232a" }),
      svg("text", { x: x(j), y: top - 22, "text-anchor": "middle", class: a.objective ? "axis-title objective" : "axis-title" }, svg("title", {}, a.name), shortName(a.name), a.kind === "log" ? " (log)" : ""),
      a.ticks.map(([t, text]) => svg("text", { x: x(j) - 5, y: y(t) + 4, "text-anchor": "end", class: "tick" }, text)),
    ),
  );
  const caption = `${complete.length} complete trial${complete.length === 1 ? "" : "s"}, coloured by ${label} (dark blue: best, orange: worst)`;
  const drawing = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `parallel coordinates: ${caption}` }, lines, axisNodes);
  container.replaceChildren(h("h3", {}, "parallel coordinates"), drawing, h("p", { class: "muted" }, caption));
}

function renderTrials(exp) {
  const summary = exp.summary || {};
  const trials = summary.trials;
  show("trials-section", Array.isArray(trials) && trials.length > 0);
  if (!Array.isArray(trials) || !trials.length) return;
  const objective = searchObjective(summary);
  trialsTable(trials);
  drawHistory(trials, objective);
  drawImportances(summary);
  drawParallel(exp, trials, objective);
}

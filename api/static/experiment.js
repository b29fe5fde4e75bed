/* trainlab dashboard: one experiment's page and the compare view (helpers in dashboard.js). */
"use strict";

const SUMMARY_SCALARS = ["final_loss", "relative_l2_error", "epochs_run", "best_epoch", "parameters", "training_seconds"];
const PLOT_ORDER = ["learning_curves", "roc", "pr", "confusion_matrix", "pinn_solution", "exact_solution", "error"];
const MINIMIZED = /loss|rmse|mae|mse|error/i;

function errorLine(reason, error) {
  // "data error: ..." rather than "data: data error: ..."
  const r = reason || "error";
  const text = String(error).trim();
  return text.toLowerCase().startsWith(`${r}:`) || text.toLowerCase().startsWith(`${r} error:`) ? text : `${r}: ${text}`;
}

function childLabel(parentName, name) {
  // what tells a child from its siblings: "sgd" of "optimizers-compare [sgd]", "fold 2/5", "trial 7"
  if (!parentName || !name.startsWith(parentName)) return name;
  let rest = name.slice(parentName.length).trim();
  if (rest.startsWith("[") && rest.endsWith("]")) rest = rest.slice(1, -1);
  return rest || name;
}

function childRanks(exp) {
  // child id -> rank, best first: a compare's ranking, a search's trials by its objective
  const s = exp.summary || {};
  const ranks = {};
  if (Array.isArray(s.ranking)) for (const r of s.ranking) ranks[r.experiment] = r.rank;
  if (Array.isArray(s.trials)) {
    const sign = (s.objective || {}).direction === "maximize" ? -1 : 1;
    const scored = s.trials.filter((t) => typeof trialValue(t) === "number").sort((a, b) => sign * (trialValue(a) - trialValue(b)));
    scored.forEach((t, i) => (ranks[t.experiment] = i + 1));
  }
  return ranks;
}

function bestFirst(exp) {
  // children best first where the summary ranks them; the others after, in their own order
  const ranks = childRanks(exp);
  const rank = (c) => ranks[c.id] ?? Infinity;
  return (exp.children || []).map((c, i) => [c, i]).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]).map(([c]) => c);
}

function childCounts(children) {
  // "8/10 done: 2 pruned, 1 failed" — pruned is an outcome of its own, never a failure
  const counts = {};
  for (const c of children) counts[c.status] = (counts[c.status] || 0) + 1;
  const done = children.filter((c) => FINAL.includes(c.status)).length;
  const rest = ["running", "queued", "pruned", "failed", "cancelled"].filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`);
  return `${done}/${children.length} done` + (rest.length ? `: ${rest.join(", ")}` : "");
}

function progressText(exp, metrics) {
  const epochs = (exp.spec.train || {}).epochs;
  const step = metrics.reduce((n, m) => Math.max(n, m.step), 0);
  if (exp.status !== "running" || !step) return "";
  return epochs ? ` · epoch ${step}/${epochs}` : ` · step ${step}`;
}

function renderState(exp, metrics) {
  document.title = `#${exp.id} ${exp.name} · trainlab`;
  fill("title", `#${exp.id} ${exp.name}`);
  const t = exp.timings || {};
  const ran = t.run_seconds ?? (exp.started_at ? (Date.now() - new Date(exp.started_at)) / 1000 : null);
  fill(
    "state",
    badge(exp.status),
    ` ${exp.kind}`,
    exp.parent_id ? [" · child of ", h("a", { href: `/experiments/${exp.parent_id}` }, `#${exp.parent_id}`)] : "",
    progressText(exp, metrics),
    ` · queued ${seconds(t.queued_seconds) || "-"} · ${exp.status === "running" ? "running for" : "ran"} ${seconds(ran) || "-"}`,
    exp.worker ? ` on ${exp.worker}` : "",
    exp.cancel_requested && !FINAL.includes(exp.status) ? " · cancel requested" : "",
  );
  const cancel = async () => {
    await api(`/experiments/${exp.id}/cancel`, { method: "POST" });
  };
  fill("actions", FINAL.includes(exp.status) ? null : h("button", { type: "button", id: "cancel", onclick: cancel }, "cancel"));
  // a queued run no live worker can serve says why (its resources) where an error would be
  const error = fill("error", exp.error ? errorLine(exp.error_reason, exp.error) : exp.warning || "");
  error.hidden = !(exp.error || exp.warning);
}

function renderDiagnosis(summary) {
  const d = summary.diagnosis;
  show("diagnosis-section", !!d);
  if (d) {
    const evidence =
      d.evidence && typeof d.evidence === "object"
        ? Object.entries(d.evidence)
            .filter(([, v]) => !Array.isArray(v))
            .map(([k, v]) => `${k} ${fmt(v)}`)
            .join(", ")
        : d.evidence;
    fill(
      "diagnosis",
      h("p", {}, h("span", { class: `verdict ${d.verdict}`, id: "verdict" }, d.verdict), d.confidence !== undefined ? ` confidence ${fmt(d.confidence)}` : ""),
      d.explanation ? h("p", {}, d.explanation) : null,
      evidence ? h("details", { class: "muted" }, h("summary", {}, "evidence"), evidence) : null,
      (d.advice || []).length ? h("ul", { class: "advice" }, d.advice.map((a) => h("li", {}, a))) : null,
    );
  }
  const warnings = summary.warnings || [];
  show("warnings-section", warnings.length > 0);
  fill("warnings", warnings.map((w) => h("li", {}, typeof w === "string" ? w : JSON.stringify(w))));
}

function deviceFacts(summary) {
  // where it ran: cpu or cuda:N, and on CUDA which GPU and what the run used of it
  if (!summary.device) return {};
  const facts = { device: summary.device };
  const gpu = summary.gpu;
  if (gpu && typeof gpu === "object") {
    facts.gpu = `${gpu.name} (index ${gpu.index}${gpu.visible_as !== undefined ? `, host GPU ${gpu.visible_as}` : ""})`;
    if (typeof gpu.peak_memory_mb === "number") facts["peak memory (MB)"] = gpu.peak_memory_mb;
    const u = gpu.utilization;
    if (u && typeof u.mean_percent === "number") facts["utilization (mean %)"] = u.mean_percent;
  }
  return facts;
}

function renderSummary(summary) {
  const run = Object.fromEntries(SUMMARY_SCALARS.filter((k) => k in summary).map((k) => [k, summary[k]]));
  if (summary.threshold && typeof summary.threshold === "object") run.threshold = summary.threshold.value;
  const best = summary.best && typeof summary.best === "object" ? flatten(summary.best) : {};
  const cards = [
    keyValueCard("test", scalars(summary.test)),
    keyValueCard("validation", scalars(summary.validation)),
    keyValueCard("best trial", scalars(best)),
    keyValueCard("member spread (test)", scalars(summary.member_spread)),
    keyValueCard("ensemble gain over the mean member", scalars(summary.gain_over_member_mean)),
    keyValueCard("baseline", scalars(summary.baseline)),
    keyValueCard("run", scalars(run)),
    keyValueCard("device", deviceFacts(summary)),
  ].filter(Boolean);
  show("summary-section", cards.length > 0);
  fill("summary", cards);
}

function renderAnswer(exp) {
  // the answer of a compare (its winner and ranking) or a search (its best trial), on top
  const s = exp.summary || {};
  let answer = null;
  if (Array.isArray(s.ranking) && s.ranking.length) {
    const ranked = [...s.ranking].sort((a, b) => a.rank - b.rank);
    const metric = s.rank_by || "";
    answer = [
      h("p", { id: "winner" }, "winner: ", h("strong", {}, s.best ?? ranked[0].label), ` (${metric} ${fmt(ranked[0][metric])})`),
      table(
        ["rank", "variant", metric, "best val loss", "gap", "verdict", "status"],
        ranked.map((r) => [
          String(r.rank),
          h("a", { href: `/experiments/${r.experiment}` }, r.label),
          h("td", { class: "num" }, fmt(r[metric])),
          h("td", { class: "num" }, fmt(r.best_validation_loss)),
          h("td", { class: "num" }, fmt(r.gap)),
          r.verdict || "",
          badge(r.status),
        ]),
      ),
    ];
  } else if (s.best && typeof s.best === "object" && s.objective) {
    const params = Object.entries(s.best.params || {}).map(([k, v]) => `${k}=${fmt(v)}`).join(", ");
    const c = s.counts || {};
    answer = [
      h("p", { id: "winner" }, "best: ", h("a", { href: `/experiments/${s.best.experiment}` }, h("strong", {}, `trial ${s.best.trial}`)),
        ` ${s.objective.metric} ${fmt(s.best.value)} (${s.objective.direction})`),
      params ? h("p", {}, `params: ${params}`) : null,
      h("p", { class: "muted" }, `${c.complete ?? 0} complete, ${c.pruned ?? 0} pruned, ${c.failed ?? 0} failed of ${s.budget ?? "?"} trials`),
    ];
  }
  show("answer-section", !!answer);
  if (answer) fill("answer", answer);
}

function childExtras(summary) {
  // per-child numbers a parent's summary holds (k-fold per_fold, summary.children), by child id
  const out = {};
  const lists = [summary.per_fold, summary.members, summary.children].filter(Array.isArray);
  for (const entry of lists.flat()) {
    const id = entry.experiment ?? entry.id;
    if (id !== undefined) Object.assign((out[id] ||= {}), scalars(flatten(entry)));
  }
  return out;
}

function renderChildren(exp) {
  const children = exp.children || [];
  show("children-section", children.length > 0);
  if (!children.length) return;
  const extras = childExtras(exp.summary || {});
  const columns = [...new Set(Object.values(extras).flatMap((e) => Object.keys(e)))].filter((c) => c !== "id" && c !== "experiment");
  const title = { kfold: "Folds", search: "Trial runs", ensemble: "Members", compare: "Variants" }[exp.kind] || "Children";
  fill("children-title", `${title} (${childCounts(children)})`);
  const ordered = bestFirst(exp);
  const rows = ordered.map((c) => [
    h("a", { href: `/experiments/${c.id}` }, `#${c.id}`),
    h("a", { href: `/experiments/${c.id}` }, childLabel(exp.name, c.name)),
    badge(c.status),
    ...columns.map((k) => h("td", { class: "num" }, fmt((extras[c.id] || {})[k]))),
  ]);
  const compareIds = ordered.slice(0, 12).map((c) => c.id).join(",");
  fill("children", table(["id", "variant", "status", ...columns], rows), children.length > 1 ? h("p", {}, h("a", { href: `/compare?ids=${compareIds}` }, children.length > 12 ? "compare the best 12" : "compare these")) : null);
}

function trialValue(trial) {
  return trial.value ?? trial.objective ?? trial.score ?? null;
}

const finishedChildRows = new Map(); // child id -> its validation rows, once it is final (they never change)

async function childRows(child) {
  if (finishedChildRows.has(child.id)) return finishedChildRows.get(child.id);
  const rows = await api(`/experiments/${child.id}/metrics?split=validation`);
  if (FINAL.includes(child.status)) finishedChildRows.set(child.id, rows);
  return rows;
}

async function drawChildCurves(container, children, parent) {
  // a fan-out parent has no curves of its own: overlay every child's validation curves, best
  // first (the best drawn thicker), each labelled by its variant, fold or trial
  const shown = parent ? bestFirst(parent) : children;
  const rows = await Promise.all(shown.map(childRows));
  // only series with a course (a one-point trial, e.g. the analytic objective, has none)
  const names = [...new Set(rows.flat().map((m) => m.name))]
    .filter((name) => rows.some((r) => r.filter((m) => m.name === name).length > 1))
    .sort(metricOrder);
  if (names.length) container.querySelectorAll("p.muted").forEach((p) => p.remove());
  for (const name of names) {
    const ranked = parent && Object.keys(childRanks(parent)).length > 0;
    const datasets = shown.map((c, i) => ({
      label: parent ? childLabel(parent.name, c.name) : `#${c.id}`,
      points: rows[i].filter((m) => m.name === name).map((m) => ({ x: m.step, y: m.value })),
      width: ranked && i === 0 ? 4 : undefined,
    }));
    lineChart(container, `children:${name}`, `validation ${name} of each child`, datasets, "epoch", { logY: name === "lr" });
  }
}

let shownArtifacts = "";

function renderArtifacts(exp, artifacts) {
  const key = artifacts.map((a) => `${a.name}@${a.created_at}`).join("|");
  if (key === shownArtifacts) return;
  shownArtifacts = key;
  const rank = (a) => {
    const i = PLOT_ORDER.indexOf(a.name.replace(/\.png$/, ""));
    return i < 0 ? PLOT_ORDER.length : i;
  };
  const images = artifacts.filter((a) => a.content_type.startsWith("image/")).sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  const href = (a) => `${API}/experiments/${exp.id}/artifacts/${encodeURIComponent(a.name)}`;
  show("plots-section", images.length > 0);
  // each thumbnail opens its plot full size in a tab of its own (inline: shown, not saved)
  const full = (a) => `${href(a)}?inline=true&v=${encodeURIComponent(a.created_at)}`;
  fill(
    "plots",
    images.map((a) =>
      h(
        "figure",
        {},
        h("a", { href: full(a), target: "_blank", rel: "noopener", title: `${a.name}: open full size` }, h("img", { src: `${href(a)}?v=${encodeURIComponent(a.created_at)}`, alt: a.name, loading: "lazy" })),
        h("figcaption", {}, a.name, " · ", h("a", { href: full(a), target: "_blank", rel: "noopener" }, "full size")),
      ),
    ),
  );
  show("files-section", artifacts.length > 0);
  fill("files", artifacts.map((a) => h("li", {}, h("a", { href: href(a), download: a.name }, a.name), ` (${a.size.toLocaleString()} bytes, ${a.content_type})`)));
}

window.experimentPage = function experimentPage() {
  const id = document.body.dataset.experimentId;
  let specShown = false;
  // Follow the curves incrementally: each poll asks only for the steps after the last one held,
  // and nothing at all while the experiment's latest step has not moved.
  let metrics = [];
  let lastStep = null;
  const newRows = (exp) => {
    const latest = exp.latest_metrics ? exp.latest_metrics.step : null;
    if (latest === null || latest === lastStep) return Promise.resolve([]);
    return api(`/experiments/${id}/metrics${lastStep === null ? "" : `?after_step=${lastStep}`}`);
  };
  repeat(async () => {
    const exp = await api(`/experiments/${id}`);
    const [fresh, artifacts] = await Promise.all([newRows(exp), api(`/experiments/${id}/artifacts`)]);
    if (fresh.length) {
      metrics = metrics.concat(fresh);
      lastStep = fresh.reduce((n, m) => Math.max(n, m.step), lastStep === null ? -Infinity : lastStep);
    }
    renderState(exp, metrics);
    renderDiagnosis(exp.summary || {});
    renderSummary(exp.summary || {});
    const curves = document.getElementById("curves");
    drawCurves(curves, metrics, "experiment", exp.kind === "pinn" ? "step" : "epoch", "curve-values");
    if (!metrics.length && exp.children.length) await drawChildCurves(curves, exp.children, exp);
    renderAnswer(exp);
    renderTrials(exp);
    renderChildren(exp);
    renderArtifacts(exp, artifacts);
    if (!specShown) fill("spec", JSON.stringify(exp.spec, null, 2));
    specShown = true;
    return !FINAL.includes(exp.status);
  });
};

/* ---------- compare ---------- */

function comparable(exp) {
  const s = exp.summary || {};
  const out = {};
  for (const [k, v] of Object.entries(scalars(s.test))) out[`test.${k}`] = v;
  for (const [k, v] of Object.entries(scalars(s.validation))) out[`validation.${k}`] = typeof v === "object" ? v.mean : v;
  for (const k of SUMMARY_SCALARS) if (k in s) out[k] = s[k];
  if (s.diagnosis) out.diagnosis = s.diagnosis.verdict;
  out.run_seconds = (exp.timings || {}).run_seconds;
  return out;
}

function flatten(node, prefix = "", out = {}) {
  if (node && typeof node === "object" && !Array.isArray(node) && Object.keys(node).length) {
    for (const [k, v] of Object.entries(node)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) out[prefix] = node;
  return out;
}

window.comparePage = function comparePage() {
  const ids = (document.body.dataset.experimentIds || "").split(",").filter(Boolean);
  if (ids.length < 2) return;
  repeat(async () => {
    const exps = await Promise.all(ids.map((id) => api(`/experiments/${id}`)));
    const metrics = await Promise.all(ids.map((id) => api(`/experiments/${id}/metrics`)));
    const label = (e) => `#${e.id} ${e.name}`;
    // one chart per (split, metric), one line per experiment
    const keys = new Set(metrics.flatMap((rows) => rows.map((m) => `${m.split} ${m.name}`)));
    const container = document.getElementById("curves");
    if (keys.size) container.querySelectorAll("p.muted").forEach((p) => p.remove());
    for (const key of [...keys].sort((a, b) => metricOrder(a.split(" ")[1], b.split(" ")[1]) || a.localeCompare(b))) {
      const datasets = exps.map((e, i) => ({
        label: label(e),
        points: metrics[i].filter((m) => `${m.split} ${m.name}` === key).map((m) => ({ x: m.step, y: m.value })),
      }));
      lineChart(container, `compare:${key}`, key, datasets, "epoch", { logY: key.endsWith(" lr") });
    }
    const values = exps.map(comparable);
    const names = [...new Set(values.flatMap((v) => Object.keys(v)))].sort();
    fill("metrics", table(["metric", ...exps.map(label)], names.map((n) => [n, ...values.map((v) => h("td", { class: "num" }, fmt(v[n])))])));
    const specs = exps.map((e) => flatten(e.spec));
    const paths = [...new Set(specs.flatMap((s) => Object.keys(s)))].sort();
    const differ = paths.filter((p) => new Set(specs.map((s) => JSON.stringify(s[p]))).size > 1);
    fill(
      "spec-diff",
      differ.length
        ? table(["spec path", ...exps.map(label)], differ.map((p) => [p, ...specs.map((s) => (s[p] === undefined ? "-" : JSON.stringify(s[p])))]))
        : h("p", {}, "the specs are the same"),
    );
    return exps.some((e) => !FINAL.includes(e.status));
  });
};

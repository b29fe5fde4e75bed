/* trainlab dashboard: the experiment list as a run table (helpers in dashboard.js). Besides its
   fixed columns, a row can show any of its run's main metrics (`metric:validation.loss`) and spec
   parameters (`param:train.optimizer.lr`), picked in the column picker and sorted by a click on
   a header; the choice is kept in this browser's localStorage. The rows are one page of
   GET /experiments (newest first): sorting orders the rows shown, it never reads the table. */
"use strict";

const TABLE_STATE = "trainlab.runTable";
const DEFAULT_COLUMNS = ["metric:validation.loss", "metric:test.accuracy", "param:train.optimizer.name", "param:train.optimizer.lr"];
const PAGE_SIZE = 200;

function runSeconds(e) {
  return e.started_at && e.finished_at ? (new Date(e.finished_at) - new Date(e.started_at)) / 1000 : null;
}

const link = (id, text) => h("a", { href: `/experiments/${id}` }, text);

// id -> {title, value (what sorts), cell (what shows; the value when absent)}
const FIXED_COLUMNS = {
  id: { title: "id", value: (e) => e.id, cell: (e) => link(e.id, `#${e.id}`) },
  name: { title: "name", value: (e) => e.name, cell: (e) => link(e.id, e.name) },
  kind: { title: "kind", value: (e) => e.kind },
  status: { title: "status", value: (e) => e.status, cell: (e) => badge(e.status) },
  owner: { title: "owner", value: (e) => e.owner },
  parent: { title: "parent", value: (e) => e.parent_id, cell: (e) => (e.parent_id ? link(e.parent_id, `#${e.parent_id}`) : "") },
  created: { title: "created", value: (e) => Date.parse(e.created_at), cell: (e) => new Date(e.created_at).toLocaleString() },
  run: { title: "run", value: runSeconds, cell: (e) => seconds(runSeconds(e)) },
};

function chosenColumn(id) {
  // a header shows the path's last two parts (optimizer.lr, validation.loss); its tooltip, all of it
  const [group, ...rest] = id.split(":");
  const key = rest.join(":");
  const field = group === "metric" ? "metrics" : "params";
  return { title: key, short: shortName(key), value: (e) => (e[field] || {})[key], chosen: group };
}

function column(id) {
  return FIXED_COLUMNS[id] || chosenColumn(id);
}

function missing(value) {
  return value === null || value === undefined || value === "" || Number.isNaN(value);
}

function compareValues(a, b, direction) {
  // numbers numerically, text naturally ("mlp" < "resnet", "[8]" < "[64]"), missing values last
  // whichever the direction
  if (missing(a) || missing(b)) return missing(a) - missing(b);
  const order = typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b), undefined, { numeric: true });
  return direction * order;
}

function sortRows(items, sort) {
  if (!sort || !sort.column) return items;
  const value = column(sort.column).value;
  return items
    .map((e, i) => [e, i])
    .sort(([a, i], [b, j]) => compareValues(value(a), value(b), sort.direction) || i - j)
    .map(([e]) => e);
}

function loadTableState() {
  try {
    const saved = JSON.parse(localStorage.getItem(TABLE_STATE) || "null");
    if (saved && Array.isArray(saved.columns)) return { columns: saved.columns.filter((c) => typeof c === "string"), sort: saved.sort || null, explicit: true };
  } catch (_) {
    /* no storage, or a broken entry: the defaults */
  }
  return { columns: [...DEFAULT_COLUMNS], sort: null, explicit: false };
}

function saveTableState(state) {
  try {
    localStorage.setItem(TABLE_STATE, JSON.stringify({ columns: state.columns, sort: state.sort }));
  } catch (_) {
    /* private mode: the choice lasts this page only */
  }
}

function metricKeyOrder(a, b) {
  const rank = (k) => (k.startsWith("test.") ? 0 : k.startsWith("validation.") ? 1 : k.startsWith("train.") ? 2 : 3);
  return rank(a) - rank(b) || a.localeCompare(b);
}

function pickable(items, showConstant, chosen) {
  // the metric and parameter columns this page can show; parameters that differ between rows
  // first (what a researcher compares), the ones every row shares only on request
  const metrics = [...new Set(items.flatMap((e) => Object.keys(e.metrics || {})))].sort(metricKeyOrder);
  const values = {};
  for (const e of items) for (const [k, v] of Object.entries(e.params || {})) (values[k] ||= new Set()).add(JSON.stringify(v));
  const varies = (k) => values[k].size > 1 || items.some((e) => !(k in (e.params || {})));
  const params = Object.keys(values)
    .filter((k) => showConstant || varies(k) || chosen.has(`param:${k}`))
    .sort((a, b) => varies(b) - varies(a) || a.localeCompare(b));
  return { metrics, params, varies };
}

function shownColumns(state, items, admin) {
  // the fixed ones, the owner for an admin, then the chosen ones (the defaults only where a row
  // has a value: a fresh server's table stays narrow)
  const has = (id) => items.some((e) => !missing(column(id).value(e)));
  const chosen = state.explicit ? state.columns : state.columns.filter(has);
  return ["id", "name", "kind", "status", ...(admin ? ["owner"] : []), ...chosen, "parent", "created", "run"];
}

function headerRow(columns, state, onSort) {
  return h(
    "tr",
    {},
    h("th", {}),
    columns.map((id) => {
      const sorted = state.sort && state.sort.column === id;
      const arrow = sorted ? (state.sort.direction > 0 ? " ▲" : " ▼") : "";
      const col = column(id);
      return h(
        "th",
        {
          "data-column": id,
          class: `sortable${col.chosen ? ` chosen ${col.chosen}` : ""}`,
          "aria-sort": sorted ? (state.sort.direction > 0 ? "ascending" : "descending") : "none",
          title: `${col.chosen ? `${col.chosen} ${col.title}: ` : ""}click to sort`,
          onclick: () => onSort(id),
        },
        col.short || col.title,
        arrow,
      );
    }),
  );
}

function cellOf(id, e) {
  const col = column(id);
  const value = col.value(e);
  const shown = col.cell ? col.cell(e) : fmt(value);
  const number = typeof value === "number" && !FIXED_COLUMNS[id];
  return h("td", { "data-column": id, class: number || id === "run" ? "num" : null }, shown);
}

function renderPicker(state, items, onToggle) {
  const chosen = new Set(state.columns);
  const showConstant = document.getElementById("all-params").checked;
  const { metrics, params, varies } = pickable(items, showConstant, chosen);
  const box = (id, text, hint) =>
    h("label", { title: hint || null }, h("input", { type: "checkbox", "data-column": id, checked: chosen.has(id), onchange: () => onToggle(id) }), ` ${text}`);
  fill("metric-columns", metrics.length ? metrics.map((k) => box(`metric:${k}`, k)) : h("p", { class: "muted" }, "no metrics yet"));
  fill(
    "param-columns",
    params.length ? params.map((k) => box(`param:${k}`, k, varies(k) ? "differs between rows" : "the same in every row")) : h("p", { class: "muted" }, "none differs between these rows"),
  );
}

window.listPage = async function listPage() {
  const query = new URLSearchParams(location.search);
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  for (const key of ["status", "kind", "name"]) if (query.get(key)) params.set(key, query.get(key));
  // top-level experiments only unless "children too" is ticked: a search's trials stay on its page
  if (!query.get("children")) params.set("top_level", "true");
  const me = await window.trainlabMe;
  const admin = !!(me && me.is_admin);
  const state = loadTableState();
  const selected = new Set();
  let page = { items: [], total: 0 };
  let pickerKey = "";
  const compareButton = document.getElementById("compare-selected");
  compareButton.addEventListener("click", () => location.assign(`/compare?ids=${[...selected].join(",")}`));
  const toggle = (id) => (event) => {
    event.target.checked ? selected.add(id) : selected.delete(id);
    compareButton.disabled = selected.size < 2;
  };

  const render = () => {
    const columns = shownColumns(state, page.items, admin);
    const onSort = (id) => {
      const same = state.sort && state.sort.column === id;
      state.sort = { column: id, direction: same ? -state.sort.direction : 1 };
      saveTableState(state);
      render();
    };
    document.querySelector("#experiments thead").replaceChildren(headerRow(columns, state, onSort));
    const rows = sortRows(page.items, state.sort).map((e) =>
      h(
        "tr",
        { "data-id": e.id, "data-status": e.status },
        h("td", {}, h("input", { type: "checkbox", checked: selected.has(e.id), onchange: toggle(e.id), "aria-label": `select #${e.id}` })),
        columns.map((id) => cellOf(id, e)),
      ),
    );
    const empty = h("tr", {}, h("td", { colspan: columns.length + 1, class: "muted" }, "no experiments match"));
    document.querySelector("#experiments tbody").replaceChildren(...(rows.length ? rows : [empty]));
    const by = state.sort ? ` · sorted by ${column(state.sort.column).title} (${state.sort.direction > 0 ? "ascending" : "descending"}) among these` : "";
    fill("total", `${page.items.length} of ${page.total} shown (newest first)${by}`);
    // the picker is rebuilt only when what it offers changes (not under the user's pointer)
    const offered = pickable(page.items, document.getElementById("all-params").checked, new Set(state.columns));
    const key = JSON.stringify([offered.metrics, offered.params.map((k) => [k, offered.varies(k)]), state.columns]);
    if (key !== pickerKey) {
      pickerKey = key;
      renderPicker(state, page.items, onToggle);
    }
  };
  const onToggle = (id) => {
    const visible = shownColumns(state, page.items, admin).filter((c) => column(c).chosen);
    state.columns = visible.includes(id) ? visible.filter((c) => c !== id) : [...visible, id];
    state.explicit = true;
    if (state.sort && state.sort.column === id && !state.columns.includes(id)) state.sort = null;
    saveTableState(state);
    render();
  };
  document.getElementById("all-params").addEventListener("change", () => {
    pickerKey = "";
    render();
  });

  repeat(async () => {
    page = await api(`/experiments?${params}`);
    render();
    return true; // new submissions show up too
  });
};

"""How the CLI shows experiments with rich: tables, the summary with its diagnosis, comparisons.

The comparison itself (`compare_rows`) is plain data, so `--json` and the tables agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from trainlab.models import Dataset, Experiment, ExperimentBrief, MetricRows
from trainlab.verdict import children_counts, verdict_lines

if TYPE_CHECKING:
    from ml.spec.summary import CompareSummary, Diagnosis, SummaryModel

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "pruned": "magenta",
    "running": "cyan",
    "queued": "white",
}
# Scalars of a summary worth comparing, besides its test and validation metrics.
SUMMARY_SCALARS = ("final_loss", "relative_l2_error", "epochs_run", "best_epoch", "parameters", "training_seconds")


# C0 controls but tab and newline, DEL and C1 controls: ESC sequences could clear or retitle the
# terminal, move the cursor or forge a hyperlink.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """User text as inert characters: control characters shown as visible escapes."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class SafeConsole(Console):
    """A rich console for text that other people wrote (experiment names, errors, labels): no
    markup is interpreted in printed strings, and no control character reaches the terminal
    whatever renderable carries it (tables, Text, progress bars)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        super().__init__(**kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None and CONTROL.search(segment.text):
                yield Segment(clean(segment.text), segment.style)
            else:
                yield segment


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, "white"))


def number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4f}"


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}m"


def child_label(parent_name: str, child_name: str) -> str:
    """What tells a child from its siblings: `sgd` of `optimizers-compare [sgd]`, `fold 2/5`,
    `trial 7`, `member 3/10`; the whole name when it does not start with the parent's."""
    if not parent_name or not child_name.startswith(parent_name):
        return child_name
    rest = child_name[len(parent_name) :].strip()
    if rest.startswith("[") and rest.endswith("]"):
        rest = rest[1:-1]
    return rest or child_name


def experiments_table(
    items: Sequence[ExperimentBrief], total: int | None = None, parent_name: str | None = None
) -> Table:
    """Experiments, one a row; children of `parent_name` named by their variant, fold or trial."""
    caption = f"{len(items)} of {total}" if total is not None and total > len(items) else None
    name_column = "variant" if parent_name is not None else "name"
    table = Table("id", name_column, "kind", "status", "parent", "created", "run", caption=caption)
    for e in items:
        run = (e.finished_at - e.started_at).total_seconds() if e.finished_at and e.started_at else None
        created = e.created_at.strftime("%Y-%m-%d %H:%M:%S") if e.created_at else ""
        name = child_label(parent_name, e.name) if parent_name is not None else e.name
        table.add_row(str(e.id), name, e.kind, status_text(e.status), str(e.parent_id or ""), created, seconds(run))
    return table


def _key_values(title: str, values: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in values.items():
        if isinstance(value, dict) and {"mean", "std"} <= set(value):
            text = f"{number(value['mean'])} ± {number(value['std'])} (n={value.get('n', '?')})"
        else:
            text = number(value) if not isinstance(value, dict | list) else json.dumps(value)
        table.add_row(key, text)
    return table


def diagnosis_lines(diagnosis: Diagnosis) -> list[RenderableType]:
    verdict = diagnosis.verdict
    style = {"good": "green", "overfit": "yellow", "underfit": "yellow"}.get(verdict, "white")
    head = Text.assemble("diagnosis: ", (str(verdict), f"bold {style}"))
    head.append(f" (confidence {number(diagnosis.confidence)})")
    lines: list[RenderableType] = [head]
    if diagnosis.explanation:
        lines.append(Text(f"  {diagnosis.explanation}"))
    shown = (f"{k} {number(v)}" for k, v in diagnosis.evidence.items() if not isinstance(v, dict | list))
    lines.append(Text("  evidence: " + ", ".join(shown), style="dim"))
    for advice in diagnosis.advice:
        lines.append(Text(f"  advice: {advice}", style="bold"))
    return lines


def kind_tables(results: SummaryModel | None) -> list[RenderableType]:
    """What only some kinds report: a search's best trial, importances and trials, an ensemble's
    members, k-fold's folds, a classifier's baseline."""
    from ml.spec.summary import CompareSummary, EnsembleSummary, KFoldSummary, SearchSummary, TrainSummary

    parts: list[RenderableType] = []
    if isinstance(results, CompareSummary) and results.ranking:
        parts.append(ranking_table(results))
    if isinstance(results, SearchSummary):
        parts.append(_key_values("best trial", flatten(results.best.model_dump())))
        if results.importances:
            parts.append(_key_values("parameter importances", results.importances))
        if results.trials:
            parts.append(rows_table("trials", [t.model_dump() for t in results.trials]))
    if isinstance(results, EnsembleSummary) and results.members:
        parts.append(rows_table("ensemble members", [m.model_dump() for m in results.members]))
    if isinstance(results, KFoldSummary) and results.per_fold:
        parts.append(rows_table("folds", [f.model_dump() for f in results.per_fold]))
    if isinstance(results, TrainSummary) and results.baseline:
        parts.append(_key_values("baseline (majority class / mean)", results.baseline))
    return parts


def experiment_details(exp: Experiment) -> Group:
    """Everything `show` prints: state, error, metrics, diagnosis and advice, warnings, children."""
    parts: list[RenderableType] = [
        Text.assemble((f"#{exp.id} {exp.name}", "bold"), f"  {exp.kind}  ", status_text(exp.status)),
        Text(
            f"queued {seconds(exp.timings.queued_seconds) or '-'}, ran {seconds(exp.timings.run_seconds) or '-'}"
            + (f" on {exp.worker}" if exp.worker else "")
            + (f", attempts {exp.attempts}" if exp.attempts > 1 else "")
            + (", cancel requested" if exp.cancel_requested and not exp.done else "")
        ),
    ]
    summary = exp.summary
    if exp.raw.get("warning"):  # a queued run no live worker can serve: why
        parts.append(Text(f"warning: {exp.raw['warning']}", style="yellow"))
    if summary.get("device"):
        gpu = summary.get("gpu") if isinstance(summary.get("gpu"), dict) else None
        where = f" ({gpu.get('name')}, index {gpu.get('index')})" if gpu else ""
        parts.append(Text(f"device {summary['device']}{where}"))
    if exp.test_metrics:
        parts.append(_key_values("test", exp.test_metrics))
    validation = exp.validation_metrics
    if validation:
        scalars = {k: v for k, v in validation.items() if _is_number(v) or (isinstance(v, dict) and "mean" in v)}
        parts.append(_key_values("validation", scalars))
    scalars = {k: summary[k] for k in SUMMARY_SCALARS if k in summary}
    if scalars:
        parts.append(_key_values("run", scalars))
    parts.extend(kind_tables(exp.results))
    if exp.diagnosis:
        parts.extend(diagnosis_lines(exp.diagnosis))
    if exp.children:
        parts.append(Text(f"children: {children_progress(exp)}"))
        parts.append(experiments_table(exp.children, parent_name=exp.name))
    parts.append(Text(""))
    parts.extend(verdict_lines(exp))
    return Group(*parts)


def ranking_table(results: CompareSummary) -> Table:
    """A compare's variants, best first, by its `rank_by` metric."""
    metric = results.rank_by.replace("validation.", "val ")
    table = Table("rank", "variant", "id", metric, "best val loss", "gap", "verdict")
    table.title, table.title_justify = f"ranking by {results.rank_by}", "left"
    for row in sorted(results.ranking, key=lambda r: r.rank):
        value = (row.model_extra or {}).get(results.rank_by)
        style = "bold green" if row.rank == 1 else ""
        table.add_row(
            str(row.rank),
            Text(row.label, style=style),
            str(row.experiment),
            number(value),
            number(row.best_validation_loss),
            number(row.gap),
            row.verdict or "" if row.status == "succeeded" else status_text(row.status),
        )
    return table


def rows_table(title: str, rows: list[Any]) -> Table:
    """A list of summary rows (trials, members, folds) as a table; nested mappings flattened."""
    flat = [flatten(r) for r in rows if isinstance(r, dict)]
    columns = [c for c in dict.fromkeys(k for r in flat for k in r) if c != "error"]
    table = Table(*columns, title=title, title_justify="left")
    for row in flat:
        table.add_row(*(number(row.get(c)) for c in columns))
    return table


def children_progress(exp: Experiment) -> str:
    return children_counts(exp)


def metrics_table(rows: MetricRows) -> Table:
    """Wide: one row per step, one column per (split, name)."""
    series = rows.series()
    columns = sorted(series)
    table = Table("step", *(f"{split} {name}" for split, name in columns))
    by_step: dict[int, dict[tuple[str, str], float]] = {}
    for key, points in series.items():
        for step, value in points:
            by_step.setdefault(step, {})[key] = value
    for step in sorted(by_step):
        table.add_row(str(step), *(number(by_step[step].get(c)) for c in columns))
    return table


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; lists stay values."""
    if not isinstance(node, dict) or not node:
        return {prefix: node} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def comparable_metrics(exp: Experiment) -> dict[str, Any]:
    """`test.accuracy`, `validation.f1` (mean for k-fold), `final_loss`... of one experiment."""
    out: dict[str, Any] = {f"test.{k}": v for k, v in exp.test_metrics.items()}
    for key, value in exp.validation_metrics.items():
        if isinstance(value, dict) and "mean" in value:
            value = value["mean"]
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[f"validation.{key}"] = value
    out.update({k: exp.summary[k] for k in SUMMARY_SCALARS if k in exp.summary})
    if exp.diagnosis:
        out["diagnosis"] = exp.diagnosis.verdict
    out["run_seconds"] = exp.timings.run_seconds
    return out


def compare_rows(experiments: Sequence[Experiment]) -> dict[str, Any]:
    """The metrics of each experiment side by side, and the spec paths whose values differ."""
    metrics = [comparable_metrics(e) for e in experiments]
    specs = [flatten(e.spec) for e in experiments]
    metric_names = sorted({k for m in metrics for k in m})
    paths = sorted({k for s in specs for k in s})
    return {
        "experiments": [{"id": e.id, "name": e.name, "kind": e.kind, "status": e.status} for e in experiments],
        "metrics": {name: [m.get(name) for m in metrics] for name in metric_names},
        "spec_differences": {
            path: [s.get(path) for s in specs]
            for path in paths
            if len({json.dumps(s.get(path), sort_keys=True) for s in specs}) > 1
        },
    }


def compare_tables(experiments: Sequence[Experiment], rows: dict[str, Any]) -> Group:
    heads = [f"#{e.id} {e.name}" for e in experiments]
    metrics = Table("metric", *heads, title="metrics", title_justify="left")
    for name, values in rows["metrics"].items():
        metrics.add_row(name, *(number(v) for v in values))
    spec = Table("spec path", *heads, title="spec differences", title_justify="left")
    for path, values in rows["spec_differences"].items():
        spec.add_row(path, *("-" if v is None else json.dumps(v) for v in values))
    if not rows["spec_differences"]:
        return Group(metrics, Text("the specs are the same"))
    return Group(metrics, spec)


def _classes(info: dict[str, Any]) -> str:
    counts = info.get("class_counts")
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) if isinstance(counts, dict) else ""


def datasets_table(items: Sequence[Dataset]) -> Table:
    """Uploads, one a row: shape, target and classes (what a spec needs to know)."""
    table = Table("id", "name", "format", "rows", "columns", "target", "classes", "uploaded")
    for d in items:
        info = d.raw.get("info") or {}
        columns = info.get("columns") or info.get("shape", [None, None])[1:]
        created = str(d.raw.get("created_at") or "")[:19].replace("T", " ")
        table.add_row(
            str(d.id),
            d.name,
            str(d.raw.get("format") or info.get("format") or ""),
            number(info.get("rows", info.get("files"))),  # a folder set: its files
            str(len(columns)) if isinstance(columns, list) and columns and columns[0] is not None else "",
            str(info.get("target") or ""),
            _classes(info),
            created,
        )
    return table


def _folder_values(info: dict[str, Any]) -> dict[str, Any]:
    """A folder set's kind, files, and its clips' sample rates and durations or its image sizes."""
    values: dict[str, Any] = {
        "kind": f"{info.get('kind', '?')} files in class folders ({info.get('archive', '?')})",
        "files": f"{info.get('files', 0):,} in {len(info.get('class_counts') or {})} classes",
    }
    audio = info.get("audio") or {}
    if audio.get("sample_rates"):
        values["sample rates"] = ", ".join(f"{rate} Hz: {n}" for rate, n in audio["sample_rates"].items())
    if audio.get("seconds"):
        s = audio["seconds"]
        values["durations"] = f"{number(s.get('min'))} to {number(s.get('max'))} s, mean {number(s.get('mean'))} s"
    sizes = (info.get("images") or {}).get("sizes")
    if sizes:
        values["image sizes"] = ", ".join(f"{size}: {n}" for size, n in sizes.items())
    return values


def folder_summary(d: Dataset) -> str:
    """One line after a folder set's upload: what arrived and how a spec names it."""
    info = d.raw.get("info") or {}
    counts = info.get("class_counts") or {}
    return (
        f"dataset {d.id} ({d.name}): {info.get('files', 0):,} {info.get('kind', '')} files in {len(counts)} "
        f"classes; use data.source dataset/{d.id} (`trainlab datasets show {d.id}` for the details)"
    )


def dataset_details(d: Dataset) -> Group:
    """One upload: its description, and how a spec uses it."""
    info = d.raw.get("info") or {}
    if d.raw.get("format") == "folder":
        return _folder_details(d, info)
    values = {
        "format": d.raw.get("format") or info.get("format"),
        "rows": info.get("rows"),
        "columns": ", ".join(info.get("columns") or []) or None,
        "shape": info.get("shape"),
        "target": info.get("target"),
        "categorical": ", ".join(info.get("categorical") or []) or None,
        "classes": _classes(info) or None,
        "missing": ", ".join(f"{k}: {v}" for k, v in (info.get("missing") or {}).items()) or None,
        "size": f"{d.raw.get('size', 0):,} bytes",
        "sha256": d.raw.get("sha256"),
    }
    table = Table(show_header=False, title=f"dataset {d.id} ({d.name})", title_justify="left")
    for key, value in values.items():
        if value not in (None, "", []):
            table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    use = f"data: {{source: dataset/{d.id}}}"
    if not info.get("target") and info.get("columns"):
        use += "  (add target: COLUMN: no target was given at upload)"
    return Group(table, Text(f"use it: {use}"))


def _folder_details(d: Dataset, info: dict[str, Any]) -> Group:
    table = Table(show_header=False, title=f"dataset {d.id} ({d.name})", title_justify="left")
    values = {
        "format": "folder",
        **_folder_values(info),
        "size": f"{d.raw.get('size', 0):,} bytes",
        "sha256": d.raw.get("sha256"),
    }
    for key, value in values.items():
        table.add_row(key, str(value))
    counts = info.get("class_counts") or {}
    total = sum(counts.values()) or 1
    classes = Table("class", "files", "share", title="files per class", title_justify="left")
    for label, n in counts.items():
        classes.add_row(str(label), f"{n:,}", f"{n / total:.1%}")
    block, example = ("audio", "tp2-genres") if info.get("kind") == "audio" else ("image", "images-resnet")
    use = f"data: {{source: dataset/{d.id}, {block}: {{...}}}}  (as in examples/{example}.yaml)"
    return Group(table, classes, Text(f"use it: {use}"))

"""The answer of a finished experiment in a few lines, whatever its kind: the main metric, the
diagnosis, the warnings, and the winner of a compare or a search. `submit --wait` and `watch`
end with it; `show` prints it above the details.

Every line is a `rich.text.Text`, so labels and names that other people wrote (`[sgd]`) are
never read as markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import RenderableType
from rich.text import Text

from trainlab.models import Experiment

if TYPE_CHECKING:
    from ml.spec.summary import SummaryModel

# Shown first when the spec does not say which metric it cares about (`evaluate.metrics`).
PREFERRED = ("accuracy", "balanced_accuracy", "f1", "roc_auc", "pr_auc", "rmse", "mae", "r2")
SHOWN_METRICS = 4
SHOWN_VARIANTS = 4


def number(value: Any) -> str:
    """A metric value, short: 4 decimals, or 4 significant digits when tiny or huge."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if value and (abs(value) < 1e-3 or abs(value) >= 1e4) else f"{value:.4f}"


def error_line(reason: str | None, error: str) -> str:
    """`reason: error`, without saying the reason twice ("data: data error: ..." -> "data error: ...")."""
    reason = reason or "error"
    text = error.strip()
    for prefix in (f"{reason}:", f"{reason} error:"):
        if text.lower().startswith(prefix):
            return text
    return f"{reason}: {text}"


def main_metrics(test: dict[str, Any], spec: dict[str, Any]) -> list[tuple[str, Any]]:
    """The test metrics worth a line, most important first: the spec's `evaluate.metrics`
    order, then the usual headline metrics, numbers only."""
    numeric = {k: v for k, v in test.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    wanted = list((spec.get("evaluate") or {}).get("metrics") or []) + list(PREFERRED)
    order = [k for k in dict.fromkeys(wanted) if k in numeric] + [k for k in numeric if k not in wanted]
    return [(k, numeric[k]) for k in order[:SHOWN_METRICS]]


def _metrics_text(title: str, pairs: list[tuple[str, Any]]) -> Text:
    line = Text(f"{title}: ")
    for i, (name, value) in enumerate(pairs):
        line.append(", " if i else "")
        line.append(f"{name} ")
        line.append(number(value), style="bold" if i == 0 else "")
    return line


def _compare_lines(results: SummaryModel) -> list[Text]:
    from ml.spec.summary import CompareSummary

    assert isinstance(results, CompareSummary)
    ranked = sorted(results.ranking, key=lambda r: r.rank)
    if not ranked:
        return []
    value = (ranked[0].model_extra or {}).get(results.rank_by)
    lines = [Text.assemble("winner: ", (results.best, "bold green"), f" ({results.rank_by} {number(value)})")]
    others = [
        f"{r.rank}. {r.label} {number((r.model_extra or {}).get(results.rank_by))}"
        + ("" if r.status == "succeeded" else f" ({r.status})")
        for r in ranked[1 : 1 + SHOWN_VARIANTS]
    ]
    if others:
        more = len(ranked) - 1 - len(others)
        lines.append(Text("  then " + ", ".join(others) + (f", and {more} more" if more > 0 else ""), style="dim"))
    return lines


def _search_lines(results: SummaryModel) -> list[Text]:
    from ml.spec.summary import SearchSummary

    assert isinstance(results, SearchSummary)
    best, objective, counts = results.best, results.objective, results.counts
    params = ", ".join(f"{k}={number(v)}" for k, v in best.params.items())
    lines = [
        Text.assemble(
            "best: ",
            (f"trial {best.trial}", "bold green"),
            f" (#{best.experiment}) {objective.metric} ",
            (number(best.value), "bold"),
            f" ({objective.direction})",
        ),
        Text(f"  params: {params}"),
    ]
    tally = f"{counts.complete} complete" + (f", {counts.pruned} pruned" if counts.pruned else "")
    tally += f", {counts.failed} failed" if counts.failed else ""
    lines.append(Text(f"  trials: {tally} of {results.budget}", style="dim"))
    return lines


def _kind_lines(exp: Experiment) -> list[Text]:
    """The headline of each kind: what its summary is for."""
    from ml.spec.summary import (
        AnalyticSummary,
        CompareSummary,
        EnsembleSummary,
        KFoldSummary,
        PinnSummary,
        SearchSummary,
    )

    results = exp.results
    lines: list[Text] = []
    if isinstance(results, CompareSummary):
        lines += _compare_lines(results)
    elif isinstance(results, SearchSummary):
        lines += _search_lines(results)
    elif isinstance(results, KFoldSummary):
        pairs = main_metrics({k: v.mean for k, v in results.validation.items()}, exp.spec)
        spread = ", ".join(
            f"{k} {number(results.validation[k].mean)} ± {number(results.validation[k].std)}" for k, _ in pairs[:2]
        )
        lines.append(Text(f"validation over {results.folds} folds: {spread}"))
    elif isinstance(results, EnsembleSummary):
        gains = ", ".join(f"{k} {v:+.4f}" for k, v in list(results.gain_over_member_mean.items())[:SHOWN_METRICS])
        if gains:
            lines.append(Text(f"gain over the mean member: {gains}"))
    elif isinstance(results, PinnSummary):
        lines.append(
            Text.assemble(
                "relative L2 error ",
                (number(results.relative_l2_error), "bold"),
                f", max abs error {number(results.max_abs_error)}, final loss {number(results.final_loss)}",
            )
        )
    elif isinstance(results, AnalyticSummary):
        m = results.minimum
        lines.append(
            Text.assemble(
                f"{results.function}({number(results.h1)}, {number(results.h2)}) = ",
                (number(results.value), "bold"),
                f"; the minimum is {number(m.value)} at ({number(m.h1)}, {number(m.h2)})",
            )
        )
    return lines


def verdict_lines(exp: Experiment) -> list[RenderableType]:
    """The answer block: main metric, kind headline, diagnosis, warnings (or the error)."""
    from trainlab.render import status_text

    lines: list[RenderableType] = [
        Text.assemble(f"experiment {exp.id} ", status_text(exp.status), ": ", (exp.name, "bold"), f" ({exp.kind})")
    ]
    if exp.error:
        lines.append(Text(error_line(exp.error_reason, exp.error), style="red"))
    if exp.test_metrics:
        title = "test (best trial)" if exp.kind == "search" else "ensemble test" if exp.kind == "ensemble" else "test"
        lines.append(_metrics_text(title, main_metrics(exp.test_metrics, exp.spec)))
    lines += _kind_lines(exp)
    if exp.diagnosis:
        d = exp.diagnosis
        style = "green" if d.verdict == "good" else "yellow"
        lines.append(Text.assemble("diagnosis: ", (d.verdict, f"bold {style}"), f" ({d.confidence} confidence)"))
        if d.advice:
            lines.append(
                Text(f"  advice: {d.advice[0]}" + (f" (+{len(d.advice) - 1} more: show)" if len(d.advice) > 1 else ""))
            )
    lines += [Text(f"warning: {w}", style="yellow") for w in exp.warnings]
    if exp.children and exp.kind != "search":
        lines.append(Text(f"children: {children_counts(exp)}", style="dim"))
    return lines


def children_counts(exp: Experiment) -> str:
    """`8/8 done (2 pruned, 1 failed)`: pruned counted as its own outcome, never as failed."""
    from trainlab.models import FINAL_STATUSES

    counts: dict[str, int] = {}
    for child in exp.children:
        counts[child.status] = counts.get(child.status, 0) + 1
    done = sum(counts.get(s, 0) for s in FINAL_STATUSES)
    rest = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s != "succeeded")
    return f"{done}/{len(exp.children)} done" + (f" ({rest})" if rest else "")

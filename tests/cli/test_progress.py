"""The live progress line at 80 columns (no server: the watcher fed the polls a run produces)."""

from __future__ import annotations

import io
from typing import Any

from trainlab.models import Experiment, Metric, MetricRows
from trainlab.render import SafeConsole
from trainlab.watch import Watcher, progress_line, total_steps

METRICS = ("accuracy", "f1", "roc_auc", "precision", "recall", "balanced_accuracy")


def experiment(status: str = "running", **extra: Any) -> Experiment:
    spec = {"name": "quickstart", "train": {"epochs": 80}}
    return Experiment.from_dict(
        {"id": 123, "name": "quickstart", "kind": "train", "status": status, "spec": spec, **extra}
    )


def epoch_rows(step: int) -> list[Metric]:
    rows = [Metric(step, split, "loss", 0.5 / step) for split in ("train", "validation")]
    rows += [Metric(step, split, name, 0.9) for split in ("train", "validation") for name in METRICS]
    return [*rows, Metric(step, "train", "lr", 0.001)]


def frame(progress: Any, width: int = 80) -> str:
    """What a colour terminal `width` columns wide shows (the bar's undone part is drawn in grey)."""
    console = SafeConsole(file=io.StringIO(), width=width, color_system="standard", force_terminal=True, record=True)
    console.print(progress.get_renderable())
    return console.export_text(styles=False)


def test_the_line_shows_bar_epoch_and_validation_loss_in_80_columns() -> None:
    log = io.StringIO()
    console = SafeConsole(file=log, width=80, color_system=None)
    progress = progress_line(console)
    exp = experiment()
    total = total_steps(exp)
    task = progress.add_task("run", total=total, id=exp.id, status="queued", count="", headline="")
    watcher = Watcher(progress, task, total)
    watcher(exp, MetricRows(epoch_rows(1)))
    first = frame(progress)
    assert "epoch 1/80" in first and "val loss 0.5000" in first and "━" in first
    seen = MetricRows([m for step in range(1, 13) for m in epoch_rows(step)])
    watcher(exp, seen)
    shown = frame(progress)
    lines = shown.rstrip("\n").splitlines()
    assert len(lines) == 1 and len(lines[0]) <= 80, shown
    assert "#123 running" in shown and "epoch 12/80" in shown and "val loss 0.0417" in shown and "ETA" in shown
    assert "━" in shown  # the bar
    # every metric goes above the line instead, a line per tenth of the run
    assert "epoch 12: " in log.getvalue() and "validation roc_auc 0.9000" in log.getvalue()


def test_polls_without_new_rows_never_move_the_bar_back() -> None:
    console = SafeConsole(file=io.StringIO(), width=80, color_system=None)
    progress = progress_line(console)
    task = progress.add_task("run", total=80, id=123, status="running", count="", headline="")
    watcher = Watcher(progress, task, 80)
    watcher(experiment(), MetricRows(epoch_rows(5)))
    watcher(experiment(), MetricRows())  # a poll that brought nothing new
    assert "epoch 5/80" in frame(progress) and "val loss 0.1000" in frame(progress)


def test_a_search_counts_trials_and_pruned_ones_are_not_failures() -> None:
    console = SafeConsole(file=io.StringIO(), width=80, color_system=None)
    progress = progress_line(console)
    task = progress.add_task("run", total=None, id=7, status="running", count="", headline="")
    children = [
        {"id": 8 + i, "name": f"s trial {i}", "kind": "train", "status": status, "parent_id": 7}
        for i, status in enumerate(["succeeded", "pruned", "pruned", "running", "queued"])
    ]
    search = Experiment.from_dict(
        {"id": 7, "name": "s", "kind": "search", "status": "running", "spec": {}, "children": children}
    )
    Watcher(progress, task, None)(search, MetricRows())
    shown = frame(progress)
    assert "trials 3/5" in shown and "1 running, 2 pruned" in shown and "failed" not in shown
    assert len(shown.rstrip("\n")) <= 80

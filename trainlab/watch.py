"""Live progress of one experiment on one line that fits 80 columns:

    #12 running  ━━━━━━━━━━━━━━━━  epoch 12/80  val loss 0.3412  0:00:14 ETA 0:01:10

for a run; `trials 7/20` (or folds, variants, members) and what runs or was pruned for a fan-out
parent. The other metrics are printed above the line, one line per tenth of the run, so the bar
keeps its place however many metrics a run reports."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from trainlab.client import Client
from trainlab.models import Experiment, MetricRows
from trainlab.verdict import number

FANOUT_KINDS = ("kfold", "search", "ensemble", "compare")
UNITS = {"kfold": "folds", "search": "trials", "ensemble": "members", "compare": "variants"}
# The one number the line shows, first found: a run's validation loss, else its training loss.
HEADLINE = (("validation", "loss", "val loss"), ("train", "loss", "loss"), ("train", "value", "value"))
DETAIL_LINES = 10  # at most this many lines of all metrics above the bar over a run


def total_steps(exp: Experiment) -> int | None:
    """Epochs a run will take at most (a PINN: its optimizer steps); None when unknown."""
    train = exp.spec.get("train") or {}
    if train.get("epochs"):
        return int(train["epochs"])
    optimizer = exp.spec.get("optimizer") or {}
    steps = sum(int(optimizer.get(k) or 0) for k in ("adam_steps", "lbfgs_steps"))
    return steps or None


def children_text(exp: Experiment) -> str:
    """`2 running, 1 pruned, 1 failed`: pruned trials are an outcome of their own, not failures."""
    counts: dict[str, int] = {}
    for child in exp.children:
        counts[child.status] = counts.get(child.status, 0) + 1
    shown = [(counts.get(s, 0), s) for s in ("running", "pruned", "failed", "cancelled")]
    return ", ".join(f"{n} {s}" for n, s in shown if n)


class Watcher:
    """Updates one progress line from each poll of `Client.wait`. It keeps what it has seen, so
    polls that bring only the new metric rows (or none) never move the bar back."""

    def __init__(self, progress: Progress, task: TaskID, total: int | None) -> None:
        self.progress, self.task, self.total = progress, task, total
        self.step = 0
        self.latest: dict[tuple[str, str], float] = {}
        self.detailed = 0

    def __call__(self, exp: Experiment, metrics: MetricRows) -> None:
        if exp.kind in FANOUT_KINDS or exp.children:
            done = sum(1 for c in exp.children if c.done)
            unit = UNITS.get(exp.kind, "children")
            total = len(exp.children) or None
            self.progress.update(
                self.task,
                completed=done,
                total=total,
                status=exp.status,
                count=f"{unit} {done}/{total or '?'}",
                headline=children_text(exp),
            )
            return
        self.step = max(self.step, metrics.last_step)
        self.latest.update(metrics.last())
        self._details()
        self.progress.update(
            self.task,
            completed=self.step,
            status=exp.status,
            count=f"{'step' if exp.kind == 'pinn' else 'epoch'} {self.step}/{self.total or '?'}",
            headline=self._headline(),
        )

    def _headline(self) -> str:
        for split, name, label in HEADLINE:
            if (split, name) in self.latest:
                return f"{label} {number(self.latest[(split, name)])}"
        return ""

    def _details(self) -> None:
        """All the latest metrics, above the bar, each time the run passes another tenth."""
        if not self.total or not self.latest:
            return
        tenth = self.step * DETAIL_LINES // self.total
        if tenth <= self.detailed:
            return
        self.detailed = tenth
        shown = sorted((k, v) for k, v in self.latest.items() if k[1] != "lr")
        text = "  ".join(f"{split} {name} {number(value)}" for (split, name), value in shown)
        self.progress.console.print(Text(f"epoch {self.step}: {text}", style="dim"), soft_wrap=False)


def progress_line(console: Console) -> Progress:
    """The columns of the line, narrow enough for 80 columns with an 80-epoch run."""
    return Progress(
        TextColumn("#{task.fields[id]} {task.fields[status]}", markup=False),
        BarColumn(bar_width=16),
        TextColumn("{task.fields[count]}", markup=False),
        TextColumn("{task.fields[headline]}", markup=False),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        expand=False,
    )


def follow(client: Client, experiment: Experiment, console: Console, poll: float = 1.0) -> Experiment:
    """Show the progress line until the experiment is final; return it final."""
    total = None if experiment.kind in FANOUT_KINDS else total_steps(experiment)
    with progress_line(console) as progress:
        task = progress.add_task("run", total=total, id=experiment.id, status=experiment.status, count="", headline="")
        return client.wait(experiment.id, on_update=Watcher(progress, task, total), poll=poll)

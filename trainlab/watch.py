"""Live progress of one experiment: epochs and losses for a run; children done/running for a
fan-out parent (k-fold folds, search trials, ensemble members)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from trainlab.client import Client
from trainlab.models import Experiment, MetricRows

FANOUT_KINDS = ("kfold", "search", "ensemble", "compare")


def _total_epochs(exp: Experiment) -> int | None:
    train = exp.spec.get("train") or {}
    return int(train.get("epochs") or 0) or None


def _losses(metrics: MetricRows) -> str:
    last = metrics.last()
    shown = sorted((k, v) for k, v in last.items() if k[1] != "lr")
    return "  ".join(f"{split} {name} {value:.4g}" for (split, name), value in shown[:6])


def _children_text(exp: Experiment) -> tuple[int, int, str]:
    done = sum(1 for c in exp.children if c.done)
    running = sum(1 for c in exp.children if c.status == "running")
    failed = sum(1 for c in exp.children if c.status in ("failed", "cancelled"))
    pruned = sum(1 for c in exp.children if c.status == "pruned")
    text = f"{running} running" + (f", {pruned} pruned" if pruned else "")
    text += f", {failed} failed/cancelled" if failed else ""
    return done, len(exp.children), text


class Watcher:
    """Updates one rich progress bar from each poll of `Client.wait`."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress, self.task = progress, task

    def __call__(self, exp: Experiment, metrics: MetricRows) -> None:
        if exp.kind in FANOUT_KINDS or exp.children:
            done, total, text = _children_text(exp)
            unit = "trials" if exp.kind == "search" else "children"
            self.progress.update(
                self.task, completed=done, total=total or None, status=exp.status, detail=f"{unit}: {text}"
            )
        else:
            self.progress.update(self.task, completed=metrics.last_step, status=exp.status, detail=_losses(metrics))


def follow(client: Client, experiment: Experiment, console: Console, poll: float = 1.0) -> Experiment:
    """Show a progress bar until the experiment is final; return it final."""
    with Progress(
        TextColumn("[bold]#{task.fields[id]}[/bold] {task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}", markup=False),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(
            "run", total=_total_epochs(experiment), id=experiment.id, status=experiment.status, detail=""
        )
        return client.wait(experiment.id, on_update=Watcher(progress, task), poll=poll)

"""The callbacks through which a run talks to whoever hosts it (a notebook, a worker).

Every hook does nothing by default, so a caller overrides only what it needs (skorch's rule).
`ml` never knows where the metrics or artifacts go: a Celery worker persists them to SQL, a
notebook may print them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path


class Reporter:
    """Receives progress from a run. Subclass and override the hooks you need."""

    def on_epoch_end(self, step: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        """Called once per epoch (or per logging step) with ``{split: {name: value}}``."""

    def should_stop(self) -> bool:
        """Polled between batches; return True to cancel the run (it raises `Cancelled`)."""
        return False

    def save_artifact(self, name: str, data: bytes, content_type: str) -> None:
        """Store a file produced by the run (a plot, predictions, weights)."""

    def log(self, message: str) -> None:
        """A human-readable progress line."""

    def checkpoint_due(self) -> bool:
        """Asked after each epoch: should the loop save a checkpoint now? (Never by default.)"""
        return False

    def save_checkpoint(self, state: bytes) -> None:
        """Store the training state after an epoch (model, optimizer, schedule, RNG, epoch)."""

    def load_checkpoint(self) -> bytes | None:
        """The last stored training state, to resume from (None: start from scratch)."""
        return None


class RecordingReporter(Reporter):
    """Keeps everything in memory: handy in notebooks and unit tests."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float | int | str]] = []
        self.artifacts: dict[str, bytes] = {}
        self.messages: list[str] = []
        self.checkpoint: bytes | None = None

    def on_epoch_end(self, step: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        for split, values in metrics.items():
            for name, value in values.items():
                self.rows.append({"step": step, "split": split, "name": name, "value": float(value)})

    def save_artifact(self, name: str, data: bytes, content_type: str) -> None:
        self.artifacts[name] = data

    def log(self, message: str) -> None:
        self.messages.append(message)

    def checkpoint_due(self) -> bool:
        return True

    def save_checkpoint(self, state: bytes) -> None:
        self.checkpoint = state

    def load_checkpoint(self) -> bytes | None:
        return self.checkpoint

    def series(self, split: str, name: str) -> list[float]:
        """The values of one metric in step order."""
        rows = [r for r in self.rows if r["split"] == split and r["name"] == name]
        return [float(r["value"]) for r in sorted(rows, key=lambda r: int(r["step"]))]


class PrintingReporter(Reporter):
    """Prints progress and writes artifacts to a folder (the command line, a notebook)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()

    def on_epoch_end(self, step: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        for split, values in metrics.items():
            text = "  ".join(f"{name} {value:.3e}" for name, value in values.items())
            elapsed = time.perf_counter() - self.start
            cpu = time.process_time() - self.cpu_start
            print(f"{elapsed:7.1f} s (cpu {cpu:7.1f} s)  step {step:6d} [{split}] {text}", flush=True)

    def save_artifact(self, name: str, data: bytes, content_type: str) -> None:
        (self.out / name).write_bytes(data)
        print(f"wrote {self.out / name}", flush=True)

    def log(self, message: str) -> None:
        print(message, flush=True)

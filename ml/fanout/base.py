"""Experiments that fan out into child experiments (k-fold, compare, search, ensemble).

`ml` only plans and summarizes: a `Planner` says which child specs to run and, once children
have finished, what the parent's summary is. The host (a Celery worker) creates the child
experiments, runs each as its own task, and calls back. Each planner is one registry entry.
"""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ml.context import RunContext
from ml.reporter import Reporter
from ml.spec import experiment_kind

__all__ = [
    "ChildData",
    "ChildPlan",
    "ChildResult",
    "Planner",
    "RunContext",
    "experiment_kind",
    "series",
]


@dataclass
class ChildPlan:
    """A child experiment to create: its name and full spec (a dict a worker can run)."""

    name: str
    spec: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)  # what distinguishes it (fold, variant...)


@dataclass
class ChildResult:
    """What the parent sees of a child."""

    id: int
    name: str
    status: str  # queued | running | succeeded | failed | cancelled
    spec: dict[str, Any]
    summary: dict[str, Any] | None
    error: str | None
    seconds: float | None
    started_at: str | None = None
    finished_at: str | None = None


class ChildData(Protocol):
    """Reads a child's stored metrics and artifacts (the host provides it)."""

    def metrics(self, child_id: int) -> list[dict[str, Any]]: ...

    def artifact(self, child_id: int, name: str) -> bytes | None: ...


FINAL = ("succeeded", "failed", "cancelled", "pruned")


class Planner(ABC):
    """Plans the children of one fan-out experiment."""

    @abstractmethod
    def initial(self, spec: Any) -> list[ChildPlan]:
        """The children to start with."""

    def advance(self, spec: Any, children: Sequence[ChildResult]) -> list[ChildPlan]:
        """More children after some finished (adaptive kinds such as search); none by default."""
        return []

    @abstractmethod
    def summarize(
        self, spec: Any, children: Sequence[ChildResult], data: ChildData, reporter: Reporter
    ) -> dict[str, Any]:
        """The parent's summary once every child is final. Raise `ml.errors.MLError` to fail it."""


def read_predictions(raw: bytes) -> dict[str, np.ndarray]:
    """A ``predictions.csv`` as columns of floats (row, true, predicted, p0, p1, ...)."""
    columns: dict[str, list[float]] = {}
    for line in csv.DictReader(io.StringIO(raw.decode())):
        for key, value in line.items():
            columns.setdefault(key, []).append(float(value))
    return {k: np.asarray(v) for k, v in columns.items()}


def children_predictions(children: Sequence[ChildResult], data: ChildData) -> list[dict[str, np.ndarray]]:
    """Every child's test predictions (its ``predictions.csv``), for a parent that combines them."""
    from ml.errors import MLError

    tables = []
    for child in children:
        raw = data.artifact(child.id, "predictions.csv")
        if raw is None:
            raise MLError(f"{child.name} left no predictions.csv")
        tables.append(read_predictions(raw))
    return tables


def series(rows: Sequence[dict[str, Any]], split: str, name: str) -> list[float]:
    """One metric's values in step order, from [{step, split, name, value}] rows."""
    picked = sorted((r["step"], r["value"]) for r in rows if r["split"] == split and r["name"] == name)
    return [v for _, v in picked]

"""Run any experiment, fan-out kinds included, in this process: a notebook's (and the tests')
stand-in for the workers.

`LocalHost` plans and summarizes fan-outs with the same planners as the workers, builds a new
planner for every step as they do, and runs children one after the other, in the order they
were queued. Weights for transfer learning come from the experiments it ran, by id or name.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ml.context import RunContext
from ml.errors import MLError
from ml.fanout.base import FINAL, ChildResult
from ml.planners import planner_for
from ml.reporter import RecordingReporter
from ml.spec import parse_spec

_IDS = itertools.count(1)  # unique in the process: study names derive from experiment ids


@dataclass
class LocalExperiment:
    """One experiment run by a `LocalHost`."""

    id: int
    name: str
    spec: dict[str, Any]
    status: str = "queued"
    summary: dict[str, Any] | None = None
    error: str | None = None
    seconds: float | None = None
    reporter: RecordingReporter = field(default_factory=RecordingReporter)
    children: list[int] = field(default_factory=list)

    def result(self) -> ChildResult:
        """As a parent's planner sees it."""
        return ChildResult(self.id, self.name, self.status, self.spec, self.summary, self.error, self.seconds)


class LocalHost:
    """Runs experiments in-process and keeps them (metrics, artifacts) in memory.

    Args:
        optuna_storage: where search studies live (None: this process's memory).
    """

    def __init__(self, optuna_storage: str | None = None) -> None:
        self.optuna_storage = optuna_storage
        self.experiments: dict[int, LocalExperiment] = {}

    def context(self, experiment_id: int) -> RunContext:
        """The run context the workers would give experiment `experiment_id`."""
        return RunContext(experiment_id, self.optuna_storage, load_weights=self.load_weights)

    def load_weights(self, ref: str) -> bytes | None:
        """The ``model.pt`` of a finished experiment, by id or by name (the latest of that name).

        Raises:
            LookupError: no succeeded experiment has that id or name.
        """
        found = [e for e in self.experiments.values() if e.status == "succeeded" and ref in (str(e.id), e.name)]
        if not found:
            raise LookupError(f"no succeeded experiment with id or name {ref!r}")
        return found[-1].reporter.artifacts.get("model.pt")

    def metrics(self, child_id: int) -> list[dict[str, Any]]:
        """`ChildData`: a child's per-epoch rows."""
        return list(self.experiments[child_id].reporter.rows)

    def artifact(self, child_id: int, name: str) -> bytes | None:
        """`ChildData`: one of a child's artifacts."""
        return self.experiments[child_id].reporter.artifacts.get(name)

    def run(self, spec: dict[str, Any]) -> LocalExperiment:
        """Run a spec (and, for a fan-out, all its children) to a final state.

        Args:
            spec: any experiment spec, as a dict.

        Returns:
            The finished experiment (its `children` hold the ids of its children).
        """
        experiment = self._create(spec)
        self._run(experiment)
        return experiment

    def _create(self, spec: dict[str, Any]) -> LocalExperiment:
        experiment = LocalExperiment(next(_IDS), str(spec.get("name", "")), spec)
        self.experiments[experiment.id] = experiment
        return experiment

    def _run(self, experiment: LocalExperiment) -> None:
        from ml.run import run_experiment

        started = time.perf_counter()
        parsed = parse_spec(experiment.spec)
        planner = planner_for(parsed, self.context(experiment.id))
        experiment.status = "running"
        try:
            if planner is None:
                ctx = self.context(experiment.id)
                experiment.summary = run_experiment(parsed, experiment.reporter, context=ctx)
            else:
                self._fan_out(experiment, parsed, planner.initial(parsed))
            experiment.status = "succeeded"
        except MLError as exc:  # Pruned and Cancelled included: a failed run, as the workers record it
            experiment.status, experiment.error = "failed", str(exc)
        experiment.seconds = round(time.perf_counter() - started, 3)

    def _fan_out(self, parent: LocalExperiment, spec: Any, plans: list[Any]) -> None:
        queue: deque[LocalExperiment] = deque()
        while True:
            for plan in plans:
                child = self._create(plan.spec)
                parent.children.append(child.id)
                queue.append(child)
            if not queue:
                break
            self._run(queue.popleft())
            children = [self.experiments[i].result() for i in parent.children]
            planner = planner_for(spec, self.context(parent.id))  # a new planner each step, as on the workers
            assert planner is not None
            plans = planner.advance(spec, children)
        children = [self.experiments[i].result() for i in parent.children]
        assert all(c.status in FINAL for c in children)
        planner = planner_for(spec, self.context(parent.id))
        assert planner is not None
        parent.summary = planner.summarize(spec, children, self, parent.reporter)

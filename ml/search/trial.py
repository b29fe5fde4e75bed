"""The trial side of a search: report each epoch's validation metric to the Optuna study, and stop
when the pruner says the trial is hopeless (`ml.errors.Pruned`).

A trial child carries `trial: {study, number, metric, pruner}` in its spec; the storage comes
from the worker that runs it (`RunContext.optuna_storage`), never from the spec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ml.context import RunContext
from ml.errors import Pruned
from ml.reporter import Reporter
from ml.spec.trial import TrialSpec

if TYPE_CHECKING:
    import optuna

PRUNED_ATTR = "pruned_at_epoch"


class TrialReporter(Reporter):
    """Forwards everything to `inner`; after each epoch also reports the trial's metric to the
    study and raises `Pruned` when the study's pruner says so.

    Args:
        inner: the run's reporter.
        trial: the live Optuna trial.
        spec: the spec's trial block (which metric to report).
    """

    def __init__(self, inner: Reporter, trial: optuna.Trial, spec: TrialSpec) -> None:
        # Every other hook goes straight to the inner reporter (hooks added later included).
        for name in dir(Reporter):
            if not name.startswith("_") and name != "on_epoch_end":
                setattr(self, name, getattr(inner, name))
        self.inner = inner
        self.trial = trial
        self.spec = spec
        self.split, _, self.name = ("validation.value" if spec.metric == "value" else spec.metric).partition(".")

    def on_epoch_end(self, step: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        self.inner.on_epoch_end(step, metrics)
        value = metrics.get(self.split, {}).get(self.name)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            # The study is the channel back to the parent: it tells the trial PRUNED.
            self.trial.set_user_attr(PRUNED_ATTR, step)
            raise Pruned(
                f"stopped at epoch {step} by the {self.spec.pruner.name} pruner: {self.spec.metric} {value:.4g} "
                "is worse than what the other trials had reached by then"
            )


def trial_reporter(spec: Any, reporter: Reporter, context: RunContext | None) -> Reporter:
    """`reporter`, wrapped to report to the study when `spec` is a search trial.

    Args:
        spec: a train or analytic spec (its `trial` block may be None).
        reporter: the run's reporter.
        context: where the study is stored (None or no storage: this process's memory).

    Returns:
        The reporter to run with. A trial whose study cannot be found runs unpruned, with a note.
    """
    trial_spec: TrialSpec | None = getattr(spec, "trial", None)
    if trial_spec is None:
        return reporter
    from ml.search.study import build_pruner, load_trial  # optuna is imported by trials only

    storage = context.optuna_storage if context else None
    try:
        pruner = build_pruner(trial_spec.pruner, trial_spec.max_epochs)
        trial = load_trial(trial_spec.study, trial_spec.number, storage, pruner)
    except (KeyError, ValueError) as exc:
        reporter.log(f"search trial {trial_spec.number}: study {trial_spec.study!r} not found ({exc}); no pruning")
        return reporter
    return TrialReporter(reporter, trial, trial_spec)

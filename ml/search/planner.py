"""Hyperparameter search as a fan-out: each trial a child experiment, planned with Optuna's
ask/tell.

`initial` asks `parallel` trials; every time a trial child is final, the host calls `advance`
(under the parent row's lock, so ask/tell is serialized), which tells the study how the trial
ended and asks new ones until the budget is used: at most `parallel` trials are queued or running
at once. A failed trial does not end the search unless `max_failed` trials failed. A pruned trial
(its child raised `Pruned` and marked the trial in the study) is a state of its own.

The study lives in `RunContext.optuna_storage` under ``trainlab-search-<experiment id>``; the
host builds a new planner for every step, so nothing is kept between calls but the study.
"""

from __future__ import annotations

import copy
import math
import uuid
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ml.context import RunContext
from ml.errors import MLError
from ml.fanout.base import FINAL, ChildData, ChildPlan, ChildResult, Planner
from ml.reporter import Reporter
from ml.search.study import budget, build_sampler, decode, distributions, encode, optuna_storage
from ml.search.trial import PRUNED_ATTR
from ml.spec.search import SearchExperimentSpec, set_path
from ml.spec.trial import TrialSpec

STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


def study_name(context: RunContext) -> str:
    """The study of a search: derived from the parent experiment's id (unique when there is none)."""
    if context.experiment_id is not None:
        return f"trainlab-search-{context.experiment_id}"
    return f"trainlab-search-local-{uuid.uuid4().hex[:12]}"


class SearchPlanner(Planner):
    """Plans the trials of a `search` experiment.

    Args:
        context: the parent's id (names the study) and the Optuna storage.
    """

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.study_name = study_name(context)

    def study(self, spec: SearchExperimentSpec) -> optuna.Study:
        """The search's study (created on first use), with a sampler seeded for this step."""
        storage = optuna_storage(self.context.optuna_storage)
        try:
            study = optuna.load_study(study_name=self.study_name, storage=storage)
        except KeyError:
            study = optuna.create_study(
                study_name=self.study_name, storage=storage, direction=spec.direction, load_if_exists=True
            )
        study.sampler = build_sampler(spec, spec.seed + 7919 * len(study.get_trials(deepcopy=False)))
        return study

    def initial(self, spec: SearchExperimentSpec) -> list[ChildPlan]:
        """Ask the first `parallel` trials (the enqueued points first)."""
        study = self.study(spec)
        for point in spec.enqueue:
            study.enqueue_trial({path: encode(value) for path, value in point.items()}, skip_if_exists=True)
        return self._ask(spec, study, min(spec.parallel, budget(spec)))

    def advance(self, spec: SearchExperimentSpec, children: Sequence[ChildResult]) -> list[ChildPlan]:
        """Tell the study about finished trials; ask new ones while budget and parallelism allow."""
        study = self.study(spec)
        trials = self._tell(spec, study, children)
        failed = sum(1 for t in trials.values() if t.state == TrialState.FAIL)
        if spec.max_failed is not None and failed >= spec.max_failed:
            return []
        running = sum(1 for c in children if c.status not in FINAL)
        return self._ask(spec, study, min(spec.parallel - running, budget(spec) - len(children)))

    def _ask(self, spec: SearchExperimentSpec, study: optuna.Study, n: int) -> list[ChildPlan]:
        plans = []
        space = distributions(spec)
        for _ in range(max(0, n)):
            trial = study.ask(space)
            params = {path: decode(spec.space[path], trial.params[path]) for path in spec.space}
            child = self._child_spec(spec, trial.number, params)
            plans.append(ChildPlan(child["name"], child, {"trial": trial.number, **params}))
        return plans

    def _child_spec(self, spec: SearchExperimentSpec, number: int, params: dict[str, Any]) -> dict[str, Any]:
        child = copy.deepcopy(spec.base_dict())
        for path, value in params.items():
            set_path(child, path, value)
        child["name"] = f"{spec.name} trial {number}"
        # The pruners' largest resource: the base's epochs (the same for every trial).
        epochs = spec.base.train.epochs if spec.base.kind == "train" else None
        trial = TrialSpec(study=self.study_name, number=number, metric=spec.metric, pruner=spec.pruner)
        trial.max_epochs = epochs
        if spec.method == "hypergradient":
            hd = spec.hypergradient
            if spec.base.kind == "analytic":
                child["descent"] = {"steps": hd.steps, "lr": hd.lr, "hypergradient": {"beta": hd.beta, "rule": hd.rule}}
            else:
                trial.hypergradient = hd
        child["trial"] = trial.model_dump(mode="json", exclude_none=True)
        return child

    def _tell(
        self, spec: SearchExperimentSpec, study: optuna.Study, children: Sequence[ChildResult]
    ) -> dict[int, FrozenTrial]:
        """Tell every final child's trial that is still running; return this search's trials by number."""
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        sampler = study.sampler
        if isinstance(sampler, optuna.samplers.GridSampler):
            # Its after_trial stops an `optimize` loop once the grid is done; there is none here.
            study.sampler = optuna.samplers.RandomSampler()
        for child in children:
            number = _number(child)
            trial = by_number.get(number)
            if child.status not in FINAL or trial is None or trial.state.is_finished():
                continue
            value = objective_value(spec.metric, child, trial) if child.status == "succeeded" else None
            if value is not None:
                study.tell(number, value)
            elif child.status == "pruned" or (child.status == "failed" and PRUNED_ATTR in trial.user_attrs):
                study.tell(number, state=TrialState.PRUNED)
            else:
                study.tell(number, state=TrialState.FAIL)
        study.sampler = sampler
        numbers = {_number(c) for c in children}
        return {t.number: t for t in study.get_trials(deepcopy=False) if t.number in numbers}

    def summarize(
        self, spec: SearchExperimentSpec, children: Sequence[ChildResult], data: ChildData, reporter: Reporter
    ) -> dict[str, Any]:
        """Best trial, the table of trials, parameter importances and plots."""
        from ml.search.plots import optimization_history_png, parallel_coordinates_png

        study = self.study(spec)
        trials = self._tell(spec, study, children)
        rows = [_row(spec, child, trials.get(_number(child))) for child in children]
        complete = [r for r in rows if r["state"] == "complete"]
        failed = [r for r in rows if r["state"] == "failed"]
        best = (min if spec.direction == "minimize" else max)(complete, key=lambda r: r["value"]) if complete else None
        if spec.max_failed is not None and len(failed) >= spec.max_failed:
            raise MLError(_failure(f"{len(failed)} trials failed (max_failed {spec.max_failed})", failed, best))
        if best is None:
            raise MLError(_failure("no trial completed", failed, None))
        best_child = next(c for c in children if c.id == best["experiment"])
        summary: dict[str, Any] = {
            "method": spec.method,
            "study": self.study_name,
            "objective": {"metric": spec.metric, "direction": spec.direction},
            "budget": budget(spec),
            "best": {k: best[k] for k in ("trial", "experiment", "value", "params", "adapted") if k in best},
            "counts": {s: sum(1 for r in rows if r["state"] == s) for s in ("complete", "pruned", "failed")},
            "trials": rows,
            "importances": None,
        }
        if spec.method == "hypergradient":
            summary["evaluations"] = sum(int((c.summary or {}).get("evaluations", 0)) for c in children)
        if best_child.summary and "test" in best_child.summary:
            summary["test"] = best_child.summary["test"]  # the chosen model's test metrics, chosen on validation
        summary["importances"], note = importances(study, spec, [trials[r["trial"]] for r in complete])
        if note:
            summary["importances_note"] = note
        title = f"{spec.name}: {spec.method}"
        reporter.save_artifact(
            "optimization_history.png", optimization_history_png(rows, spec.direction, spec.metric, title), "image/png"
        )
        if len(complete) >= 2:
            png = parallel_coordinates_png(rows, spec.space, spec.metric, spec.direction, title)
            reporter.save_artifact("parallel_coordinates.png", png, "image/png")
        return summary


def _number(child: ChildResult) -> int:
    return int(child.spec["trial"]["number"])


def objective_value(metric: str, child: ChildResult, trial: FrozenTrial | None = None) -> float | None:
    """A finished trial's objective from its summary, None when it has none (or not a number).

    ``validation.<name>`` is the evaluated model's validation metric; a metric only recorded per
    epoch (the loss) is taken at the epoch whose weights were kept (the best one when early
    stopping restores it, else the last).
    """
    summary = child.summary or {}
    split, _, name = ("validation.value" if metric == "value" else metric).partition(".")
    value = (summary.get(split) or {}).get(name)
    if value is None:
        value = ((summary.get("final") or {}).get(split) or {}).get(name)
        stopping = (child.spec.get("train") or {}).get("early_stopping")
        best_epoch = summary.get("best_epoch")
        restored = bool(stopping) and (stopping or {}).get("restore_best", True)
        if trial is not None and restored and best_epoch in trial.intermediate_values:
            value = trial.intermediate_values[best_epoch]
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value)


def _row(spec: SearchExperimentSpec, child: ChildResult, trial: FrozenTrial | None) -> dict[str, Any]:
    state = STATES.get(trial.state, "failed") if trial is not None else "failed"
    params = {p: decode(spec.space[p], v) for p, v in trial.params.items() if p in spec.space} if trial else {}
    row: dict[str, Any] = {
        "trial": _number(child),
        "experiment": child.id,
        "params": params,
        "value": trial.value if trial is not None and state == "complete" else None,
        "state": state,
        "seconds": child.seconds,
    }
    if spec.method == "hypergradient" and child.summary:
        # The trial's parameters are its starting point; where the descent took it:
        adapted = child.summary.get("hypergradient") or {}
        row["adapted"] = (
            {"h1": child.summary.get("h1"), "h2": child.summary.get("h2"), "final_step": adapted.get("final_lr")}
            if spec.base.kind == "analytic"
            else {"final_lr": adapted.get("final_lr")}
        )
    if state == "pruned" and trial is not None:
        row["pruned_at_epoch"] = trial.user_attrs.get(PRUNED_ATTR)
        row["last_value"] = trial.intermediate_values.get(row["pruned_at_epoch"]) if row["pruned_at_epoch"] else None
    if state == "failed":
        row["error"] = (child.error or f"{child.status} without an objective value ({spec.metric})")[:300]
    return row


def importances(
    study: optuna.Study, spec: SearchExperimentSpec, complete: list[FrozenTrial]
) -> tuple[dict[str, float] | None, str | None]:
    """fANOVA parameter importances over the complete trials, or None and why not."""
    if len(complete) < 2 or len(spec.space) < 2:
        return None, "importances need at least 2 complete trials and 2 parameters"
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=spec.seed)
        values = optuna.importance.get_param_importances(study, evaluator=evaluator, params=list(spec.space))
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return None, f"importances could not be computed: {exc}"
    return {k: round(float(v), 4) for k, v in values.items()}, None


def _failure(reason: str, failed: list[dict[str, Any]], best: dict[str, Any] | None) -> str:
    errors = "; ".join(f"trial {r['trial']}: {r.get('error')}" for r in failed[:3])
    text = f"search stopped: {reason}. First errors: {errors or 'none'}"
    if best is not None:
        text += f". Best so far: trial {best['trial']}, value {best['value']:.4g}, params {best['params']}"
    return text

"""Bagging as a fan-out: each member a child experiment trained on its own sample of the training
rows; the parent combines the members' test predictions (their ``predictions.csv``).

The split is the same for every member (the same seed), so the members are validated and tested
on the same rows; only the training rows differ (`data.sample`, applied by `ml.data.subsets`).
Combination: majority vote (ties go to the class with the higher mean probability) or the mean of
the class probabilities; a regression ensemble predicts the members' mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ml.errors import MLError
from ml.evaluation.metrics import evaluate_classification, evaluate_regression
from ml.fanout.base import ChildData, ChildPlan, ChildResult, Planner, children_predictions
from ml.fanout.kfold import sample_std
from ml.reporter import Reporter
from ml.spec.ensemble import EnsembleExperimentSpec

REGRESSION_NAMES = ("rmse", "mae", "mse", "r2")


def vote_scores(predicted: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Majority vote as class scores: each class's share of the votes, ties broken by mean probability.

    Args:
        predicted: (members, rows) predicted class of each member.
        proba: (members, rows, classes) each member's class probabilities.

    Returns:
        (rows, classes) scores summing to 1 per row, whose argmax is the majority class (half
        the mean probability is added to the vote counts: it decides ties, never a majority).
    """
    members, rows, classes = proba.shape
    votes = np.zeros((rows, classes))
    for member in predicted.astype(np.int64):
        votes[np.arange(rows), member] += 1
    return (votes + 0.5 * proba.mean(axis=0)) / (members + 0.5)


def combine_classification(predicted: np.ndarray, proba: np.ndarray, method: str) -> np.ndarray:
    """The ensemble's class scores, by ``vote`` or ``mean_proba``."""
    return vote_scores(predicted, proba) if method == "vote" else proba.mean(axis=0)


class EnsemblePlanner(Planner):
    """Plans the members of an `ensemble` experiment and combines them."""

    def initial(self, spec: EnsembleExperimentSpec) -> list[ChildPlan]:
        """One member per sample of the training rows."""
        plans = []
        for i in range(spec.members):
            child = {"kind": "train", **spec.base.model_dump(mode="json", exclude_unset=True)}
            child["data"] = {**child["data"], "sample": {"method": spec.sampling, "index": i, "of": spec.members}}
            child["data"]["sample"]["seed"] = spec.seed
            child["name"] = f"{spec.name} member {i + 1}/{spec.members}"
            plans.append(ChildPlan(child["name"], child, {"member": i}))
        return plans

    def summarize(
        self, spec: EnsembleExperimentSpec, children: Sequence[ChildResult], data: ChildData, reporter: Reporter
    ) -> dict[str, Any]:
        """Each member's test metrics, their spread, and the ensemble's."""
        done = [c for c in children if c.status == "succeeded" and c.summary]
        if len(done) < 2:
            raise MLError(f"only {len(done)} of {len(children)} members succeeded; an ensemble needs 2")
        tables = children_predictions(done, data)
        if any(not np.array_equal(t["row"], tables[0]["row"]) for t in tables):
            raise MLError("the members were not tested on the same rows")
        members = [_member_row(i, c) for i, c in enumerate(done)]
        test = self._combined_test(spec, done, tables)
        spread = spread_of([m["test"] for m in members])
        summary: dict[str, Any] = {
            "members": members,
            "member_spread": spread,
            "ensemble": {
                "members": len(done),
                "sampling": spec.sampling,
                "combine": spec.combine if "p0" in tables[0] else "mean",
                "test": test,
            },
            "test": test,
            "gain_over_member_mean": {
                k: round(float(v) - spread[k]["mean"], 6)
                for k, v in test.items()
                if k in spread and isinstance(v, int | float)
            },
            "test_rows": int(len(tables[0]["row"])),
        }
        failed = [f"{c.name}: {c.status} ({c.error})" for c in children if c not in done]
        if failed:
            summary["failed_members"] = failed
        return summary

    def _combined_test(
        self, spec: EnsembleExperimentSpec, done: Sequence[ChildResult], tables: list[dict[str, np.ndarray]]
    ) -> dict[str, Any]:
        truth = tables[0]["true"]
        if "p0" not in tables[0]:
            metrics = [m for m in spec.base.evaluate.metrics if m in REGRESSION_NAMES]
            return evaluate_regression(truth, np.mean([t["predicted"] for t in tables], axis=0), metrics)
        k = sum(1 for key in tables[0] if key.startswith("p") and key[1:].isdigit())
        proba = np.stack([np.stack([t[f"p{c}"] for c in range(k)], axis=1) for t in tables])
        predicted = np.stack([t["predicted"] for t in tables])
        scores = combine_classification(predicted, proba, spec.combine)
        threshold = None
        if k == 2:  # a vote share of one half, or the members' mean threshold on the mean probability
            chosen = [((c.summary or {}).get("threshold") or {}).get("value") for c in done]
            known = [t for t in chosen if t is not None]
            threshold = 0.5 if spec.combine == "vote" or not known else float(np.mean(known))
        names: list[str] | None = ((done[0].summary or {}).get("dataset") or {}).get("classes") or None
        return evaluate_classification(
            truth.astype(int), scores, spec.base.evaluate.metrics, threshold, names, spec.base.evaluate.beta
        )


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "threshold"
    }


def _member_row(i: int, child: ChildResult) -> dict[str, Any]:
    summary = child.summary or {}
    return {
        "member": i + 1,
        "experiment": child.id,
        "train_rows": ((summary.get("dataset") or {}).get("split") or {}).get("train"),
        "test": _scalars(summary.get("test") or {}),
    }


def spread_of(per_member: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Each scalar metric's mean, standard deviation, min and max over the members."""
    names = sorted(set().union(*(m.keys() for m in per_member)))
    out = {}
    for name in names:
        values = np.array([m[name] for m in per_member if name in m], dtype=float)
        out[name] = {
            "mean": float(values.mean()),
            "std": sample_std(list(values)),
            "min": float(values.min()),
            "max": float(values.max()),
            "n": int(len(values)),
        }
    return out

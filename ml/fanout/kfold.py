"""K-fold cross-validation as a fan-out: one child per fold, the test split evaluated once.

Each fold child trains on K-1 folds of the non-test rows and is validated on its own fold; it
computes no test metric. When every fold is done, the parent reports each validation metric's
mean and sample standard deviation over folds, and evaluates the sealed test split once, with
the fold models' averaged predictions (their `predictions.csv`). A chosen decision threshold
(youden, max_f1) is chosen once, on the pooled out-of-fold validation predictions (every
non-test row, each predicted by the one model that did not train on it), not taken from one
fold. The parent also carries the majority baseline and the warnings of a train run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ml.errors import MLError
from ml.evaluation.metrics import (
    accuracy_warning,
    choose_threshold,
    evaluate_classification,
    evaluate_regression,
    majority_baseline,
)
from ml.fanout.base import ChildData, ChildPlan, ChildResult, Planner, children_predictions, read_predictions
from ml.reporter import Reporter


class KFoldPlanner(Planner):
    def initial(self, spec: Any) -> list[ChildPlan]:
        folds = spec.data.split.folds
        plans = []
        for k in range(folds):
            child = spec.model_copy(deep=True)
            child.data.split.fold = k
            child.name = f"{spec.name} fold {k + 1}/{folds}"
            plans.append(ChildPlan(child.name, child.model_dump(mode="json"), {"fold": k}))
        return plans

    def summarize(
        self, spec: Any, children: Sequence[ChildResult], data: ChildData, reporter: Reporter
    ) -> dict[str, Any]:
        done = [c for c in children if c.status == "succeeded" and c.summary]
        if len(done) < len(children):
            failed = [f"{c.name}: {c.status} ({c.error})" for c in children if c not in done]
            raise MLError("not every fold succeeded: " + "; ".join(failed))
        folds = [c.summary.get("validation", {}) for c in done]  # type: ignore[union-attr]
        summary: dict[str, Any] = {
            "folds": len(done),
            "validation": mean_std(folds),
            "std": "sample standard deviation over the folds (n - 1 in the denominator)",
            "per_fold": [
                {"fold": i + 1, "experiment": c.id, **_scalars(f)}
                for i, (c, f) in enumerate(zip(done, folds, strict=True))
            ],
            "diagnosis_by_fold": [c.summary.get("diagnosis", {}).get("verdict") for c in done],  # type: ignore[union-attr]
        }
        summary.update(self._test_once(spec, done, data))
        warnings = [w for c in done for w in (c.summary or {}).get("warnings", []) if "duplicated rows leak" in w]
        summary["warnings"] = summary.get("warnings", []) + warnings[:1]
        return summary

    def _test_once(self, spec: Any, done: Sequence[ChildResult], data: ChildData) -> dict[str, Any]:
        tables = children_predictions(done, data)
        rows, truth = tables[0]["row"], tables[0]["true"]
        if "p0" in tables[0]:
            k = sum(1 for key in tables[0] if key.startswith("p") and key[1:].isdigit())
            proba = np.mean([np.stack([t[f"p{c}"] for c in range(k)], axis=1) for t in tables], axis=0)
            pooled = pooled_validation(done, data)
            threshold = pooled_threshold(spec, pooled, k)
            cut = threshold["value"] if threshold else None
            names = (done[0].summary or {}).get("dataset", {}).get("classes") or None
            y_test = truth.astype(int)
            test = evaluate_classification(y_test, proba, spec.evaluate.metrics, cut, names, spec.evaluate.beta)
            test.setdefault(
                "accuracy",
                evaluate_classification(y_test, proba, ["accuracy"], cut, names)["accuracy"],
            )
            out: dict[str, Any] = {
                "test": test,
                "test_rows": int(len(rows)),
                "test_model": f"mean of {len(done)} fold models",
                "threshold": threshold,
            }
            if pooled is not None:  # every non-test row once: the training rows of the whole k-fold
                y_rows = pooled["true"].astype(int)
                out["baseline"] = majority_baseline(y_rows, y_test, names)
                warning = accuracy_warning(y_rows, test["accuracy"], out["baseline"]["accuracy"], names)
                out["warnings"] = [warning] if warning else []
            return out
        pred = np.mean([t["predicted"] for t in tables], axis=0)
        names = [m for m in spec.evaluate.metrics if m in ("rmse", "mae", "mse", "r2")]
        return {
            "test": evaluate_regression(truth, pred, names),
            "test_rows": int(len(rows)),
            "test_model": f"mean of {len(done)} fold models",
        }


def pooled_validation(done: Sequence[ChildResult], data: ChildData) -> dict[str, np.ndarray] | None:
    """Every fold's `validation_predictions.csv`, stacked: the out-of-fold predictions of all
    non-test rows. None when a fold left none (a fold run before these files existed)."""
    tables = []
    for child in done:
        raw = data.artifact(child.id, "validation_predictions.csv")
        if raw is None:
            return None
        tables.append(read_predictions(raw))
    return {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}


def pooled_threshold(spec: Any, pooled: dict[str, np.ndarray] | None, k: int) -> dict[str, Any] | None:
    """The binary decision threshold: fixed, or chosen once on the pooled out-of-fold validation
    predictions (`evaluate.threshold: youden | max_f1`)."""
    if k != 2:
        return None
    choice = spec.evaluate.threshold
    if choice is None or isinstance(choice, float):
        return {"value": 0.5 if choice is None else choice, "method": "fixed", "chosen_on": None}
    if pooled is None:
        raise MLError("evaluate.threshold needs the folds' validation_predictions.csv; re-run the k-fold")
    value = choose_threshold(pooled["true"].astype(int), pooled["p1"], choice)
    return {
        "value": value,
        "method": choice,
        "chosen_on": f"pooled out-of-fold validation predictions ({len(pooled['true'])} rows)",
    }


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def sample_std(values: Sequence[float]) -> float:
    """The sample standard deviation (n - 1 in the denominator: the runs are a sample of the
    runs one could have made); 0 for a single run."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def mean_std(per_run: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each scalar metric's mean and sample standard deviation (`sample_std`) over runs."""
    names = sorted(set().union(*(_scalars(m).keys() for m in per_run)) - {"threshold"}) if per_run else []
    out = {}
    for name in names:
        values = [float(m[name]) for m in per_run if isinstance(m.get(name), int | float)]
        out[name] = {"mean": float(np.mean(values)), "std": sample_std(values), "n": len(values)}
    return out

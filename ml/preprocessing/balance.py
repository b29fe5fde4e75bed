"""Class balancing and under-sampling: they change the training part only.

Resampling steps return new training rows; on validation and test rows they do nothing (a
`TrainingOnly` passes them through), so the scores are measured on the true class mix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from imblearn.over_sampling import SMOTE, RandomOverSampler
from imblearn.under_sampling import EditedNearestNeighbours, RandomUnderSampler, TomekLinks
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from ml.errors import DataError
from ml.preprocessing.base import FittedStep, StepContext, StepFit, TrainingOnly, class_counts, require_classification
from ml.spec.preprocess import BalanceStep, DeduplicateStep


def _strategy(spec: BalanceStep, y: np.ndarray) -> Any:
    if spec.ratio is None:
        return "auto"
    if len(np.unique(y)) != 2:
        raise DataError(f"balance {spec.method}: ratio needs two classes; leave it out to equalise all classes")
    return spec.ratio


def _smote(spec: BalanceStep, y: np.ndarray, seed: int) -> Any:
    smallest = min(class_counts(y).values())
    if smallest < 2:
        raise DataError("balance smote: a class has a single training row; SMOTE needs at least 2 to interpolate")
    return SMOTE(
        sampling_strategy=_strategy(spec, y), k_neighbors=min(spec.k_neighbors, smallest - 1), random_state=seed
    )


# method -> (spec, training targets, seed) -> an imbalanced-learn sampler
SAMPLERS: dict[str, Callable[[BalanceStep, np.ndarray, int], Any]] = {
    "random_over": lambda spec, y, seed: RandomOverSampler(sampling_strategy=_strategy(spec, y), random_state=seed),
    "smote": _smote,
    "random_under": lambda spec, y, seed: RandomUnderSampler(sampling_strategy=_strategy(spec, y), random_state=seed),
    "tomek": lambda spec, y, seed: TomekLinks(),
    "enn": lambda spec, y, seed: EditedNearestNeighbours(n_neighbors=spec.k_neighbors),
}


def balanced_class_weights(y: np.ndarray) -> np.ndarray:
    """n_rows / (n_classes * n_rows_of_class) per class index (1 for a class absent from y)."""
    counts = np.bincount(y.astype(np.int64))
    present = counts > 0
    weights = np.ones(len(counts), dtype=np.float64)
    weights[present] = len(y) / (present.sum() * counts[present])
    return weights


def fit_balance(spec: BalanceStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext) -> FittedStep:
    """Reweight the loss or resample the training rows; report the class counts before/after."""
    require_classification(ctx, "balance")
    before = class_counts(y)
    if spec.method == "class_weight":
        weights = balanced_class_weights(y)
        report: dict[str, Any] = {"method": spec.method, "class_counts_before": before, "class_counts_after": before}
        report["class_weights"] = {str(c): round(float(w), 6) for c, w in enumerate(weights)}
        return FittedStep(TrainingOnly(), X, y, list(names), report, class_weights=weights)
    sampler = SAMPLERS[spec.method](spec, y, ctx.seed)
    try:
        X_out, y_out = sampler.fit_resample(X, y)
    except ValueError as exc:
        raise DataError(f"balance {spec.method}: {exc}") from exc
    report = {
        "method": spec.method,
        "class_counts_before": before,
        "class_counts_after": class_counts(y_out),
        "rows_before": int(len(y)),
        "rows_after": int(len(y_out)),
    }
    if spec.method == "smote":
        report["k_neighbors"] = int(sampler.k_neighbors)
    return FittedStep(TrainingOnly(sampler), np.asarray(X_out), np.asarray(y_out), list(names), report)


def validation_class_weights(
    y_fit: np.ndarray, class_weights: np.ndarray | None, y_val: np.ndarray, n_classes: int
) -> np.ndarray:
    """Per-class weights under which the validation loss measures the class mix the training
    loss measures (the training part after resampling, times its class weights).

    Balancing changes what the training loss averages over: after `random_under` to 50/50, or
    with class weights, each class counts about equally, while the validation rows keep the true
    5/95 mix. Compared unweighted, the two losses disagree by construction (the validation loss
    rises as the balanced model learns, and early stopping keeps epoch 1). Weighted by
    (training share / validation share) of its class, every validation row counts as its class
    does in training, and the two curves measure the same thing.
    """
    fit_counts = np.bincount(np.asarray(y_fit, dtype=np.int64), minlength=n_classes).astype(np.float64)
    if class_weights is not None:
        fit_counts = fit_counts * np.asarray(class_weights, dtype=np.float64)[:n_classes]
    val_counts = np.bincount(np.asarray(y_val, dtype=np.int64), minlength=n_classes).astype(np.float64)
    weights = np.ones(n_classes, dtype=np.float64)
    if fit_counts.sum() <= 0 or val_counts.sum() <= 0:
        return weights
    present = val_counts > 0
    weights[present] = (fit_counts[present] / fit_counts.sum()) / (val_counts[present] / val_counts.sum())
    return weights


def near_duplicates(Z: np.ndarray, y: np.ndarray | None, tolerance: float) -> np.ndarray:
    """A mask of rows to drop: every row within `tolerance` of an earlier kept row (with the same
    label when `y` is given). The kept rows are then pairwise at least `tolerance` apart."""
    neighbours = NearestNeighbors(radius=tolerance).fit(Z).radius_neighbors(Z, return_distance=False)
    drop = np.zeros(len(Z), dtype=bool)
    for i, near in enumerate(neighbours):
        if drop[i]:
            continue
        later = near[near > i]
        if y is not None:
            later = later[y[later] == y[i]]
        drop[later] = True
    return drop


def fit_deduplicate(
    spec: DeduplicateStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext
) -> FittedStep:
    """Drop near-duplicate training rows (distances measured in standardized units)."""
    scaler = StandardScaler().fit(X)
    labels = y if (spec.same_label and ctx.task == "classification") else None
    drop = near_duplicates(scaler.transform(X), labels, spec.tolerance)
    report: dict[str, Any] = {
        "tolerance": spec.tolerance,
        "removed": int(drop.sum()),
        "rows_before": int(len(X)),
        "rows_after": int((~drop).sum()),
    }
    if ctx.task == "classification":
        report["class_counts_after"] = class_counts(y[~drop])
    return FittedStep(TrainingOnly(scaler), X[~drop], y[~drop], list(names), report)


BALANCE_STEPS: dict[str, StepFit] = {"balance": fit_balance, "deduplicate": fit_deduplicate}

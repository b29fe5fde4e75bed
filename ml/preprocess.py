"""The preprocessing pipeline: each step is fitted on the training rows only, then applied to
validation and test, and reports what it did.

A step is a name -> builder entry in `STEPS`; the builder returns a scikit-learn transformer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.preprocessing import StandardScaler

from ml.spec import PreprocessStep

# (X_batch, y_batch, generator) -> augmented (X_batch, y_batch); torch tensors on the device.
BatchTransform = Callable[[Any, Any, Any], tuple[Any, Any]]


def _standardize(step: PreprocessStep) -> TransformerMixin:
    return StandardScaler()


def _report_standardize(fitted: Any, names: list[str]) -> dict[str, Any]:
    return {"features": len(names), "mean_range": [float(fitted.mean_.min()), float(fitted.mean_.max())]}


STEPS: dict[str, tuple[Callable[[PreprocessStep], TransformerMixin], Callable[..., dict[str, Any]]]] = {
    "standardize": (_standardize, _report_standardize),
}


@dataclass
class FittedPipeline:
    """Transformers fitted on the training rows, in spec order, with their reports."""

    steps: list[tuple[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    # Per-class loss weights (a class-weight balancing step), for the training loss only.
    class_weights: np.ndarray | None = None
    # Applied to each training batch on the fly, every epoch (augmentation steps).
    batch_transform: BatchTransform | None = None

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Apply every fitted step (used for validation and test rows)."""
        for _, transformer in self.steps:
            X = transformer.transform(X)
        return np.asarray(X, dtype=np.float32)


def fit_preprocessing(
    steps: list[PreprocessStep],
    X_train: np.ndarray,
    y_train: np.ndarray,
    feature_names: list[str],
    *,
    task: str = "classification",
    seed: int = 0,
    image_shape: tuple[int, ...] | None = None,
) -> tuple[FittedPipeline, np.ndarray, np.ndarray]:
    """Fit the pipeline on the training rows only.

    Args:
        steps: the spec's preprocess list, in order.
        X_train: training features (never validation or test rows).
        y_train: training targets (resampling steps change them).
        feature_names: names of the input columns.
        task: classification or regression.
        seed: seeds every random step.
        image_shape: (channels, height, width) when rows are flattened images.

    Returns:
        The fitted pipeline, the transformed training features and the training targets.
    """
    pipeline = FittedPipeline(feature_names=list(feature_names))
    X = X_train
    for step in steps:
        build, report = STEPS[step.step]
        transformer = build(step)
        X = transformer.fit_transform(X)
        pipeline.steps.append((step.step, transformer))
        pipeline.reports.append(
            {"step": step.step, "fitted_on_rows": int(len(X_train)), **report(transformer, pipeline.feature_names)}
        )
    return pipeline, np.asarray(X, dtype=np.float32), y_train

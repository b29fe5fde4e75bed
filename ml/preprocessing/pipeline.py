"""The preprocessing pipeline: steps fitted on the training rows only, in spec order.

`fit_preprocessing` fits each step on the training rows as the previous steps left them and
returns a `FittedPipeline`, which applies the fitted steps to validation and test rows (where
resampling and augmentation steps do nothing), plus what the training loop needs: class weights
for the loss and a transform of every training batch (on-the-fly augmentation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.errors import DataError
from ml.preprocessing.augment import AUGMENT_STEPS
from ml.preprocessing.balance import BALANCE_STEPS
from ml.preprocessing.base import BatchTransform, StepContext, StepFit
from ml.preprocessing.extraction import EXTRACTION_STEPS
from ml.preprocessing.scaling import SCALING_STEPS
from ml.preprocessing.selection import SELECTION_STEPS
from ml.preprocessing.transforms import TRANSFORM_STEPS
from ml.spec import PreprocessStep
from ml.spec.base import Task

# name -> fit(spec, X_train, y_train, names, context). Adding a step is one entry.
STEPS: dict[str, StepFit] = {
    **SCALING_STEPS,
    **SELECTION_STEPS,
    **EXTRACTION_STEPS,
    **TRANSFORM_STEPS,
    **BALANCE_STEPS,
    **AUGMENT_STEPS,
}


@dataclass
class FittedPipeline:
    """Steps fitted on the training rows, in spec order, with their reports.

    Attributes:
        steps: (name, fitted transformer) pairs; each transformer has ``transform(X)``.
        reports: one dict per step for the experiment summary.
        feature_names: the column names after the pipeline.
        class_weights: per-class weights of the training loss, or None.
        batch_transform: augments each training batch on the fly, or None.
    """

    steps: list[tuple[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    class_weights: np.ndarray | None = None
    batch_transform: BatchTransform | None = None

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Apply every fitted step to validation or test rows (never resampled nor augmented)."""
        if len(X) == 0:
            return np.empty((0, len(self.feature_names)), dtype=np.float32)
        for _, transformer in self.steps:
            X = transformer.transform(X)
        return np.asarray(X, dtype=np.float32)


def _compose(first: BatchTransform | None, second: BatchTransform) -> BatchTransform:
    if first is None:
        return second

    def both(xb: Any, yb: Any, generator: Any) -> tuple[Any, Any]:
        return second(*first(xb, yb, generator), generator)

    return both


def _check_image_columns(needed: list[str] | None, names: list[str]) -> None:
    if needed is not None and needed != names:
        raise DataError(
            "image augmentation needs every pixel column in place at the end of the pipeline; a later "
            f"step changed them ({len(needed)} pixel columns -> {len(names)} columns): put it after them or "
            "drop it"
        )


def fit_preprocessing(
    steps: list[PreprocessStep],
    X_train: np.ndarray,
    y_train: np.ndarray,
    feature_names: list[str],
    *,
    task: Task = "classification",
    seed: int = 0,
    image_shape: tuple[int, ...] | None = None,
    n_classes: int | None = None,
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
        n_classes: classification: the model's outputs (cutmix's soft labels are that wide).

    Returns:
        The fitted pipeline, the transformed training features and the training targets.

    Raises:
        DataError: a step does not fit the data (a missing column, a regression task for
            class balancing, image augmentation without images...).
    """
    context = StepContext(task=task, seed=seed, image_shape=image_shape, n_classes=n_classes)
    pipeline = FittedPipeline(feature_names=list(feature_names))
    X, y = np.asarray(X_train), np.asarray(y_train)
    needs_names: list[str] | None = None
    for spec in steps:
        rows = len(X)
        fitted = STEPS[spec.step](spec, X, y, pipeline.feature_names, context)
        X, y, pipeline.feature_names = fitted.X, fitted.y, fitted.names
        pipeline.steps.append((spec.step, fitted.transformer))
        pipeline.reports.append({"step": spec.step, "fitted_on_rows": int(rows), **fitted.report})
        if fitted.class_weights is not None:
            previous = pipeline.class_weights
            pipeline.class_weights = fitted.class_weights if previous is None else previous * fitted.class_weights
        if fitted.batch_transform is not None:
            pipeline.batch_transform = _compose(pipeline.batch_transform, fitted.batch_transform)
        needs_names = fitted.needs_names or needs_names
    _check_image_columns(needs_names, pipeline.feature_names)
    return pipeline, np.asarray(X, dtype=np.float32), y

"""The preprocessing pipeline: steps fitted on the training rows only, in spec order.

`fit_preprocessing` fits each step on the training rows as the previous steps left them and
returns a `FittedPipeline`, which applies the fitted steps to validation and test rows (where
resampling and augmentation steps do nothing), plus what the training loop needs: class weights
for the loss and a transform of every training batch (on-the-fly augmentation).

`fit_streamed_preprocessing` does the same for a data set streamed shard by shard (larger than
the worker's memory budget): scaling statistics are accumulated over the training rows' shards
(running mean and variance, running min and max); the steps that need every row at once (PCA,
feature selection, resampling...) are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from ml.errors import DataError
from ml.preprocessing.augment import AUGMENT_STEPS
from ml.preprocessing.balance import BALANCE_STEPS
from ml.preprocessing.base import BatchTransform, FittedStep, StepContext, StepFit, rounded
from ml.preprocessing.extraction import EXTRACTION_STEPS
from ml.preprocessing.scaling import SCALING_STEPS, GlobalMinMaxScaler
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
        X, y = fitted.X, fitted.y
        needs_names = _add(pipeline, spec.step, fitted, rows) or needs_names
    _check_image_columns(needs_names, pipeline.feature_names)
    return pipeline, np.asarray(X, dtype=np.float32), y


def _add(pipeline: FittedPipeline, step: str, fitted: FittedStep, rows: int) -> list[str] | None:
    """Record a fitted step in the pipeline; returns the columns its batch transform needs."""
    pipeline.feature_names = fitted.names
    pipeline.steps.append((step, fitted.transformer))
    pipeline.reports.append({"step": step, "fitted_on_rows": int(rows), **fitted.report})
    if fitted.class_weights is not None:
        previous = pipeline.class_weights
        pipeline.class_weights = fitted.class_weights if previous is None else previous * fitted.class_weights
    if fitted.batch_transform is not None:
        pipeline.batch_transform = _compose(pipeline.batch_transform, fitted.batch_transform)
    return fitted.needs_names


# Steps that learn nothing from the rows' values (augmentation: a batch transform): fitted on no
# rows, as are class weights (the targets only). Scaling steps accumulate their statistics shard
# by shard.
ROW_FREE_STEPS = tuple(AUGMENT_STEPS)
STREAMED_SCALING = ("standardize", "minmax")


STATISTICS_BLOCK_BYTES = 2**18  # rows a statistic is updated with at once (its float64 temporaries)


def _blocks(chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    for X in chunks:
        step = max(1, STATISTICS_BLOCK_BYTES // (8 * max(X.shape[1], 1)))
        for start in range(0, len(X), step):
            yield X[start : start + step]


def _streamed_scaler(spec: Any, chunks: Iterator[np.ndarray]) -> tuple[Any, dict[str, Any]]:
    """A scaling step's transformer fitted on the training rows, chunk by chunk: a running mean
    and variance (standardize), a running min and max (minmax)."""
    if spec.step == "standardize":
        scaler: Any = StandardScaler(copy=False)
        for X in _blocks(chunks):
            scaler.partial_fit(X)
        return scaler, {"mean_range": rounded([scaler.mean_.min(), scaler.mean_.max()])}
    if spec.per_feature:
        scaler = MinMaxScaler(feature_range=spec.feature_range, copy=False)
        for X in _blocks(chunks):
            scaler.partial_fit(X)
        low, high = float(scaler.data_min_.min()), float(scaler.data_max_.max())
    else:
        scaler = GlobalMinMaxScaler(spec.feature_range)
        low, high = np.inf, -np.inf
        for X in chunks:
            if len(X):
                low, high = min(low, float(np.nanmin(X))), max(high, float(np.nanmax(X)))
        scaler.data_min_, scaler.data_max_ = low, high
    return scaler, {"per_feature": spec.per_feature, "data_range": rounded([low, high])}


def fit_streamed_preprocessing(
    steps: list[PreprocessStep],
    training_chunks: Callable[[], Iterator[np.ndarray]],
    y_train: np.ndarray,
    feature_names: list[str],
    *,
    streamed: str,
    task: Task = "classification",
    seed: int = 0,
    image_shape: tuple[int, ...] | None = None,
    n_classes: int | None = None,
) -> FittedPipeline:
    """Fit the pipeline on training rows that are read a chunk (shard) at a time.

    Args:
        steps: the spec's preprocess list, in order.
        training_chunks: a fresh pass over the training rows' features, a chunk at a time.
        y_train: the training targets.
        feature_names: names of the input columns.
        streamed: what is streamed and why (the data's size and the budget), for errors.
        task, seed, image_shape, n_classes: as `fit_preprocessing`.

    Returns:
        The fitted pipeline (the training rows are transformed as they are streamed). Its
        scalers transform the rows they are given in place (a stream's chunk is its own copy):
        one copy of a chunk fewer in memory.

    Raises:
        DataError: a step needs every training row in memory at once (named, with the budget).
    """
    context = StepContext(task=task, seed=seed, image_shape=image_shape, n_classes=n_classes)
    pipeline = FittedPipeline(feature_names=list(feature_names))
    needs_names: list[str] | None = None
    no_rows = np.empty((0, len(feature_names)), dtype=np.float32)
    for spec in steps:
        name = spec.step
        method = getattr(spec, "method", None)
        if name in STREAMED_SCALING:
            passes = (pipeline.transform(X) for X in training_chunks())  # through the steps fitted so far
            scaler, report = _streamed_scaler(spec, passes)
            names = list(pipeline.feature_names)
            fitted = FittedStep(scaler, no_rows, y_train, names, {"features": len(names), **report})
        elif name in ROW_FREE_STEPS or (name == "balance" and method == "class_weight"):
            fitted = STEPS[name](spec, no_rows, y_train, pipeline.feature_names, context)
        else:
            what = f"balance {method}" if name == "balance" else name
            raise DataError(
                f"preprocess step {what} is fitted on every training row in memory at once, and this data set is "
                f"{streamed}; leave the step out (a streamed run takes standardize, minmax, balance "
                "class_weight and augmentation), or raise the worker's TRAINLAB_WORKER_DATA_MEMORY_MB"
            )
        fitted.report["streamed"] = True
        needs_names = _add(pipeline, name, fitted, len(y_train)) or needs_names
    _check_image_columns(needs_names, pipeline.feature_names)
    return pipeline

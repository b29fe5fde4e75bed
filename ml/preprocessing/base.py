"""What every preprocessing step shares: the fitting context, the fitted result, column lookup.

A step is a function ``fit(spec, X, y, names, context) -> FittedStep`` registered by name in
`ml.preprocessing.STEPS`. It sees the training rows only and returns what it learned: the
object that transforms validation/test rows, the transformed training rows (resampling steps
change their number), the new column names and a report for the experiment summary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.errors import DataError
from ml.spec.base import Task

# (X_batch, y_batch, generator) -> augmented (X_batch, y_batch); torch tensors on the device.
BatchTransform = Callable[[Any, Any, Any], tuple[Any, Any]]


@dataclass(frozen=True)
class StepContext:
    """What a step may need besides its rows: the task, the seed, the image geometry and the
    number of classes (the model's outputs; None: the training labels' largest + 1)."""

    task: Task = "classification"
    seed: int = 0
    image_shape: tuple[int, ...] | None = None
    n_classes: int | None = None


@dataclass
class FittedStep:
    """A step fitted on the training rows.

    Attributes:
        transformer: has ``transform(X)``; applied to validation and test rows.
        X: the training rows after the step.
        y: the training targets after the step (resampling changes them).
        names: the column names after the step.
        report: what the step did, for the experiment summary.
        class_weights: per-class weights of the training loss (class balancing).
        batch_transform: augments each training batch on the fly.
        needs_names: the columns the batch transform expects the pipeline to end with.
    """

    transformer: Any
    X: np.ndarray
    y: np.ndarray
    names: list[str]
    report: dict[str, Any]
    class_weights: np.ndarray | None = None
    batch_transform: BatchTransform | None = None
    needs_names: list[str] | None = None


class TrainingOnly:
    """The validation/test side of a step that acts on the training part only: it passes rows
    through unchanged. ``fitted`` keeps what the step learned (a sampler, a neighbour index)."""

    def __init__(self, fitted: Any = None) -> None:
        self.fitted = fitted

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X


def column_index(names: Sequence[str], column: str, step: str) -> int:
    """The position of a named column.

    Raises:
        DataError: naming the missing column and the available ones.
    """
    try:
        return list(names).index(column)
    except ValueError:
        shown = ", ".join(names[:50]) + (f", ... ({len(names)} in all)" if len(names) > 50 else "")
        raise DataError(
            f"{step}: no column named {column!r} at this point of the pipeline; available: {shown}"
        ) from None


def require_classification(context: StepContext, step: str) -> None:
    """Raise a `DataError` unless the task is classification."""
    if context.task != "classification":
        raise DataError(f"{step} needs a classification task, this data set is {context.task}")


def class_counts(y: np.ndarray) -> dict[str, int]:
    """{class: number of rows}, classes in increasing order."""
    values, counts = np.unique(y, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}


def rounded(values: Any, digits: int = 6) -> list[float]:
    """A JSON-able list of floats rounded for reading."""
    return [round(float(v), digits) for v in np.asarray(values).ravel()]


# fit(spec, X_train, y_train, names, context): what every registered step is.
StepFit = Callable[[Any, np.ndarray, np.ndarray, list[str], StepContext], FittedStep]

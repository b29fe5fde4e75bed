"""A check of the course's rule: every preprocessing step is fitted on the training part only.

`find_leakage` refits the pipeline on the training rows alone and compares, step by step, what
both fits do to some other rows (validation or test). A step fitted on more than the training
part (its statistics, selected columns or components then differ) is named.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.errors import MLError
from ml.preprocessing.pipeline import FittedPipeline, fit_preprocessing
from ml.spec import PreprocessStep


class PreprocessingLeak(MLError):
    """A preprocessing step was fitted on rows outside the training part."""


def find_leakage(
    pipeline: FittedPipeline,
    steps: list[PreprocessStep],
    X_train: np.ndarray,
    y_train: np.ndarray,
    feature_names: list[str],
    X_other: np.ndarray,
    *,
    atol: float = 1e-6,
    **context: Any,
) -> str | None:
    """Why `pipeline` was not fitted on the training rows only, or None when it was.

    Args:
        pipeline: the fitted pipeline to check.
        steps: the spec's steps it was fitted from.
        X_train, y_train: the training part (the only rows it may have learned from).
        feature_names: the input column names.
        X_other: rows outside the training part (validation or test) to compare outputs on.
        atol: the largest difference that counts as equal.
        context: task, seed and image_shape, as given to `fit_preprocessing`.
    """
    reference, _, _ = fit_preprocessing(steps, X_train, y_train, feature_names, **context)
    if len(pipeline.steps) != len(reference.steps):
        return f"the pipeline has {len(pipeline.steps)} steps, the spec {len(reference.steps)}"
    ours, theirs = np.asarray(X_other), np.asarray(X_other)
    for k, ((name, fitted), (_, honest)) in enumerate(zip(pipeline.steps, reference.steps, strict=True), start=1):
        ours, theirs = fitted.transform(ours), honest.transform(theirs)
        if ours.shape != theirs.shape:
            return (
                f"step {k} ({name}) was fitted on rows outside the training part: it gives {ours.shape[1]} "
                f"columns, a fit on the {len(X_train)} training rows {theirs.shape[1]}"
            )
        gap = float(np.max(np.abs(np.asarray(ours, float) - np.asarray(theirs, float)), initial=0.0))
        if not gap <= atol:
            return (
                f"step {k} ({name}) was fitted on rows outside the training part: on other rows its output "
                f"differs from a fit on the {len(X_train)} training rows by up to {gap:.3g}"
            )
    rows = pipeline.reports[0].get("fitted_on_rows") if pipeline.reports else len(X_train)
    if rows != len(X_train):
        return f"step 1 ({pipeline.steps[0][0]}) was fitted on {rows} rows, the training part has {len(X_train)}"
    return None


def assert_fitted_on_training_only(*args: Any, **kwargs: Any) -> None:
    """Raise `PreprocessingLeak` when `find_leakage` (same arguments) finds a leak."""
    reason = find_leakage(*args, **kwargs)
    if reason is not None:
        raise PreprocessingLeak(reason)

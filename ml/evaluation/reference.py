"""What a flexible off-the-shelf model reaches on the same rows: the diagnosis' yardstick for bias.

A training loss barely below the constant prediction's loss does not by itself mean the model is
too simple: on a noisy problem (5 % positives that depend on measurements only through a
probability) the best possible model also gains little. A gradient-boosted tree ensemble
(scikit-learn's HistGradientBoosting, with its own early stopping) fitted on the same
preprocessed training rows, with the same class weights, and scored on the same validation rows
with the same weighting, tells the two apart: if it does clearly better, the run's model is
underfitting; if not, the data holds no more than the model found.
"""

from __future__ import annotations

import warnings

import numpy as np
import sklearn.metrics as skm
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from ml.spec.base import Task

MAX_CELLS = 2_000_000
"""The reference sees at most this many training cells (rows x columns), a random subset."""
MIN_ROWS = 2_000


def reference_loss(
    task: Task,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    n_classes: int = 0,
    class_weights: np.ndarray | None = None,
    val_class_weights: np.ndarray | None = None,
    seed: int = 0,
) -> float | None:
    """The reference model's validation loss, on the run's own loss scale: cross-entropy (nats,
    weighted like the run's validation loss) or mean squared error. None without validation rows
    or when the reference cannot be fitted (e.g. one class only)."""
    if len(y_val) == 0 or len(y_train) < 10:
        return None
    rng = np.random.default_rng(seed)
    cap = max(MIN_ROWS, MAX_CELLS // max(X_train.shape[1], 1))
    rows = rng.choice(len(y_train), size=cap, replace=False) if len(y_train) > cap else np.arange(len(y_train))
    X, y = np.asarray(X_train)[rows], np.asarray(y_train)[rows]
    options = {"max_iter": 300, "early_stopping": True, "validation_fraction": 0.15, "random_state": seed}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task != "classification":
            model = HistGradientBoostingRegressor(**options).fit(X, y)
            return float(skm.mean_squared_error(y_val, model.predict(X_val)))
        if len(np.unique(y)) < 2:
            return None
        weights = None if class_weights is None else np.asarray(class_weights, dtype=np.float64)[y.astype(np.int64)]
        model = HistGradientBoostingClassifier(**options).fit(X, y, sample_weight=weights)
        proba = np.full((len(y_val), n_classes), 1e-12)
        proba[:, model.classes_.astype(np.int64)] = model.predict_proba(X_val)
        proba /= proba.sum(axis=1, keepdims=True)
        val_weights = None
        if val_class_weights is not None:
            val_weights = np.asarray(val_class_weights, dtype=np.float64)[y_val.astype(np.int64)]
        return float(skm.log_loss(y_val, proba, sample_weight=val_weights, labels=list(range(n_classes))))

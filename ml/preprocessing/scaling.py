"""Scaling and imputation: per-column statistics learned from the training rows."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from ml.preprocessing.base import FittedStep, StepContext, StepFit, rounded
from ml.spec.preprocess import ImputeStep, MinMaxStep, RobustStep, StandardizeStep


def _fitted(transformer: Any, X: np.ndarray, y: np.ndarray, names: list[str], report: dict[str, Any]) -> FittedStep:
    return FittedStep(transformer, transformer.transform(X), y, list(names), {"features": len(names), **report})


def fit_standardize(
    spec: StandardizeStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext
) -> FittedStep:
    """Zero mean and unit variance per column."""
    scaler = StandardScaler().fit(X)
    report = {"mean_range": rounded([scaler.mean_.min(), scaler.mean_.max()])}
    return _fitted(scaler, X, y, names, report)


class GlobalMinMaxScaler(TransformerMixin, BaseEstimator):
    """One (min, max) for all columns: pixels keep their relative values."""

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0)) -> None:
        self.feature_range = feature_range

    def fit(self, X: np.ndarray, y: Any = None) -> GlobalMinMaxScaler:
        self.data_min_, self.data_max_ = float(np.nanmin(X)), float(np.nanmax(X))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        low, high = self.feature_range
        span = (self.data_max_ - self.data_min_) or 1.0
        return (np.asarray(X, dtype=np.float64) - self.data_min_) / span * (high - low) + low


def fit_minmax(spec: MinMaxStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext) -> FittedStep:
    """Map the training range onto the feature range, per column or globally."""
    if spec.per_feature:
        scaler: Any = MinMaxScaler(feature_range=spec.feature_range).fit(X)
        low, high = float(scaler.data_min_.min()), float(scaler.data_max_.max())
    else:
        scaler = GlobalMinMaxScaler(spec.feature_range).fit(X)
        low, high = scaler.data_min_, scaler.data_max_
    return _fitted(scaler, X, y, names, {"per_feature": spec.per_feature, "data_range": rounded([low, high])})


def fit_robust(spec: RobustStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext) -> FittedStep:
    """Subtract the median, divide by the inter-quartile range."""
    scaler = RobustScaler().fit(X)
    return _fitted(scaler, X, y, names, {"median_range": rounded([scaler.center_.min(), scaler.center_.max()])})


def fit_impute(spec: ImputeStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext) -> FittedStep:
    """Fill NaNs with the training column's mean, median or most frequent value."""
    imputer = SimpleImputer(strategy=spec.strategy, keep_empty_features=True).fit(X)
    missing = np.isnan(np.asarray(X, dtype=np.float64)).sum(axis=0)
    report = {
        "strategy": spec.strategy,
        "missing_in_training": {n: int(m) for n, m in zip(names, missing, strict=True) if m},
        "fill_values": {n: float(v) for n, v, m in zip(names, imputer.statistics_, missing, strict=True) if m},
    }
    return _fitted(imputer, X, y, names, report)


SCALING_STEPS: dict[str, StepFit] = {
    "standardize": fit_standardize,
    "minmax": fit_minmax,
    "robust": fit_robust,
    "impute": fit_impute,
}

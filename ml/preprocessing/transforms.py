"""Feature transformations chosen from knowledge of the data: polar coordinates, logarithms,
polynomial products. Named columns are looked up by name, with a clear error when missing."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import PolynomialFeatures

from ml.errors import DataError
from ml.preprocessing.base import FittedStep, StepContext, StepFit, column_index, rounded
from ml.spec.preprocess import LogStep, PolarStep, PolynomialStep

# A polynomial expansion may not produce more columns than this (memory on a shared server).
MAX_POLYNOMIAL_FEATURES = 10_000


class PolarTransformer(TransformerMixin, BaseEstimator):
    """Replace columns i and j (x, y) by r and theta, in place; the pole is learned in `fit`."""

    def __init__(self, i: int, j: int, center: str = "origin") -> None:
        self.i, self.j, self.center = i, j, center

    def fit(self, X: np.ndarray, y: Any = None) -> PolarTransformer:
        X = np.asarray(X, dtype=np.float64)
        mean = (X[:, self.i].mean(), X[:, self.j].mean()) if self.center == "mean" else (0.0, 0.0)
        self.pole_ = np.asarray(mean, dtype=np.float64)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        out = np.array(X, dtype=np.float64, copy=True)
        dx, dy = out[:, self.i] - self.pole_[0], out[:, self.j] - self.pole_[1]
        out[:, self.i], out[:, self.j] = np.hypot(dx, dy), np.arctan2(dy, dx)
        return out


def fit_polar(spec: PolarStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext) -> FittedStep:
    """(x, y) -> (r, theta): a ring around the pole becomes a threshold on r."""
    i, j = column_index(names, spec.x, "polar"), column_index(names, spec.y, "polar")
    polar = PolarTransformer(i, j, spec.center).fit(X)
    out_names = list(names)
    out_names[i], out_names[j] = "r", "theta"
    report = {"x": spec.x, "y": spec.y, "replaced_by": ["r", "theta"], "pole": rounded(polar.pole_)}
    return FittedStep(polar, polar.transform(X), y, out_names, report)


class Log1pColumns(TransformerMixin, BaseEstimator):
    """log(1 + value) of some columns. Values below 0 in new rows are clipped to 0 first."""

    def __init__(self, indices: list[int]) -> None:
        self.indices = indices

    def fit(self, X: np.ndarray, y: Any = None) -> Log1pColumns:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        out = np.array(X, dtype=np.float64, copy=True)
        out[:, self.indices] = np.log1p(np.clip(out[:, self.indices], 0.0, None))
        return out


def fit_log(spec: LogStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext) -> FittedStep:
    """log1p of named non-negative columns (checked on the training rows)."""
    indices = [column_index(names, c, "log") for c in spec.columns]
    for column, i in zip(spec.columns, indices, strict=True):
        low = float(np.nanmin(X[:, i])) if len(X) else 0.0
        if low < 0:
            raise DataError(f"log: column {column!r} has negative values (min {low:g}); log1p needs values >= 0")
    log = Log1pColumns(indices).fit(X)
    return FittedStep(log, log.transform(X), y, list(names), {"columns": list(spec.columns)})


def fit_polynomial(
    spec: PolynomialStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext
) -> FittedStep:
    """All products of columns up to the degree (without the constant column)."""
    poly = PolynomialFeatures(degree=spec.degree, interaction_only=spec.interaction_only, include_bias=False)
    poly.fit(X)
    if poly.n_output_features_ > MAX_POLYNOMIAL_FEATURES:
        raise DataError(
            f"polynomial: degree {spec.degree} on {len(names)} columns makes {poly.n_output_features_} columns; "
            f"the limit is {MAX_POLYNOMIAL_FEATURES} (lower the degree, use interaction_only or select first)"
        )
    out_names = [str(n) for n in poly.get_feature_names_out(names)]
    report = {"degree": spec.degree, "from_features": len(names), "features": len(out_names)}
    return FittedStep(poly, poly.transform(X), y, out_names, report)


TRANSFORM_STEPS: dict[str, StepFit] = {"polar": fit_polar, "log": fit_log, "polynomial": fit_polynomial}

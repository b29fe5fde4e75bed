"""Feature selection: filter, wrapper and embedded methods, all from scikit-learn.

Each method keeps a subset of the columns; the report names the kept and dropped columns and
the score each column got (variance, F statistic, mutual information, RFE ranking, |weight|,
tree importance).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.feature_selection import (
    RFECV,
    SelectFromModel,
    SelectKBest,
    SequentialFeatureSelector,
    VarianceThreshold,
    f_classif,
    f_regression,
    mutual_info_classif,
    mutual_info_regression,
)
from sklearn.linear_model import Lasso, LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from ml.errors import DataError
from ml.preprocessing.base import FittedStep, StepContext, StepFit
from ml.spec.preprocess import SelectStep

DEFAULT_K = 10
# Above this many input columns, the report lists the scores of the kept columns only.
MAX_REPORTED_SCORES = 200


def _classifying(ctx: StepContext) -> bool:
    return ctx.task == "classification"


def _estimator(spec: SelectStep, ctx: StepContext) -> Any:
    """The model a wrapper method fits on candidate subsets."""
    if spec.estimator == "tree":
        forest = RandomForestClassifier if _classifying(ctx) else RandomForestRegressor
        return forest(n_estimators=50, max_depth=8, random_state=ctx.seed, n_jobs=1)
    return LogisticRegression(max_iter=1000) if _classifying(ctx) else Ridge()


CLASSIFICATION_SCORING = ("accuracy", "balanced_accuracy", "roc_auc", "average_precision", "f1")


def scoring(spec: SelectStep, ctx: StepContext, y: np.ndarray) -> str:
    """The scikit-learn scorer a wrapper method ranks column sets by. ``auto``: ROC-AUC on two
    classes, balanced accuracy on more, R2 for regression."""
    classifying = _classifying(ctx)
    if spec.scoring == "auto":
        if not classifying:
            return "r2"
        return "roc_auc" if len(np.unique(y)) == 2 else "balanced_accuracy"
    if (spec.scoring in CLASSIFICATION_SCORING) != classifying:
        raise DataError(f"select {spec.method}: scoring {spec.scoring} does not apply to a {ctx.task} task")
    if spec.scoring in ("roc_auc", "average_precision", "f1") and len(np.unique(y)) != 2:
        raise DataError(
            f"select {spec.method}: scoring {spec.scoring} needs two classes; use balanced_accuracy or auto"
        )
    return spec.scoring


def _folds(spec: SelectStep, ctx: StepContext) -> Any:
    kind = StratifiedKFold if _classifying(ctx) else KFold
    return kind(n_splits=spec.cv, shuffle=True, random_state=ctx.seed)


class ColumnVariance(VarianceThreshold):
    """Keeps the columns whose variance exceeds the threshold, and reports that variance.

    scikit-learn's `VarianceThreshold` stores min(variance, peak-to-peak range) as `variances_`
    (a guard against rounding on constant columns), so a column of variance 83,465 and range 999
    was reported, and judged, as 999. Here a column is judged by its variance, and a constant
    column (range 0) counts as variance 0.
    """

    def fit(self, X: Any, y: Any = None) -> ColumnVariance:
        super().fit(X, y)
        values = np.asarray(X, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            variance = np.nanvar(values, axis=0)
            spread = np.nanmax(values, axis=0) - np.nanmin(values, axis=0)
        self.variances_ = np.where(spread > 0, np.nan_to_num(variance), 0.0)
        return self


def _variance(spec: SelectStep, ctx: StepContext, y: np.ndarray, shape: tuple[int, int]) -> tuple[Any, str]:
    return ColumnVariance(spec.threshold or 0.0), "variance"


def _univariate(
    score_name: str, spec: SelectStep, ctx: StepContext, y: np.ndarray, shape: tuple[int, int]
) -> tuple[Any, str]:
    if score_name == "f_statistic":
        score: Callable[..., Any] = f_classif if _classifying(ctx) else f_regression
    else:
        info = mutual_info_classif if _classifying(ctx) else mutual_info_regression
        score = partial(info, random_state=ctx.seed)
    return SelectKBest(score, k=min(spec.k or DEFAULT_K, shape[1])), score_name


def _rfe(spec: SelectStep, ctx: StepContext, y: np.ndarray, shape: tuple[int, int]) -> tuple[Any, str]:
    selector = RFECV(
        _estimator(spec, ctx),
        min_features_to_select=min(spec.k or 1, shape[1]),
        cv=_folds(spec, ctx),
        scoring=scoring(spec, ctx, y),
        n_jobs=1,
    )
    return selector, "rfe_ranking"


def _sequential(spec: SelectStep, ctx: StepContext, y: np.ndarray, shape: tuple[int, int]) -> tuple[Any, str]:
    n = shape[1]
    k = spec.k or max(1, n // 2)
    if k >= n:
        raise DataError(f"select sequential: k={k} must be smaller than the {n} columns there are")
    selector = SequentialFeatureSelector(
        _estimator(spec, ctx),
        n_features_to_select=k,
        direction=spec.direction,
        cv=_folds(spec, ctx),
        scoring=scoring(spec, ctx, y),
        n_jobs=1,
    )
    return selector, "none"


def _from_model(model: Any, spec: SelectStep, n: int) -> Any:
    # With k alone, keep exactly the k strongest columns (no threshold below them).
    threshold = spec.threshold if spec.threshold is not None else (-np.inf if spec.k else None)
    return SelectFromModel(model, threshold=threshold, max_features=min(spec.k, n) if spec.k else None)


def _l1(spec: SelectStep, ctx: StepContext, y: np.ndarray, shape: tuple[int, int]) -> tuple[Any, str]:
    if _classifying(ctx):
        # C = 1 / (alpha n): the mean loss plus alpha |w|, on the scale of Lasso's alpha.
        C = 1.0 / (spec.alpha * max(shape[0], 1))
        model: Any = LinearSVC(penalty="l1", dual=False, C=C, max_iter=5000, random_state=ctx.seed)
    else:
        model = Lasso(alpha=spec.alpha, max_iter=5000)
    return _from_model(model, spec, shape[1]), "abs_weight"


def _tree(spec: SelectStep, ctx: StepContext, y: np.ndarray, shape: tuple[int, int]) -> tuple[Any, str]:
    trees = ExtraTreesClassifier if _classifying(ctx) else ExtraTreesRegressor
    return _from_model(trees(n_estimators=100, random_state=ctx.seed, n_jobs=1), spec, shape[1]), "importance"


# method -> (spec, context, training targets, (rows, columns)) -> (unfitted selector, name of its score)
SELECTORS: dict[str, Callable[[SelectStep, StepContext, np.ndarray, tuple[int, int]], tuple[Any, str]]] = {
    "variance": _variance,
    "anova": partial(_univariate, "f_statistic"),
    "mutual_info": partial(_univariate, "mutual_information"),
    "rfe": _rfe,
    "sequential": _sequential,
    "l1": _l1,
    "tree": _tree,
}


def _scores(selector: Any, score_name: str) -> np.ndarray | None:
    """One score per input column (higher is better), or None when the method has none."""
    if score_name == "variance":
        return np.asarray(selector.variances_)
    if score_name in ("f_statistic", "mutual_information"):
        return np.nan_to_num(np.asarray(selector.scores_, dtype=np.float64))
    if score_name == "rfe_ranking":
        return np.asarray(selector.ranking_, dtype=np.float64)
    if score_name == "abs_weight":
        return np.abs(np.atleast_2d(selector.estimator_.coef_)).max(axis=0)
    if score_name == "importance":
        return np.asarray(selector.estimator_.feature_importances_)
    return None


def fit_select(spec: SelectStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext) -> FittedStep:
    """Fit a selector on the training rows and keep the columns it chose."""
    selector, score_name = SELECTORS[spec.method](spec, ctx, y, (X.shape[0], X.shape[1]))
    try:
        # Wrappers fit many small models: one BLAS thread each is ~10x faster on a busy machine.
        with threadpool_limits(1, user_api="blas"):
            selector.fit(X, y)
    except ValueError as exc:
        raise DataError(f"select {spec.method}: {exc}") from exc
    mask = selector.get_support()
    if not mask.any():
        hint = "lower alpha, " if spec.method == "l1" else ""
        raise DataError(f"select {spec.method} kept no column; {hint}lower the threshold or set k")
    kept = [n for n, keep in zip(names, mask, strict=True) if keep]
    report: dict[str, Any] = {
        "method": spec.method,
        "kept": kept,
        "dropped": [n for n, keep in zip(names, mask, strict=True) if not keep],
        "score": score_name,
    }
    scores = _scores(selector, score_name)
    if scores is not None:
        shown = [i for i in range(len(names)) if len(names) <= MAX_REPORTED_SCORES or mask[i]]
        report["scores"] = {names[i]: round(float(scores[i]), 6) for i in shown}
    if spec.method in ("rfe", "sequential"):
        report["scoring"] = selector.scoring
    if spec.method == "rfe":
        report["cv_score_by_count"] = [round(float(s), 4) for s in selector.cv_results_["mean_test_score"]]
    return FittedStep(selector, selector.transform(X), y, kept, report)


SELECTION_STEPS: dict[str, StepFit] = {"select": fit_select}

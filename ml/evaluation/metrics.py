"""Evaluation metrics: thin, JSON-ready wrappers around scikit-learn.

Every metric is one entry of a registry (`CLASSIFICATION_METRICS`, `REGRESSION_METRICS`), so
adding one is one line. Results are plain Python: floats, ints, lists and dicts, with ``None``
where a value is undefined (never NaN or infinity), so they can be stored as JSON as they are.

Thresholds (`choose_threshold`) are chosen from the arrays the caller passes and nothing else:
pass the validation split, never the test split, or the test score is no longer honest.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.preprocessing import label_binarize

from ml.spec.base import Task

DEFAULT_THRESHOLD = 0.5
DEFAULT_BETA = 2.0
MIN_THRESHOLD = 1e-6
"""Chosen thresholds are clipped into [MIN_THRESHOLD, 1] so they stay finite and positive."""
IMBALANCE_RATIO = 0.4
"""A class holding less than this fraction of its fair share (1/C) makes the data imbalanced:
below 20 % for a binary task."""
MIN_GAIN_OVER_BASELINE = 0.05
"""Accuracy less than this above the majority baseline is 'within reach' of it."""
MIN_FRACTION_OF_HEADROOM = 1.0 / 3.0
"""Accuracy less than this fraction of the way from the majority baseline to 1 is also close."""
READ_INSTEAD = "recall, precision, F1, PR-AUC and balanced accuracy"

DEFAULT_CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "confusion_matrix",
)
DEFAULT_REGRESSION_METRICS = ("rmse", "mae", "r2", "mse")


@dataclass(frozen=True)
class ClassificationInputs:
    """What every classification metric is computed from (see `_prepare`)."""

    y_true: NDArray[np.int64]
    proba: NDArray[np.float64]
    y_pred: NDArray[np.int64]
    class_names: list[str]
    beta: float = DEFAULT_BETA

    @property
    def labels(self) -> list[int]:
        """The class labels 0..C-1."""
        return list(range(self.proba.shape[1]))

    @property
    def binary(self) -> bool:
        """True for a two-class task."""
        return self.proba.shape[1] == 2


Score = Callable[[ClassificationInputs, str], float]


def _sk(fn: Callable[..., float], with_beta: bool = False) -> Score:
    """Wrap a scikit-learn label metric as ``score(inputs, average)``."""

    def score(d: ClassificationInputs, average: str) -> float:
        extra = {"beta": d.beta} if with_beta else {}
        return fn(d.y_true, d.y_pred, labels=d.labels, average=average, zero_division=0.0, **extra)

    return score


def _specificity(d: ClassificationInputs, average: str) -> float:
    """TN / (TN + FP): the recall of the negative class (one-vs-rest for multiclass)."""
    if average == "binary":
        return skm.recall_score(d.y_true, d.y_pred, pos_label=0, average="binary", zero_division=0.0)
    mcm = skm.multilabel_confusion_matrix(d.y_true, d.y_pred, labels=d.labels)
    tn, fp = mcm[:, 0, 0], mcm[:, 0, 1]
    per_class = np.divide(tn, tn + fp, out=np.zeros(len(tn)), where=(tn + fp) > 0)
    support = mcm[:, 1, 0] + mcm[:, 1, 1]
    if average == "weighted":
        return float(np.average(per_class, weights=support)) if support.sum() else 0.0
    return float(per_class.mean())


def _averaged(name: str, score: Score) -> Callable[[ClassificationInputs], dict[str, Any]]:
    """Binary: the positive class's score. Multiclass: macro (also under the plain name) and
    weighted averages."""

    def compute(d: ClassificationInputs) -> dict[str, Any]:
        if d.binary:
            return {name: score(d, "binary")}
        macro = score(d, "macro")
        return {name: macro, f"{name}_macro": macro, f"{name}_weighted": score(d, "weighted")}

    return compute


def _all_present(d: ClassificationInputs) -> bool:
    """Ranking metrics are undefined unless every class occurs in y_true."""
    return bool(np.unique(d.y_true).size == d.proba.shape[1])


def _roc_auc(d: ClassificationInputs) -> dict[str, Any]:
    if not _all_present(d):
        return {"roc_auc": None}
    if d.binary:
        return {"roc_auc": skm.roc_auc_score(d.y_true, d.proba[:, 1])}
    return {"roc_auc": skm.roc_auc_score(d.y_true, d.proba, multi_class="ovr", average="macro", labels=d.labels)}


def _pr_auc(d: ClassificationInputs) -> dict[str, Any]:
    if not _all_present(d):
        return {"pr_auc": None}
    if d.binary:
        return {"pr_auc": skm.average_precision_score(d.y_true, d.proba[:, 1])}
    onehot = label_binarize(d.y_true, classes=d.labels)
    return {"pr_auc": skm.average_precision_score(onehot, d.proba, average="macro")}


def _confusion(d: ClassificationInputs) -> dict[str, Any]:
    matrix = skm.confusion_matrix(d.y_true, d.y_pred, labels=d.labels)
    return {"confusion_matrix": {"labels": list(d.class_names), "matrix": matrix.tolist()}}


CLASSIFICATION_METRICS: dict[str, Callable[[ClassificationInputs], dict[str, Any]]] = {
    "accuracy": lambda d: {"accuracy": skm.accuracy_score(d.y_true, d.y_pred)},
    "balanced_accuracy": lambda d: {"balanced_accuracy": skm.balanced_accuracy_score(d.y_true, d.y_pred)},
    "precision": _averaged("precision", _sk(skm.precision_score)),
    "recall": _averaged("recall", _sk(skm.recall_score)),
    "specificity": _averaged("specificity", _specificity),
    "f1": _averaged("f1", _sk(skm.f1_score)),
    "fbeta": _averaged("fbeta", _sk(skm.fbeta_score, with_beta=True)),
    "roc_auc": _roc_auc,
    "pr_auc": _pr_auc,
    "log_loss": lambda d: {"log_loss": skm.log_loss(d.y_true, d.proba, labels=d.labels)},
    "confusion_matrix": _confusion,
    "iou": _averaged("iou", _sk(skm.jaccard_score)),
}
"""name -> function of `ClassificationInputs` returning ``{result_key: value}``."""

REGRESSION_METRICS: dict[str, Callable[[NDArray[Any], NDArray[Any]], float]] = {
    "rmse": skm.root_mean_squared_error,
    "mae": skm.mean_absolute_error,
    "r2": skm.r2_score,
    "mse": skm.mean_squared_error,
}
"""name -> function(y_true, y_pred) returning a float."""


def to_jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays into Python values and NaN/inf into None, recursively.

    Args:
        value: any nesting of dicts, lists, tuples, arrays and scalars.

    Returns:
        The same structure made of dict, list, int, float, str, bool and None.
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def default_class_names(n_classes: int) -> list[str]:
    """``['negative', 'positive']`` for two classes, else ``['0', '1', ...]``."""
    return ["negative", "positive"] if n_classes == 2 else [str(i) for i in range(n_classes)]


def _check_names(metrics: Sequence[str], registry: Mapping[str, Any]) -> None:
    unknown = [m for m in metrics if m not in registry]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; allowed: {', '.join(registry)}")


def _prepare(
    y_true: ArrayLike,
    proba: ArrayLike,
    threshold: float | None,
    class_names: Sequence[str] | None,
    beta: float,
) -> ClassificationInputs:
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    if p.ndim != 2 or p.shape[0] != y.size or p.shape[1] < 2 or y.size == 0:
        raise ValueError(f"proba must have shape (n, C>=2) with n={y.size}; got {p.shape}")
    n_classes = p.shape[1]
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"y_true labels must lie in 0..{n_classes - 1}")
    names = list(class_names) if class_names is not None else default_class_names(n_classes)
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class names for {n_classes} classes")
    sums = p.sum(axis=1, keepdims=True)
    p = np.divide(p, sums, out=np.full_like(p, 1.0 / n_classes), where=sums > 0)
    if n_classes == 2:
        cut = DEFAULT_THRESHOLD if threshold is None else threshold
        y_pred = (p[:, 1] >= cut).astype(np.int64)
    else:
        y_pred = p.argmax(axis=1).astype(np.int64)
    return ClassificationInputs(y, p, y_pred, names, beta)


def _per_class(d: ClassificationInputs) -> dict[str, dict[str, float]]:
    p, r, f, s = skm.precision_recall_fscore_support(d.y_true, d.y_pred, labels=d.labels, zero_division=0.0)
    return {
        name: {"precision": p[i], "recall": r[i], "f1": f[i], "support": int(s[i])}
        for i, name in enumerate(d.class_names)
    }


def evaluate_classification(
    y_true: ArrayLike,
    proba: ArrayLike,
    metrics: Sequence[str] | None = None,
    threshold: float | None = None,
    class_names: Sequence[str] | None = None,
    beta: float = DEFAULT_BETA,
) -> dict[str, Any]:
    """Compute classification metrics from predicted probabilities.

    Binary: a row is predicted positive when ``proba[:, 1] >= threshold``. Multiclass: argmax;
    precision/recall/f1/fbeta/specificity/iou come as ``<name>_macro`` and ``<name>_weighted``
    (the plain name holds the macro value) and a ``per_class`` table is added; roc_auc is
    one-vs-rest macro. Undefined values (e.g. roc_auc when a class is absent from y_true) are None.

    Args:
        y_true: integer labels 0..C-1, shape (n,).
        proba: class probabilities, shape (n, C); a 1-D array is the positive-class probability.
        metrics: names from `CLASSIFICATION_METRICS`; None or empty for the default set.
        threshold: binary decision threshold (default 0.5); ignored for multiclass.
        class_names: C names for the confusion matrix and the per-class table.
        beta: the beta of ``fbeta`` (recall counts beta times as much as precision).

    Returns:
        ``{name: float | None}`` plus ``confusion_matrix: {labels, matrix}``, ``per_class``
        (multiclass) and ``threshold`` (binary); JSON-ready.
    """
    names = list(metrics) if metrics else list(DEFAULT_CLASSIFICATION_METRICS)
    _check_names(names, CLASSIFICATION_METRICS)
    d = _prepare(y_true, proba, threshold, class_names, beta)
    result: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", UserWarning)
        for name in names:
            result.update(CLASSIFICATION_METRICS[name](d))
        if not d.binary:
            result["per_class"] = _per_class(d)
    if d.binary:
        result["threshold"] = DEFAULT_THRESHOLD if threshold is None else threshold
    return to_jsonable(result)


def evaluate_regression(
    y_true: ArrayLike, y_pred: ArrayLike, metrics: Sequence[str] | None = None
) -> dict[str, float | None]:
    """Compute regression metrics.

    Args:
        y_true: targets, shape (n,) or (n, k).
        y_pred: predictions, same shape.
        metrics: names from `REGRESSION_METRICS`; None or empty for all of them.

    Returns:
        ``{name: float | None}`` (None where undefined, e.g. r2 on fewer than two rows).
    """
    names = list(metrics) if metrics else list(DEFAULT_REGRESSION_METRICS)
    _check_names(names, REGRESSION_METRICS)
    y, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    p = p.reshape(y.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return to_jsonable({name: REGRESSION_METRICS[name](y, p) for name in names})


def _positive_score(score: ArrayLike) -> NDArray[np.float64]:
    s = np.asarray(score, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 2:
        return s[:, 1]
    if s.ndim == 2 and s.shape[1] == 1:
        return s[:, 0]
    if s.ndim != 1:
        raise ValueError(f"a binary score must have shape (n,) or (n, 2); got {s.shape}")
    return s


_CURVE_LISTS = ("fpr", "tpr", "roc_thresholds", "precision", "recall", "pr_thresholds")
_CURVE_AUCS = ("roc_auc", "average_precision")


def _binary_curves(y: NDArray[np.int64], s: NDArray[np.float64]) -> dict[str, Any]:
    rate = float(np.mean(y)) if y.size else None
    if np.unique(y).size < 2:
        return {
            **dict.fromkeys(_CURVE_LISTS, []),
            **dict.fromkeys(_CURVE_AUCS),
            "positive_rate": rate,
        }
    fpr, tpr, roc_thr = skm.roc_curve(y, s)
    precision, recall, pr_thr = skm.precision_recall_curve(y, s, drop_intermediate=True)
    return to_jsonable(
        {
            "positive_rate": rate,
            "fpr": fpr,
            "tpr": tpr,
            "roc_thresholds": roc_thr,
            "roc_auc": skm.roc_auc_score(y, s),
            "precision": precision,
            "recall": recall,
            "pr_thresholds": pr_thr,
            "average_precision": skm.average_precision_score(y, s),
        }
    )


def roc_pr_curves(y_true: ArrayLike, score: ArrayLike, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """ROC and precision-recall curves, for plots.

    Args:
        y_true: integer labels, shape (n,).
        score: binary: positive-class score (n,) or probabilities (n, 2); multiclass: (n, C)
            probabilities, giving one one-vs-rest set of curves per class.
        class_names: names of the classes (multiclass keys).

    Returns:
        Binary: ``{fpr, tpr, roc_thresholds, roc_auc, precision, recall, pr_thresholds,
        average_precision, positive_rate}`` (empty lists and None when y_true has one class;
        roc_curve's first threshold, +inf, is None). Multiclass: ``{"classes": {name: that}}``.
    """
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(score, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] > 2:
        names = list(class_names) if class_names else default_class_names(s.shape[1])
        return {"classes": {names[c]: _binary_curves((y == c).astype(np.int64), s[:, c]) for c in range(s.shape[1])}}
    return _binary_curves(y, _positive_score(s))


def _youden(y: NDArray[np.int64], s: NDArray[np.float64]) -> float:
    fpr, tpr, thresholds = skm.roc_curve(y, s, drop_intermediate=False)
    finite = np.isfinite(thresholds)
    j = np.where(finite, tpr - fpr, -np.inf)
    return float(thresholds[int(np.argmax(j))])


def _max_f1(y: NDArray[np.int64], s: NDArray[np.float64]) -> float:
    precision, recall, thresholds = skm.precision_recall_curve(y, s)
    p, r = precision[:-1], recall[:-1]
    f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    return float(thresholds[len(f1) - 1 - int(np.argmax(f1[::-1]))])


THRESHOLD_METHODS: dict[str, Callable[[NDArray[np.int64], NDArray[np.float64]], float]] = {
    "youden": _youden,
    "max_f1": _max_f1,
}
"""name -> function(y_true, positive_score) returning the best threshold."""


def choose_threshold(y_true: ArrayLike, score: ArrayLike, method: str = "youden") -> float:
    """Choose a binary decision threshold from the given labels and scores.

    The threshold depends only on the arrays passed: pass the validation split, never the test
    split. ``youden`` maximises TPR - FPR along sklearn's ROC curve; ``max_f1`` maximises F1
    along the precision-recall curve. Ties go to the highest threshold.

    Args:
        y_true: 0/1 labels, shape (n,).
        score: positive-class probability (n,) or probabilities (n, 2).
        method: a key of `THRESHOLD_METHODS`.

    Returns:
        A threshold in [MIN_THRESHOLD, 1]; DEFAULT_THRESHOLD when y_true holds a single class.
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"unknown threshold method {method!r}; allowed: {', '.join(THRESHOLD_METHODS)}")
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = _positive_score(score)
    if np.unique(y).size < 2:
        return DEFAULT_THRESHOLD
    value = THRESHOLD_METHODS[method](y, s)
    if not math.isfinite(value):
        return DEFAULT_THRESHOLD
    return float(np.clip(value, MIN_THRESHOLD, 1.0))


def majority_baseline(
    y_train: ArrayLike, y_eval: ArrayLike, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """What always predicting the training set's majority class scores on y_eval.

    Args:
        y_train: training labels (the majority class is taken from these only).
        y_eval: labels of the split to score (validation or test).
        class_names: names of the classes 0..C-1 (default: negative/positive for two).

    Returns:
        ``{majority_class, majority_class_name, train_share, accuracy, balanced_accuracy}``.
    """
    train = np.asarray(y_train).astype(np.int64).ravel()
    evaluation = np.asarray(y_eval).astype(np.int64).ravel()
    dummy = DummyClassifier(strategy="most_frequent").fit(np.zeros((train.size, 1)), train)
    predicted = dummy.predict(np.zeros((evaluation.size, 1)))
    majority = int(dummy.classes_[int(np.argmax(dummy.class_prior_))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        balanced = skm.balanced_accuracy_score(evaluation, predicted)
    return to_jsonable(
        {
            "majority_class": majority,
            "majority_class_name": _names_for(train, class_names)[majority],
            "train_share": float(np.max(dummy.class_prior_)),
            "accuracy": skm.accuracy_score(evaluation, predicted),
            "balanced_accuracy": balanced,
        }
    )


def _names_for(y: NDArray[np.int64], class_names: Sequence[str] | None) -> list[str]:
    """The given names, or default ones covering every label in y (at least two)."""
    if class_names is not None:
        return [str(n) for n in class_names]
    return default_class_names(max(int(y.max()) + 1 if y.size else 0, 2))


def accuracy_warning(
    y_train: ArrayLike,
    accuracy: float,
    baseline_accuracy: float,
    class_names: Sequence[str] | None = None,
) -> str | None:
    """Say why accuracy misleads, when it does.

    It does when the training data is imbalanced (a class below `IMBALANCE_RATIO` of its fair
    share, i.e. under 20 % for a binary task) or when the accuracy is within reach of the
    majority baseline (less than `MIN_GAIN_OVER_BASELINE` above it, or less than
    `MIN_FRACTION_OF_HEADROOM` of the way from it to 1).

    Args:
        y_train: training labels.
        accuracy: the model's accuracy on the evaluated split.
        baseline_accuracy: the majority baseline's accuracy on that split (`majority_baseline`).
        class_names: names of the classes 0..C-1.

    Returns:
        A sentence naming the numbers and the metrics to read instead, or None.
    """
    y = np.asarray(y_train).astype(np.int64).ravel()
    if y.size == 0:
        return None
    names = _names_for(y, class_names)
    labels, counts = np.unique(y, return_counts=True)
    shares = dict(zip(labels.tolist(), (counts / y.size).tolist(), strict=True))
    all_shares = [shares.get(label, 0.0) for label in range(len(names))]
    minority, majority = int(np.argmin(all_shares)), int(np.argmax(all_shares))
    imbalanced = all_shares[minority] < IMBALANCE_RATIO / len(names)
    gain = accuracy - baseline_accuracy
    headroom = 1.0 - baseline_accuracy
    close = gain < MIN_GAIN_OVER_BASELINE or gain < MIN_FRACTION_OF_HEADROOM * headroom
    if not (imbalanced or close):
        return None
    text = (
        f"Accuracy is misleading here: predicting everyone '{names[majority]}' already "
        f"scores {baseline_accuracy:.4g} accuracy"
    )
    if imbalanced:
        text += f" because only {100 * all_shares[minority]:.1f} % of training rows are '{names[minority]}'"
    if close:
        text += (
            f", and this model's {accuracy:.4g} is only {gain:+.4g} above that."
            if gain > 0
            else f", and this model's {accuracy:.4g} is no better."
        )
    else:
        text += f"; this model's {accuracy:.4g} says little about the rare class."
    text += f" Read {READ_INSTEAD} instead"
    if imbalanced:
        return text + f": they show whether the '{names[minority]}' rows are actually found."
    return text + "."


def _epoch_accuracy(y_true: NDArray[Any], output: NDArray[np.float64]) -> float:
    """Argmax of (n, C) logits/probabilities; a single column is a positive-class logit (> 0),
    or a probability (>= 0.5) when every value lies in [0, 1]."""
    if output.ndim == 2 and output.shape[1] > 1:
        predicted = output.argmax(axis=1)
    else:
        flat = output.ravel()
        is_probability = flat.min() >= 0.0 and flat.max() <= 1.0
        predicted = flat >= DEFAULT_THRESHOLD if is_probability else flat > 0.0
    return float(skm.accuracy_score(np.asarray(y_true).astype(np.int64).ravel(), predicted))


def _epoch_rmse(y_true: NDArray[Any], output: NDArray[np.float64]) -> float:
    y = np.asarray(y_true, dtype=np.float64)
    return float(skm.root_mean_squared_error(y.ravel(), output.reshape(y.shape).ravel()))


EPOCH_METRICS: dict[str, tuple[str, Callable[[NDArray[Any], NDArray[np.float64]], float]]] = {
    "classification": ("accuracy", _epoch_accuracy),
    "regression": ("rmse", _epoch_rmse),
}
"""task -> (metric name, function(y_true, output)): the cheap metric logged every epoch."""


def epoch_metric(task: Task, y_true: ArrayLike, output: ArrayLike) -> tuple[str, float]:
    """The cheap per-epoch task metric.

    Args:
        task: ``classification`` or ``regression``.
        y_true: labels (classification) or targets (regression), numpy.
        output: the model's raw output: (n, C) logits or probabilities, or predictions.

    Returns:
        ``("accuracy", value)`` or ``("rmse", value)``.
    """
    if task not in EPOCH_METRICS:
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(EPOCH_METRICS)}")
    name, compute = EPOCH_METRICS[task]
    return name, compute(np.asarray(y_true), np.asarray(output, dtype=np.float64))

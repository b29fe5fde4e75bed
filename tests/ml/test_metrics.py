"""ml.evaluation.metrics agrees with scikit-learn and handles the degenerate cases."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from ml.evaluation.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    accuracy_warning,
    choose_threshold,
    epoch_metric,
    evaluate_classification,
    evaluate_regression,
    majority_baseline,
    roc_pr_curves,
)

Y_BIN = np.array([0, 0, 0, 1, 1, 0, 1, 0, 1, 0])
P_POS = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.6, 0.3, 0.2, 0.55, 0.05])
PROBA_BIN = np.column_stack([1 - P_POS, P_POS])

Y_MULTI = np.array([0, 1, 2, 2, 1, 0, 1, 2, 0, 1])
PROBA_MULTI = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.3, 0.6],
        [0.3, 0.4, 0.3],
        [0.1, 0.8, 0.1],
        [0.4, 0.4, 0.2],
        [0.5, 0.3, 0.2],
        [0.2, 0.2, 0.6],
        [0.6, 0.1, 0.3],
        [0.3, 0.3, 0.4],
    ]
)


def _walk(value: Any) -> list[Any]:
    """Every leaf of a nested dict/list."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _walk(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _walk(v)]
    return [value]


def _assert_jsonable(result: dict[str, Any]) -> None:
    json.dumps(result, allow_nan=False)
    for leaf in _walk(result):
        assert leaf is None or isinstance(leaf, (str, int, float, bool))
        assert not (isinstance(leaf, float) and not math.isfinite(leaf))


def test_binary_metrics_equal_sklearn() -> None:
    threshold = 0.5
    pred = np.greater_equal(P_POS, threshold).astype(int)
    r = evaluate_classification(Y_BIN, PROBA_BIN, list(CLASSIFICATION_METRICS), beta=2.0)
    assert r["accuracy"] == pytest.approx(skm.accuracy_score(Y_BIN, pred))
    assert r["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(Y_BIN, pred))
    assert r["precision"] == pytest.approx(skm.precision_score(Y_BIN, pred))
    assert r["recall"] == pytest.approx(skm.recall_score(Y_BIN, pred))
    assert r["specificity"] == pytest.approx(skm.recall_score(Y_BIN, pred, pos_label=0))
    assert r["f1"] == pytest.approx(skm.f1_score(Y_BIN, pred))
    assert r["fbeta"] == pytest.approx(skm.fbeta_score(Y_BIN, pred, beta=2.0))
    assert r["roc_auc"] == pytest.approx(skm.roc_auc_score(Y_BIN, P_POS))
    assert r["pr_auc"] == pytest.approx(skm.average_precision_score(Y_BIN, P_POS))
    assert r["log_loss"] == pytest.approx(skm.log_loss(Y_BIN, PROBA_BIN))
    assert r["iou"] == pytest.approx(skm.jaccard_score(Y_BIN, pred))
    assert r["confusion_matrix"]["matrix"] == skm.confusion_matrix(Y_BIN, pred).tolist()
    assert r["confusion_matrix"]["labels"] == ["negative", "positive"]
    assert r["threshold"] == threshold
    assert all(type(r[name]) is float for name in ("accuracy", "f1", "roc_auc", "log_loss"))
    _assert_jsonable(r)


def test_binary_threshold_moves_the_predictions() -> None:
    r = evaluate_classification(Y_BIN, PROBA_BIN, ["recall", "precision"], threshold=0.3)
    pred = (P_POS >= 0.3).astype(int)
    assert r["recall"] == pytest.approx(skm.recall_score(Y_BIN, pred))
    assert r["precision"] == pytest.approx(skm.precision_score(Y_BIN, pred))
    assert r["threshold"] == 0.3


def test_multiclass_metrics_equal_sklearn() -> None:
    pred = PROBA_MULTI.argmax(axis=1)
    names = ["cat", "dog", "bird"]
    r = evaluate_classification(Y_MULTI, PROBA_MULTI, list(CLASSIFICATION_METRICS), class_names=names)
    for avg in ("macro", "weighted"):
        assert r[f"precision_{avg}"] == pytest.approx(skm.precision_score(Y_MULTI, pred, average=avg))
        assert r[f"recall_{avg}"] == pytest.approx(skm.recall_score(Y_MULTI, pred, average=avg))
        assert r[f"f1_{avg}"] == pytest.approx(skm.f1_score(Y_MULTI, pred, average=avg))
        assert r[f"iou_{avg}"] == pytest.approx(skm.jaccard_score(Y_MULTI, pred, average=avg))
    assert r["f1"] == r["f1_macro"]
    assert r["accuracy"] == pytest.approx(skm.accuracy_score(Y_MULTI, pred))
    assert r["roc_auc"] == pytest.approx(skm.roc_auc_score(Y_MULTI, PROBA_MULTI, multi_class="ovr", average="macro"))
    assert r["log_loss"] == pytest.approx(skm.log_loss(Y_MULTI, PROBA_MULTI))
    assert r["confusion_matrix"]["labels"] == names
    assert r["confusion_matrix"]["matrix"] == skm.confusion_matrix(Y_MULTI, pred).tolist()
    per_dog = r["per_class"]["dog"]
    assert per_dog["recall"] == pytest.approx(skm.recall_score(Y_MULTI, pred, average=None)[1])
    assert per_dog["support"] == 4
    # specificity of class c = recall of "not c"
    spec = [skm.recall_score(np.not_equal(Y_MULTI, c), pred != c) for c in range(3)]
    assert r["specificity_macro"] == pytest.approx(np.mean(spec))
    _assert_jsonable(r)


def test_absent_class_gives_none_not_nan() -> None:
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    r = evaluate_classification(y, proba, list(CLASSIFICATION_METRICS))
    assert r["roc_auc"] is None and r["pr_auc"] is None
    assert r["per_class"]["2"]["support"] == 0
    _assert_jsonable(r)
    only_negatives = evaluate_classification([0, 0, 0], [0.2, 0.7, 0.1], ["roc_auc", "precision"])
    assert only_negatives["roc_auc"] is None
    assert only_negatives["precision"] == 0.0


def test_unknown_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="allowed"):
        evaluate_classification(Y_BIN, PROBA_BIN, ["rmse"])


def test_regression_metrics_equal_sklearn() -> None:
    y, p = np.array([1.0, 2.0, 3.0, 4.5]), np.array([1.1, 1.8, 3.5, 4.0])
    r = evaluate_regression(y, p, list(REGRESSION_METRICS))
    assert r["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)))
    assert r["mse"] == pytest.approx(skm.mean_squared_error(y, p))
    assert r["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert r["r2"] == pytest.approx(skm.r2_score(y, p))
    assert evaluate_regression([1.0], [2.0], ["r2"])["r2"] is None


def test_curves_match_sklearn_and_are_jsonable() -> None:
    curves = roc_pr_curves(Y_BIN, PROBA_BIN)
    fpr, tpr, _ = skm.roc_curve(Y_BIN, P_POS)
    assert curves["fpr"] == pytest.approx(fpr.tolist())
    assert curves["tpr"] == pytest.approx(tpr.tolist())
    assert curves["roc_thresholds"][0] is None  # sklearn's +inf
    assert curves["positive_rate"] == pytest.approx(0.4)
    _assert_jsonable(curves)
    multi = roc_pr_curves(Y_MULTI, PROBA_MULTI)
    assert set(multi["classes"]) == {"0", "1", "2"}
    assert roc_pr_curves([0, 0], [0.1, 0.2])["roc_auc"] is None


def test_youden_threshold_known_by_construction() -> None:
    # Negatives score below 0.4, positives at or above 0.6 except one at 0.3:
    # TPR - FPR is 0.75 at threshold 0.6 (3 of 4 positives, no negatives), its maximum.
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    score = np.array([0.1, 0.2, 0.35, 0.39, 0.3, 0.6, 0.7, 0.9])
    assert choose_threshold(y, score, "youden") == pytest.approx(0.6)
    # max F1 agrees with a brute-force search using sklearn's f1_score at every cut.
    f1 = {float(t): skm.f1_score(y, (score >= t).astype(int)) for t in score}
    best = max(f1.values())
    expected = max(t for t, v in f1.items() if v == best)
    assert choose_threshold(y, score, "max_f1") == pytest.approx(expected)


def test_threshold_depends_only_on_the_arrays_given() -> None:
    # The caller passes the validation split; the same arrays always give the same threshold,
    # and other (test) data cannot influence it.
    rng = np.random.default_rng(0)
    y_val = rng.integers(0, 2, 200)
    s_val = np.clip(0.3 * y_val + rng.normal(0.35, 0.15, 200), 0, 1)
    first = choose_threshold(y_val, s_val)
    assert choose_threshold(y_val.copy(), s_val.copy()) == first
    assert 0.0 < first <= 1.0
    assert choose_threshold(np.zeros(5), np.linspace(0, 1, 5)) == 0.5  # one class: default
    assert 0.0 < choose_threshold([0, 1], [0.0, 0.0]) <= 1.0
    with pytest.raises(ValueError):
        choose_threshold(y_val, s_val, "magic")


def test_warning_on_one_percent_positives_with_all_negative_model() -> None:
    y_train = np.array([1] * 10 + [0] * 990)
    y_test = np.array([1] * 2 + [0] * 198)
    baseline = majority_baseline(y_train, y_test)
    assert baseline["majority_class"] == 0
    assert baseline["accuracy"] == pytest.approx(0.99)
    assert baseline["balanced_accuracy"] == pytest.approx(0.5)
    all_negative = np.column_stack([np.ones(200), np.zeros(200)])
    r = evaluate_classification(y_test, all_negative, ["accuracy", "recall"])
    assert r["accuracy"] == pytest.approx(0.99) and r["recall"] == 0.0
    text = accuracy_warning(y_train, r["accuracy"], baseline["accuracy"])
    assert text is not None
    assert "0.99" in text and "1.0 %" in text and "'negative'" in text
    for metric in ("recall", "precision", "F1", "PR-AUC", "balanced accuracy"):
        assert metric in text


def test_no_warning_on_balanced_well_classified_set() -> None:
    y_train = np.array([0, 1] * 100)
    y_test = np.array([0, 1] * 20)
    baseline = majority_baseline(y_train, y_test)
    assert baseline["accuracy"] == pytest.approx(0.5)
    assert accuracy_warning(y_train, 0.95, baseline["accuracy"]) is None
    assert accuracy_warning(y_train, 0.55, baseline["accuracy"]) is not None  # barely above


def test_no_imbalance_warning_for_many_even_classes() -> None:
    y_train = np.repeat(np.arange(10), 20)  # each class 10 %: not imbalanced for 10 classes
    assert accuracy_warning(y_train, 0.95, 0.1) is None


def test_epoch_metric() -> None:
    assert epoch_metric("classification", Y_MULTI, np.log(PROBA_MULTI)) == (
        "accuracy",
        pytest.approx(skm.accuracy_score(Y_MULTI, PROBA_MULTI.argmax(axis=1))),
    )
    name, value = epoch_metric("classification", [0, 1, 1], np.array([[-2.0], [0.5], [-0.1]]))
    assert (name, value) == ("accuracy", pytest.approx(2 / 3))
    name, value = epoch_metric("regression", np.array([1.0, 2.0]), np.array([[1.0], [3.0]]))
    assert name == "rmse" and value == pytest.approx(math.sqrt(0.5))
    assert isinstance(value, float)
    with pytest.raises(ValueError):
        epoch_metric("ranking", [0], [0.0])

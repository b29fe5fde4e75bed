"""Class balancing and under-sampling: they change the training part only, and say how."""

from __future__ import annotations

import numpy as np
import pytest

from ml.errors import DataError
from ml.preprocessing import fit_preprocessing
from ml.spec import PreprocessStep

NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def imbalanced() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """180 negatives around 0, 20 positives around 2 (overlapping), and 50 validation rows."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0.0, 1.0, size=(180, 3)), rng.normal(2.0, 1.0, size=(20, 3))])
    y = np.array([0] * 180 + [1] * 20)
    return X, y, rng.normal(1.0, 2.0, size=(50, 3))


def fit(steps: list[dict], X: np.ndarray, y: np.ndarray, **kw):
    return fit_preprocessing([PreprocessStep(**s) for s in steps], X, y, NAMES, **kw)


RESAMPLING = [
    {"step": "balance", "method": "smote"},
    {"step": "balance", "method": "random_over"},
    {"step": "balance", "method": "random_under"},
    {"step": "balance", "method": "tomek"},
    {"step": "balance", "method": "enn"},
    {"step": "balance", "method": "class_weight"},
    {"step": "deduplicate", "tolerance": 0.5},
]


@pytest.mark.parametrize("step", RESAMPLING, ids=lambda s: s.get("method", s["step"]))
def test_resampling_never_touches_validation_or_test_rows(step: dict, imbalanced) -> None:
    X, y, X_val = imbalanced
    plain, _, _ = fit([{"step": "standardize"}], X, y)
    pipeline, _, yt = fit([{"step": "standardize"}, step], X, y, seed=3)
    # the training part changed (or its loss weights did) ...
    assert len(yt) != len(y) or pipeline.class_weights is not None or step["step"] == "deduplicate"
    # ... but validation rows come out as the non-resampling steps alone make them: same count, same values
    assert np.array_equal(pipeline.transform(X_val), plain.transform(X_val))
    Z = plain.transform(X_val)
    assert np.array_equal(pipeline.steps[1][1].transform(Z), Z)


def test_smote_reports_class_counts_and_adds_minority_rows_only(imbalanced) -> None:
    X, y, _ = imbalanced
    pipeline, Xt, yt = fit([{"step": "balance", "method": "smote"}], X, y)
    report = pipeline.reports[0]
    assert report["class_counts_before"] == {"0": 180, "1": 20}
    assert report["class_counts_after"] == {"0": 180, "1": 180} and report["rows_after"] == len(yt) == 360
    assert np.array_equal(Xt[:200], X.astype(np.float32))  # the originals are kept as they were
    new = Xt[200:]
    assert (yt[200:] == 1).all()
    # new rows lie between minority rows: inside their bounding box
    minority = X[y == 1]
    assert (new >= minority.min(axis=0) - 1e-6).all() and (new <= minority.max(axis=0) + 1e-6).all()


@pytest.mark.parametrize(
    ("step", "after"),
    [
        ({"step": "balance", "method": "random_under"}, {"0": 20, "1": 20}),
        ({"step": "balance", "method": "random_over", "ratio": 0.5}, {"0": 180, "1": 90}),
        ({"step": "balance", "method": "smote", "ratio": 0.25}, {"0": 180, "1": 45}),
    ],
)
def test_resampling_reaches_the_asked_ratio(step: dict, after: dict, imbalanced) -> None:
    X, y, _ = imbalanced
    pipeline, _, yt = fit([step], X, y)
    assert pipeline.reports[0]["class_counts_after"] == after
    assert {str(c): int((yt == c).sum()) for c in (0, 1)} == after


def test_cleaning_methods_drop_majority_rows_only(imbalanced) -> None:
    X, y, _ = imbalanced
    for method in ("tomek", "enn"):
        pipeline, _, yt = fit([{"step": "balance", "method": method}], X, y)
        after = pipeline.reports[0]["class_counts_after"]
        assert after["1"] == 20 and after["0"] < 180 and int((yt == 0).sum()) == after["0"]


def test_class_weight_weighs_the_loss_and_keeps_the_rows(imbalanced) -> None:
    X, y, _ = imbalanced
    pipeline, Xt, yt = fit([{"step": "standardize"}, {"step": "balance", "method": "class_weight"}], X, y)
    assert np.allclose(pipeline.class_weights, [200 / (2 * 180), 200 / (2 * 20)])
    assert len(yt) == 200 and pipeline.reports[1]["class_weights"] == {"0": 0.555556, "1": 5.0}


def test_balancing_a_regression_task_is_a_clear_error(imbalanced) -> None:
    X, y, _ = imbalanced
    with pytest.raises(DataError, match="balance needs a classification task"):
        fit([{"step": "balance", "method": "smote"}], X, y.astype(np.float32), task="regression")


def test_smote_needs_two_minority_rows() -> None:
    X = np.random.default_rng(0).normal(size=(11, 3))
    with pytest.raises(DataError, match="single training row"):
        fit([{"step": "balance", "method": "smote"}], X, np.array([0] * 10 + [1]))


def test_deduplicate_removes_near_copies_of_the_training_part_only() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 3))
    y = rng.integers(0, 2, size=100)
    copies = X[:30] + rng.normal(scale=1e-4, size=(30, 3))
    X_dup, y_dup = np.vstack([X, copies]), np.concatenate([y, y[:30]])
    pipeline, Xt, yt = fit([{"step": "deduplicate", "tolerance": 0.01}], X_dup, y_dup)
    report = pipeline.reports[0]
    assert report["removed"] == 30 and report["rows_after"] == len(Xt) == 100
    assert np.allclose(Xt, X.astype(np.float32)) and np.array_equal(yt, y)
    # a near copy with another label is not a duplicate (unless asked)
    flipped = np.concatenate([y, 1 - y[:30]])
    assert fit([{"step": "deduplicate", "tolerance": 0.01}], X_dup, flipped)[0].reports[0]["removed"] == 0
    loose = fit([{"step": "deduplicate", "tolerance": 0.01, "same_label": False}], X_dup, flipped)[0]
    assert loose.reports[0]["removed"] == 30
    # validation rows that are near copies of each other are all kept
    assert pipeline.transform(np.vstack([X[:5], X[:5]])).shape == (10, 3)

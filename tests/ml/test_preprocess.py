"""Preprocessing steps on tiny data: each is fitted on the training rows only, reports what it
did, and names what is wrong with the spec or the data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectKBest, f_classif

from ml.data.sources import load_dataset, split_dataset
from ml.errors import DataError
from ml.preprocessing import PreprocessingLeak, assert_fitted_on_training_only, find_leakage, fit_preprocessing
from ml.spec import DataSpec, PreprocessStep, parse_spec
from ml.spec.preprocess import STEP_NAMES, PcaStep, SelectStep, StandardizeStep

NAMES = ["c0", "c1", "c2", "c3", "c4"]


def spec_with(*steps: dict) -> dict:
    return {"name": "p", "data": {"source": "builtin/iris"}, "preprocess": list(steps)}


@pytest.fixture(scope="module")
def shifted() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training rows and other rows that disagree about everything a step could learn.

    In the training part the class follows c0 and c1 varies most; in the other rows the class
    follows c3, c4 varies most and every column is shifted and scaled.
    """
    rng = np.random.default_rng(0)
    X_train = rng.normal(size=(200, 5)) * np.array([1.0, 3.0, 1.0, 1.0, 1.0])
    y_train = (X_train[:, 0] > 0).astype(np.int64)
    X_other = rng.normal(size=(400, 5)) * np.array([1.0, 1.0, 1.0, 1.0, 10.0]) + 5.0
    y_other = (X_other[:, 3] > 5.0).astype(np.int64)
    return X_train, y_train, X_other, y_other


def fit(steps: list[dict], X: np.ndarray, y: np.ndarray, names: list[str] = NAMES, **kw):
    return fit_preprocessing([PreprocessStep(**s) for s in steps], X, y, names, **kw)


# --- the spec ---------------------------------------------------------------------------------


def test_plain_standardize_still_validates_and_dumps_the_same() -> None:
    spec = parse_spec({"name": "p", "data": {"source": "builtin/iris"}})
    assert isinstance(spec.preprocess[0], StandardizeStep)
    assert spec.model_dump(mode="json")["preprocess"] == [{"step": "standardize"}]
    assert parse_spec(spec_with({"step": "standardize"})).preprocess == spec.preprocess
    assert isinstance(PreprocessStep(step="pca", n_components=0.9), PcaStep)


def test_unknown_step_is_refused_with_the_allowed_names() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_spec(spec_with({"step": "standardise"}))
    message = str(caught.value)
    assert "'standardise'" in message and "preprocess.0" in message
    for name in STEP_NAMES:
        assert f"'{name}'" in message


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ({"step": "select", "method": "variance", "k": 3}, "k does not apply to method variance"),
        ({"step": "select", "method": "anova", "cv": 5}, "cv does not apply to method anova"),
        ({"step": "pca", "n_components": 1.5}, "n_components"),
        ({"step": "pca", "n_components": 0}, "n_components"),
        ({"step": "polar", "x": "a", "y": "a"}, "two different columns"),
        ({"step": "balance", "method": "tomek", "ratio": 0.5}, "ratio does not apply"),
        ({"step": "minmax", "feature_range": [1, 0]}, "low < high"),
        ({"step": "image"}, "at least one of flip"),
        ({"step": "standardize", "with_mean": False}, "Extra inputs"),
    ],
)
def test_bad_step_options_are_refused(step: dict, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        parse_spec(spec_with(step))


def test_every_step_validates_with_its_defaults_without_importing_sklearn() -> None:
    steps = [{"step": n} for n in STEP_NAMES if n not in ("log", "image")]
    steps += [{"step": "log", "columns": ["a"]}, {"step": "image", "flip": True}]
    code = (
        "import sys, ml.spec; "
        f"s = ml.spec.parse_spec({spec_with(*steps)!r}); "
        "print(len(s.preprocess), 'torch' in sys.modules, 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(len(STEP_NAMES)), "False", "False"]


# --- fitted on the training rows only ---------------------------------------------------------


# step -> (what the fitted pipeline learned, the same thing computed from some rows by hand)
LEARNED = {
    "standardize": (lambda p: p.steps[0][1].mean_, lambda X, y: X.mean(axis=0)),
    "minmax": (lambda p: p.steps[0][1].data_min_, lambda X, y: X.min(axis=0)),
    "robust": (lambda p: p.steps[0][1].center_, lambda X, y: np.median(X, axis=0)),
    "pca": (
        lambda p: np.abs(p.steps[0][1].components_),
        lambda X, y: np.abs(PCA(n_components=1).fit(X).components_),
    ),
    "select": (
        lambda p: np.array(p.feature_names),
        lambda X, y: np.array(NAMES)[SelectKBest(f_classif, k=1).fit(X, y).get_support()],
    ),
    "polar": (lambda p: p.steps[0][1].pole_, lambda X, y: X[:, [0, 1]].mean(axis=0)),
}
STEP_OF = {
    "standardize": {"step": "standardize"},
    "minmax": {"step": "minmax"},
    "robust": {"step": "robust"},
    "pca": {"step": "pca", "n_components": 1},
    "select": {"step": "select", "method": "anova", "k": 1},
    "polar": {"step": "polar", "x": "c0", "y": "c1", "center": "mean"},
}


@pytest.mark.parametrize("name", list(LEARNED))
def test_step_learns_from_the_training_rows_only(name: str, shifted) -> None:
    X_train, y_train, X_other, y_other = shifted
    learned, by_hand = LEARNED[name]
    pipeline, _, _ = fit([STEP_OF[name]], X_train, y_train)
    X_all, y_all = np.vstack([X_train, X_other]), np.concatenate([y_train, y_other])
    on_train, on_all = by_hand(X_train, y_train), by_hand(X_all, y_all)
    assert not np.array_equal(np.asarray(on_train), np.asarray(on_all))  # the case tells them apart
    if np.asarray(on_train).dtype.kind == "U":
        assert np.array_equal(learned(pipeline), on_train)
    else:
        assert np.allclose(learned(pipeline), on_train, atol=1e-6)
    assert pipeline.reports[0]["fitted_on_rows"] == len(X_train)


def test_impute_fills_with_training_statistics(shifted) -> None:
    X_train, y_train, X_other, _ = shifted
    X_train = X_train.copy()
    X_train[:10, 2] = np.nan
    pipeline, Xt, _ = fit([{"step": "impute", "strategy": "median"}], X_train, y_train)
    fill = float(np.nanmedian(X_train[:, 2]))
    assert np.allclose(Xt[:10, 2], fill) and pipeline.reports[0]["missing_in_training"] == {"c2": 10}
    holes = X_other[:3].copy()
    holes[:, 2] = np.nan
    assert np.allclose(pipeline.transform(holes)[:, 2], fill)


LEAKABLE = [
    [{"step": "standardize"}],
    [{"step": "minmax"}],
    [{"step": "robust"}],
    [{"step": "standardize"}, {"step": "pca", "n_components": 2}],
    [{"step": "standardize"}, {"step": "ica", "n_components": 2}],
    [{"step": "select", "method": "anova", "k": 1}],
    [{"step": "select", "method": "mutual_info", "k": 1}],
    [{"step": "select", "method": "variance", "threshold": 5.0}],
    [{"step": "select", "method": "l1", "k": 1}],
    [{"step": "select", "method": "tree", "k": 1}],
    [{"step": "select", "method": "rfe", "cv": 2}],
    [{"step": "select", "method": "sequential", "k": 1, "cv": 2}],
    [{"step": "polar", "x": "c0", "y": "c1", "center": "mean"}],
    [{"step": "standardize"}, {"step": "balance", "method": "smote"}, {"step": "polynomial"}],
]


@pytest.mark.parametrize("steps", LEAKABLE, ids=lambda s: "+".join(x.get("method", x["step"]) for x in s))
def test_leakage_check_passes_honest_fits_and_names_leaky_ones(steps: list[dict], shifted) -> None:
    X_train, y_train, X_other, y_other = shifted
    specs = [PreprocessStep(**s) for s in steps]
    honest, _, _ = fit(steps, X_train, y_train)
    assert find_leakage(honest, specs, X_train, y_train, NAMES, X_other) is None
    leaky, _, _ = fit(steps, np.vstack([X_train, X_other]), np.concatenate([y_train, y_other]))
    leaky.reports = honest.reports  # even with the row counts hidden, the outputs give it away
    reason = find_leakage(leaky, specs, X_train, y_train, NAMES, X_other)
    assert reason is not None and "fitted on rows outside the training part" in reason


def test_a_step_fitted_on_more_than_the_training_part_makes_the_check_fail() -> None:
    """The issue's rule, on a real split: fitting on training + validation rows is caught."""
    data = load_dataset(DataSpec(source="builtin/wine"), 0)
    split = split_dataset(data, test=0.2, validation=0.25, stratify=True, seed=0)
    steps = [PreprocessStep(step="standardize"), PreprocessStep(step="pca", n_components=0.9)]
    X_train, y_train, X_val = data.X[split.train], data.y[split.train], data.X[split.validation]
    honest, _, _ = fit_preprocessing(steps, X_train, y_train, data.feature_names)
    assert_fitted_on_training_only(honest, steps, X_train, y_train, data.feature_names, X_val)

    rest = np.concatenate([split.train, split.validation])
    leaky, _, _ = fit_preprocessing(steps, data.X[rest], data.y[rest], data.feature_names)
    with pytest.raises(PreprocessingLeak, match=r"step 1 \(standardize\) was fitted on rows outside"):
        assert_fitted_on_training_only(leaky, steps, X_train, y_train, data.feature_names, X_val)


# --- reports ----------------------------------------------------------------------------------


def test_select_reports_kept_and_dropped_columns_with_scores(shifted) -> None:
    X_train, y_train, _, _ = shifted
    pipeline, Xt, _ = fit([{"step": "select", "method": "anova", "k": 2}], X_train, y_train)
    report = pipeline.reports[0]
    f_scores = f_classif(X_train, y_train)[0]
    best = [NAMES[i] for i in sorted(np.argsort(f_scores)[-2:])]
    assert report["kept"] == best == pipeline.feature_names and Xt.shape == (200, 2)
    assert set(report["dropped"]) == set(NAMES) - set(best)
    assert report["scores"]["c0"] == pytest.approx(f_scores[0], rel=1e-5) and report["score"] == "f_statistic"


@pytest.mark.parametrize(
    "step",
    [
        {"step": "select", "method": "mutual_info", "k": 1},
        {"step": "select", "method": "l1", "alpha": 0.2},
        {"step": "select", "method": "tree", "k": 1},
        {"step": "select", "method": "rfe", "cv": 2},
        {"step": "select", "method": "sequential", "k": 1, "cv": 2},
    ],
    ids=lambda s: s["method"],
)
def test_every_selection_method_finds_the_informative_column(step: dict, shifted) -> None:
    X_train, y_train, _, _ = shifted
    pipeline, _, _ = fit([{"step": "standardize"}, step], X_train, y_train, seed=1)
    assert "c0" in pipeline.reports[1]["kept"] and len(pipeline.reports[1]["kept"]) <= 2


def test_pca_reports_explained_variance(shifted) -> None:
    X_train, y_train, X_other, _ = shifted
    pipeline, Xt, _ = fit([{"step": "pca", "n_components": 0.8}], X_train, y_train)
    reference = PCA(n_components=0.8).fit(X_train)
    report = pipeline.reports[0]
    assert report["components"] == reference.n_components_ == Xt.shape[1]
    assert np.allclose(report["explained_variance_ratio"], reference.explained_variance_ratio_, atol=1e-6)
    assert report["explained_variance_total"] == pytest.approx(reference.explained_variance_ratio_.sum(), abs=1e-6)
    assert report["explained_variance_total"] >= 0.8
    assert pipeline.feature_names == [f"pc{i + 1}" for i in range(Xt.shape[1])]
    assert pipeline.transform(X_other).shape == (400, Xt.shape[1])


# --- transformations --------------------------------------------------------------------------


def test_polar_gives_r_and_theta_in_place_of_x_and_y() -> None:
    X = np.array([[7.0, 1.0, 0.0], [7.0, 0.0, 2.0], [7.0, -1.0, 0.0], [7.0, 0.0, -3.0], [7.0, 1.0, 1.0]])
    pipeline, Xt, _ = fit([{"step": "polar"}], X, np.zeros(5, dtype=np.int64), ["z", "x", "y"])
    assert pipeline.feature_names == ["z", "r", "theta"]
    assert np.allclose(Xt[:, 0], 7.0)
    assert np.allclose(Xt[:, 1], [1, 2, 1, 3, np.sqrt(2)])
    assert np.allclose(Xt[:, 2], [0, np.pi / 2, np.pi, -np.pi / 2, np.pi / 4])
    centred, _, _ = fit([{"step": "polar", "center": "mean"}], X + [0, 5, -5], np.zeros(5), ["z", "x", "y"])
    pole = centred.steps[0][1].pole_
    assert np.allclose(pole, X[:, 1:].mean(axis=0) + [5, -5])
    shifted_back = centred.transform(np.array([[0.0, pole[0] + 2.0, pole[1]]]))
    assert np.allclose(shifted_back[0, 1:], [2.0, 0.0], atol=1e-5)


@pytest.mark.parametrize(
    ("step", "missing"),
    [({"step": "polar", "x": "x", "y": "height"}, "height"), ({"step": "log", "columns": ["a", "income"]}, "income")],
)
def test_missing_column_names_it_and_the_available_ones(step: dict, missing: str) -> None:
    X = np.abs(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(DataError, match=rf"no column named '{missing}'.*available: a, x, b"):
        fit([step], X, np.zeros(20), ["a", "x", "b"])


def test_polar_after_pca_reports_the_renamed_columns() -> None:
    X = np.random.default_rng(0).normal(size=(30, 3))
    with pytest.raises(DataError, match="available: pc1, pc2"):
        fit([{"step": "pca", "n_components": 2}, {"step": "polar"}], X, np.zeros(30), ["x", "y", "z"])


def test_log_transforms_named_columns_and_refuses_negative_ones() -> None:
    X = np.array([[0.0, -1.0], [np.e - 1, 2.0], [3.0, 4.0]])
    pipeline, Xt, _ = fit([{"step": "log", "columns": ["income"]}], X, np.zeros(3), ["income", "delta"])
    assert np.allclose(Xt[:, 0], [0.0, 1.0, np.log(4.0)]) and np.allclose(Xt[:, 1], X[:, 1])
    assert pipeline.transform(np.array([[-5.0, 0.0]]))[0, 0] == 0.0  # new rows below 0 are clipped
    with pytest.raises(DataError, match="'delta' has negative values"):
        fit([{"step": "log", "columns": ["delta"]}], X, np.zeros(3), ["income", "delta"])


def test_polynomial_names_its_products_and_refuses_huge_expansions() -> None:
    X = np.arange(12, dtype=float).reshape(4, 3)
    pipeline, Xt, _ = fit(
        [{"step": "polynomial", "degree": 2, "interaction_only": True}], X, np.zeros(4), ["a", "b", "c"]
    )
    assert pipeline.feature_names == ["a", "b", "c", "a b", "a c", "b c"]
    assert np.allclose(Xt[:, 3], X[:, 0] * X[:, 1])
    wide = np.zeros((2, 200))
    with pytest.raises(DataError, match="limit is 10000"):
        fit([{"step": "polynomial", "degree": 3}], wide, np.zeros(2), [f"f{i}" for i in range(200)])


def test_empty_validation_part_transforms_to_no_rows(shifted) -> None:
    X_train, y_train, _, _ = shifted
    pipeline, _, _ = fit([{"step": "standardize"}, {"step": "pca", "n_components": 2}], X_train, y_train)
    assert pipeline.transform(np.empty((0, 5))).shape == (0, 2)


def test_spec_defaults_are_those_of_the_models() -> None:
    step = parse_spec(spec_with({"step": "select"})).preprocess[0]
    assert isinstance(step, SelectStep) and step.method == "anova" and step.k is None

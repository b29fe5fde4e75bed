"""Wrapper selectors score column sets with a measure the majority class cannot fake, and the
variance filter reports (and judges by) the variance."""

from __future__ import annotations

import numpy as np
import pytest

from ml.errors import DataError
from ml.preprocessing.selection import ColumnVariance
from ml.run import run_experiment
from tests.ml.methodology_cases import clinic, load, multiclass, regression, spec

INFORMATIVE = {"age", "bmi", "pressure", "glucose"}


def _selection(raw: bytes, seed: int, metrics: list[str] | None = None, **select: object) -> dict:
    preprocess = [{"step": "standardize"}, {"step": "select", **select}]
    s = {**spec({"type": "linear"}, epochs=2, preprocess=preprocess, metrics=metrics), "seed": seed}
    summary = run_experiment(s, resolve_upload=lambda _id, _spec: load(raw))
    return next(r for r in summary["preprocess"] if r.get("method") == select["method"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backward_search_on_5_percent_positives_keeps_the_informative_columns(seed: int) -> None:
    report = _selection(clinic(seed), seed, method="sequential", direction="backward", k=4)
    assert report["scoring"] == "roc_auc"
    assert set(report["kept"]) == INFORMATIVE


@pytest.mark.parametrize("seed", [1, 2])
def test_rfe_by_default_keeps_every_informative_column(seed: int) -> None:
    report = _selection(clinic(seed), seed, method="rfe")
    assert report["scoring"] == "roc_auc"
    assert set(report["kept"]) >= INFORMATIVE


def test_auto_scoring_follows_the_task() -> None:
    assert _selection(multiclass(0, n=600), 0, method="rfe", cv=2)["scoring"] == "balanced_accuracy"
    assert _selection(regression(0, n=600), 0, metrics=None, method="rfe", cv=2)["scoring"] == "r2"


def test_a_scoring_of_the_wrong_task_is_refused_by_name() -> None:
    with pytest.raises(DataError, match="scoring r2 does not apply to a classification task"):
        _selection(clinic(0, n=600), 0, method="rfe", scoring="r2")
    with pytest.raises(DataError, match="scoring roc_auc needs two classes"):
        _selection(multiclass(0, n=600), 0, method="rfe", scoring="roc_auc")


def test_scoring_is_refused_for_a_method_that_does_not_read_it() -> None:
    from pydantic import ValidationError

    from ml.spec import PreprocessStep

    with pytest.raises(ValidationError, match="scoring does not apply to method anova"):
        PreprocessStep(step="select", method="anova", scoring="roc_auc")


def test_the_variance_filter_reports_and_judges_the_variance() -> None:
    rng = np.random.default_rng(0)
    wide = rng.normal(0, 289, 2000).clip(-499, 500)  # variance ~ 8e4, range 999
    X = np.c_[wide, np.full(2000, 7.0), rng.normal(size=2000)]
    selector = ColumnVariance(threshold=1000.0).fit(X)
    assert np.isclose(selector.variances_[0], wide.var())
    assert selector.variances_[1] == 0.0
    assert selector.get_support().tolist() == [True, False, False]

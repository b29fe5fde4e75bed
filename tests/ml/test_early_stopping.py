"""Early stopping on any validation metric, and a validation loss weighted like the training loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.errors import DataError
from ml.preprocessing.balance import validation_class_weights
from ml.reporter import RecordingReporter
from ml.run import run_experiment
from ml.training.loop import evaluate_loss, loss_function
from tests.ml.test_train import tiny


@pytest.mark.parametrize(("monitor", "higher"), [("val_roc_auc", True), ("val_f1", True), ("val_loss", False)])
def test_the_best_epoch_is_the_best_value_of_the_monitored_metric(monitor: str, higher: bool) -> None:
    spec = tiny(
        data={"source": "synthetic/moons", "options": {"n_samples": 400, "noise": 0.45}},
        model={"hidden": [128, 128]},
        train={"epochs": 60, "optimizer": {"lr": 0.01}, "early_stopping": {"patience": 6, "monitor": monitor}},
    )
    reporter = RecordingReporter()
    summary = run_experiment(spec, reporter)
    values = reporter.series("validation", monitor.removeprefix("val_"))
    assert len(values) == summary["epochs_run"]
    best = (max if higher else min)(values)
    assert values[summary["best_epoch"] - 1] == best
    assert values.index(best) == summary["best_epoch"] - 1  # the first epoch reaching it
    if summary["stopped_early"]:
        assert summary["epochs_run"] == summary["best_epoch"] + 6


def test_regression_monitors_r2_upwards() -> None:
    spec = tiny(
        data={"source": "synthetic/regression", "options": {"n_samples": 300, "n_features": 5}},
        preprocess=[{"step": "standardize"}],
        train={"epochs": 30, "optimizer": {"lr": 0.01}, "early_stopping": {"patience": 5, "monitor": "val_r2"}},
    )
    reporter = RecordingReporter()
    summary = run_experiment(spec, reporter)
    r2 = reporter.series("validation", "r2")
    assert r2[summary["best_epoch"] - 1] == max(r2)


def test_a_monitor_of_the_other_task_is_refused_by_name() -> None:
    spec = tiny(train={"epochs": 3, "early_stopping": {"monitor": "val_r2"}})
    with pytest.raises(DataError, match="val_r2 does not apply to a classification task"):
        run_experiment(spec)


def test_a_metric_monitor_needs_a_validation_split() -> None:
    spec = tiny(train={"epochs": 3, "early_stopping": {"monitor": "val_roc_auc"}})
    spec["data"]["split"] = {"test": 0.2, "validation": 0.0}
    with pytest.raises(DataError, match="needs a validation split"):
        run_experiment(spec)


def test_validation_weights_make_the_validation_mix_count_like_the_training_mix() -> None:
    rng = np.random.default_rng(0)
    y_fit = np.array([0] * 50 + [1] * 50)  # after under-sampling to 50/50
    y_val = (rng.random(2000) < 0.05).astype(np.int64)  # the true 5 % mix
    weights = validation_class_weights(y_fit, None, y_val, 2)
    shares = np.bincount(y_val, minlength=2) * weights
    assert np.allclose(shares / shares.sum(), [0.5, 0.5])
    # with class weights instead of resampling: the weighted training mix is the target
    y_train = (rng.random(1000) < 0.05).astype(np.int64)
    cw = np.array([1.0, 9.0])
    weights = validation_class_weights(y_train, cw, y_val, 2)
    fit = np.bincount(y_train, minlength=2) * cw
    shares = np.bincount(y_val, minlength=2) * weights
    assert np.allclose(shares / shares.sum(), fit / fit.sum())


def test_weighted_validation_loss_is_the_weighted_mean_over_batches() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    X, y = torch.randn(1000, 3), (torch.rand(1000) < 0.1).long()
    w = torch.tensor([0.55, 5.0])
    loss, _, _ = evaluate_loss(model, X, y, "classification", batch_size=64, class_weights=w)
    whole = loss_function("classification", w)(model(X), y)  # one batch: torch's weighted mean
    assert torch.isclose(loss, whole, rtol=1e-5)

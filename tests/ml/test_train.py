"""The train kind on tiny seeded data: splits, leakage, determinism, learning, divergence."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from ml.data.sources import load_dataset, split_dataset
from ml.errors import Cancelled, TrainingDiverged
from ml.preprocessing import fit_preprocessing
from ml.reporter import RecordingReporter, Reporter
from ml.run import run_experiment
from ml.spec import DataSpec, PreprocessStep, parse_spec


def tiny(**over) -> dict:
    spec = {
        "name": "tiny",
        "seed": 3,
        "data": {"source": "synthetic/moons", "options": {"n_samples": 300, "noise": 0.1}},
        "model": {"hidden": [16]},
        "train": {"epochs": 5, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}},
    }
    for key, value in over.items():
        spec[key] = value
    return spec


def test_split_sizes_and_stratification() -> None:
    data = load_dataset(
        DataSpec(source="synthetic/imbalanced", options={"n_samples": 2000, "positive_fraction": 0.1}), 0
    )
    split = split_dataset(data, test=0.2, validation=0.25, stratify=True, seed=0)
    assert (len(split.test), len(split.validation), len(split.train)) == (400, 400, 1200)
    assert not set(split.train) & set(split.test) and not set(split.validation) & set(split.test)
    for part in (split.train, split.validation, split.test):
        assert data.y[part].mean() == pytest.approx(0.1, abs=0.005)


def test_scaler_is_fitted_on_training_rows_only() -> None:
    rng = np.random.default_rng(0)
    X_train = rng.normal(5.0, 2.0, size=(200, 3)).astype(np.float32)
    X_other = rng.normal(50.0, 2.0, size=(200, 3)).astype(np.float32)
    y = np.zeros(200, dtype=np.int64)
    pipeline, Xt, _ = fit_preprocessing([PreprocessStep(step="standardize")], X_train, y, ["a", "b", "c"])
    scaler = pipeline.steps[0][1]
    assert np.allclose(scaler.mean_, X_train.mean(axis=0), atol=1e-4)
    assert np.allclose(Xt.mean(axis=0), 0, atol=1e-5)
    # validation/test rows are transformed with the training statistics, not their own
    assert pipeline.transform(X_other).mean() > 10
    assert pipeline.reports[0]["fitted_on_rows"] == 200


def test_same_seed_same_result_and_different_seed_differs() -> None:
    # bitwise equality: pinned to the CPU (CUDA kernels are not bitwise deterministic)
    spec = tiny(train={"epochs": 5, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}, "device": "cpu"})
    first, second = RecordingReporter(), RecordingReporter()
    a = run_experiment(spec, first)
    b = run_experiment(spec, second)
    assert first.rows == second.rows and a["test"] == b["test"]
    other = RecordingReporter()
    run_experiment({**spec, "seed": 4}, other)
    assert other.rows != first.rows


def test_tiny_model_overfits_a_tiny_batch() -> None:
    spec = tiny(
        data={"source": "builtin/iris", "split": {"test": 0.5, "validation": 0.5}},
        model={"hidden": [64, 64]},
        train={"epochs": 300, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.01}},
    )
    reporter = RecordingReporter()
    run_experiment(spec, reporter)
    loss = reporter.series("train", "loss")
    assert loss[-1] < 0.02 * loss[0] and reporter.series("train", "accuracy")[-1] == 1.0


def test_metrics_once_per_epoch_for_each_split() -> None:
    reporter = RecordingReporter()
    summary = run_experiment(tiny(), reporter)
    steps = sorted({r["step"] for r in reporter.rows})
    assert steps == [1, 2, 3, 4, 5]
    names = {(r["split"], r["name"]) for r in reporter.rows}
    assert {("train", "loss"), ("train", "accuracy"), ("validation", "loss"), ("validation", "accuracy")} <= names
    assert len(reporter.rows) == len(set((r["step"], r["split"], r["name"]) for r in reporter.rows))
    assert summary["epochs_run"] == 5 and 0.0 <= summary["test"]["accuracy"] <= 1.0
    assert summary["dataset"]["split"] == {"train": 192, "validation": 48, "test": 60}
    assert "predictions.csv" in reporter.artifacts


def test_regression_reports_rmse() -> None:
    reporter = RecordingReporter()
    summary = run_experiment(tiny(data={"source": "builtin/diabetes"}, train={"epochs": 3}), reporter)
    assert summary["task"] == "regression" and summary["test"]["rmse"] > 0
    assert reporter.series("validation", "rmse")


def test_early_stopping_restores_best_epoch() -> None:
    spec = tiny(
        data={"source": "synthetic/moons", "options": {"n_samples": 200, "noise": 0.4}},
        model={"hidden": [256, 256]},
        train={"epochs": 200, "optimizer": {"lr": 0.01}, "early_stopping": {"patience": 5}},
    )
    reporter = RecordingReporter()
    summary = run_experiment(spec, reporter)
    val = reporter.series("validation", "loss")
    assert summary["stopped_early"] and summary["epochs_run"] == summary["best_epoch"] + 5
    assert min(val) == val[summary["best_epoch"] - 1]


def test_divergence_names_epoch_and_learning_rate() -> None:
    spec = tiny(
        data={"source": "builtin/diabetes", "split": {"test": 0.2, "validation": 0.2}},
        preprocess=[],
        train={"epochs": 20, "optimizer": {"name": "sgd", "lr": 10.0}},
    )
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch \d+: .*learning rate 10"):
        run_experiment(spec, Reporter())


def test_should_stop_cancels_between_batches() -> None:
    class StopAfter(Reporter):
        calls = 0

        def should_stop(self) -> bool:
            self.calls += 1
            return self.calls > 3

    with pytest.raises(Cancelled):
        run_experiment(tiny(), StopAfter())


def test_dropout_is_off_at_evaluation() -> None:
    from ml.models import build_model
    from ml.spec import ModelSpec

    model = build_model(ModelSpec(hidden=[32], dropout=0.5), 4, 2)
    x = torch.randn(8, 4)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_spec_import_does_not_import_torch() -> None:
    code = (
        "import sys, ml.spec; ml.spec.parse_spec({'name': 'x', 'data': {'source': 'builtin/iris'}}); "
        "print('torch' in sys.modules, 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_spec_rejects_unknown_fields() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="extra"):
        parse_spec({**tiny(), "model": {"hidden": [4], "layers": 3}})

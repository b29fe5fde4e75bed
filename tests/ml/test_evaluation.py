"""Evaluation the course's way: metrics recomputable from predictions.csv, thresholds chosen on
validation only, the baseline and its warning, the diagnosis on the examples, and k-fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn import metrics as skm

from ml.data.sources import load_dataset, split_dataset
from ml.evaluation.metrics import choose_threshold
from ml.fanout.base import ChildResult, read_predictions
from ml.planners import planner_for
from ml.reporter import RecordingReporter
from ml.run import run_experiment
from ml.spec import DataSpec, parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str, **train_over) -> dict:
    spec = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    spec["train"].update(train_over)
    return spec


def binary_spec(threshold) -> dict:
    return {
        "name": "bin",
        "seed": 5,
        "data": {"source": "synthetic/imbalanced", "options": {"n_samples": 3000, "positive_fraction": 0.1}},
        "model": {"hidden": [16]},
        "train": {"epochs": 8, "batch_size": 128, "optimizer": {"lr": 0.01}},
        "evaluate": {
            "metrics": ["accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "balanced_accuracy"],
            "threshold": threshold,
        },
    }


def test_summary_metrics_equal_sklearn_recomputed_from_predictions() -> None:
    reporter = RecordingReporter()
    summary = run_experiment(binary_spec("youden"), reporter)
    p = read_predictions(reporter.artifacts["predictions.csv"])
    y, score, pred = p["true"].astype(int), p["p1"], p["predicted"].astype(int)
    t = summary["threshold"]["value"]
    assert np.array_equal(pred, (score >= t).astype(int))
    test = summary["test"]
    assert test["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert test["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0))
    assert test["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert test["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert test["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-6)
    assert test["pr_auc"] == pytest.approx(skm.average_precision_score(y, score), abs=1e-6)
    assert {"roc.png", "pr.png", "confusion_matrix.png", "learning_curves.png"} <= set(reporter.artifacts)


def test_threshold_is_chosen_on_validation_never_on_test() -> None:
    reporter = RecordingReporter()
    summary = run_experiment(binary_spec("max_f1"), reporter)
    assert summary["threshold"]["chosen_on"] == "validation"
    p = read_predictions(reporter.artifacts["predictions.csv"])
    on_test = choose_threshold(p["true"].astype(int), p["p1"], "max_f1")
    # the threshold the run used differs from the one test data would have picked
    assert summary["threshold"]["value"] != pytest.approx(on_test, abs=1e-9)
    fixed = run_experiment(binary_spec(0.3), RecordingReporter())
    assert fixed["threshold"] == {"value": 0.3, "method": "fixed", "chosen_on": None}


def test_imbalanced_example_warns_and_reports_the_real_metrics() -> None:
    summary = run_experiment(example("imbalanced-illness", epochs=10), RecordingReporter())
    assert summary["baseline"]["accuracy"] >= 0.98
    assert summary["test"]["accuracy"] - summary["baseline"]["accuracy"] < 0.02
    assert any("misleading" in w and "recall" in w for w in summary["warnings"])
    assert summary["test"]["recall"] < 0.9 and summary["test"]["pr_auc"] < 0.9


@pytest.mark.parametrize(
    ("name", "verdict"), [("overfit", "overfit"), ("underfit", "underfit"), ("quickstart", "good")]
)
def test_examples_are_diagnosed_as_intended(name: str, verdict: str) -> None:
    summary = run_experiment(example(name), RecordingReporter())
    diagnosis = summary["diagnosis"]
    assert diagnosis["verdict"] == verdict, diagnosis
    assert diagnosis["advice"] and diagnosis["evidence"]


def test_duplicated_rows_across_splits_are_reported() -> None:
    from ml.evaluation.evaluate import duplicate_rows

    data = load_dataset(DataSpec(source="builtin/digits"), 0)  # digits has a few exact duplicates
    split = split_dataset(data, 0.2, 0.2, True, 0)
    X = data.X.copy()
    X[split.test[:5]] = X[split.train[:5]]
    found = duplicate_rows(X, split)
    assert found["test_rows_in_train"] >= 5


def test_kfold_folds_are_disjoint_and_test_is_the_same_for_all() -> None:
    data = load_dataset(DataSpec(source="builtin/breast_cancer"), 0)
    splits = [split_dataset(data, 0.2, 0.0, True, 0, folds=5, fold=k) for k in range(5)]
    vals = np.concatenate([s.validation for s in splits])
    assert len(vals) == len(set(vals)) == len(splits[0].train) + len(splits[0].validation)
    assert all(np.array_equal(s.test, splits[0].test) for s in splits)
    assert not set(vals) & set(splits[0].test)


def test_kfold_planner_runs_children_and_summarizes_mean_std_and_one_test() -> None:
    spec = parse_spec(yaml.safe_load((EXAMPLES / "kfold.yaml").read_text()) | {"train": {"epochs": 5}})
    planner = planner_for(spec)
    plans = planner.initial(spec)
    assert [p.params["fold"] for p in plans] == [0, 1, 2, 3, 4]
    children, artifacts = [], {}
    for i, plan in enumerate(plans):
        assert planner_for(plan.spec) is None  # a fold does not fan out again
        reporter = RecordingReporter()
        summary = run_experiment(plan.spec, reporter)
        assert "test" not in summary  # sealed in the folds
        artifacts[i] = reporter.artifacts
        children.append(ChildResult(i, plan.name, "succeeded", plan.spec, summary, None, 1.0))

    class Stored:
        def metrics(self, child_id):
            return []

        def artifact(self, child_id, name):
            return artifacts[child_id].get(name)

    summary = planner.summarize(spec, children, Stored(), RecordingReporter())
    accs = [c.summary["validation"]["accuracy"] for c in children]
    assert summary["validation"]["accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert summary["validation"]["accuracy"]["std"] == pytest.approx(np.std(accs, ddof=1))  # the sample std
    assert 0.8 < summary["test"]["accuracy"] <= 1.0 and summary["folds"] == 5


@pytest.mark.parametrize(
    ("source", "task_metric"), [("builtin/breast_cancer", "roc_auc"), ("builtin/diabetes", "rmse")]
)
def test_every_metric_can_be_recomputed_exactly_from_the_prediction_files(source: str, task_metric: str) -> None:
    import csv
    import io

    from sklearn.metrics import mean_squared_error, roc_auc_score

    from ml.reporter import RecordingReporter
    from ml.run import run_experiment

    reporter = RecordingReporter()
    spec = {
        "name": "p",
        "seed": 3,
        "data": {"source": source},
        "train": {"epochs": 5},
        "evaluate": {"metrics": [task_metric]},
    }
    summary = run_experiment(spec, reporter)
    rows = list(csv.DictReader(io.StringIO(reporter.artifacts["predictions.csv"].decode())))
    validation = list(csv.DictReader(io.StringIO(reporter.artifacts["validation_predictions.csv"].decode())))
    assert validation and {"row", "true", "predicted"} <= set(validation[0])  # the threshold's rows, recomputable
    if task_metric == "roc_auc":
        value = roc_auc_score([int(r["true"]) for r in rows], [float(r["p1"]) for r in rows])
    else:
        value = mean_squared_error([float(r["true"]) for r in rows], [float(r["predicted"]) for r in rows]) ** 0.5
    assert value == pytest.approx(summary["test"][task_metric], rel=1e-12, abs=1e-12)

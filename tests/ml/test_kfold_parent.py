"""The k-fold parent: a threshold chosen on the pooled out-of-fold predictions, a baseline and the
warnings of a train run, and the same test rows in every fold even when deduplicating."""

from __future__ import annotations

import numpy as np

from ml.evaluation.metrics import choose_threshold
from ml.fanout.base import ChildResult, read_predictions
from ml.planners import planner_for
from ml.reporter import RecordingReporter
from ml.run import run_experiment
from ml.spec import parse_spec
from tests.ml.methodology_cases import clinic, load, spec


def _kfold(raw: bytes, preprocess: list[dict] | None = None) -> tuple[dict, list[dict], dict]:
    s = spec({"type": "linear"}, epochs=15, preprocess=preprocess)
    s["data"]["split"] = {"test": 0.2, "folds": 4}
    s["evaluate"]["threshold"] = "youden"
    parsed = parse_spec(s)
    planner = planner_for(parsed)
    children, artifacts = [], {}
    for i, plan in enumerate(planner.initial(parsed)):
        reporter = RecordingReporter()
        summary = run_experiment(plan.spec, reporter, resolve_upload=lambda _id, _spec: load(raw))
        artifacts[i] = reporter.artifacts
        children.append(ChildResult(i, plan.name, "succeeded", plan.spec, summary, None, 1.0))

    class Stored:
        def metrics(self, child_id: int) -> list:
            return []

        def artifact(self, child_id: int, name: str) -> bytes | None:
            return artifacts[child_id].get(name)

    return planner.summarize(parsed, children, Stored(), RecordingReporter()), [c.summary for c in children], artifacts


def test_the_threshold_is_chosen_once_on_the_pooled_out_of_fold_predictions() -> None:
    summary, _, artifacts = _kfold(clinic(0, n=1500))
    pooled = [read_predictions(a["validation_predictions.csv"]) for a in artifacts.values()]
    rows = np.concatenate([p["row"] for p in pooled])
    assert len(rows) == len(set(rows.tolist())) == 1200  # every non-test row once
    expected = choose_threshold(
        np.concatenate([p["true"] for p in pooled]).astype(int), np.concatenate([p["p1"] for p in pooled]), "youden"
    )
    assert summary["threshold"]["value"] == expected
    assert "pooled out-of-fold" in summary["threshold"]["chosen_on"]


def test_the_parent_has_a_baseline_and_the_accuracy_warning_on_imbalanced_data() -> None:
    summary, _, _ = _kfold(clinic(1, n=1500))
    assert summary["baseline"]["majority_class_name"] == "healthy"
    assert summary["baseline"]["accuracy"] > 0.9
    assert any("Accuracy is misleading" in w for w in summary["warnings"])
    assert "sample" in summary["std"]


def test_deduplicating_folds_keep_one_common_test_split() -> None:
    summary, folds, artifacts = _kfold(
        clinic(2, n=1500, duplicated=0.1), [{"step": "deduplicate"}, {"step": "standardize"}]
    )
    tests = [read_predictions(a["predictions.csv"])["row"] for a in artifacts.values()]
    assert all(np.array_equal(t, tests[0]) for t in tests)
    assert all(f["leakage"]["deduplicated"]["test_removed"] > 0 for f in folds)
    assert summary["test_rows"] == len(tests[0])
    assert not any("leak" in w for w in summary["warnings"])

"""The data-preparation examples run and show their point (each against its comparison run)."""

from __future__ import annotations

import copy
import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ml.reporter import RecordingReporter
from ml.run import run_experiment
from ml.spec import parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OURS = ["pca-works", "pca-fails", "polar-transform", "polar-baseline", "feature-selection", "smote", "augmentation"]


def example(name: str, without: str | None = None) -> dict[str, Any]:
    spec = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    if without:
        spec["preprocess"] = [s for s in spec["preprocess"] if s["step"] != without]
    spec.setdefault("evaluate", {})["plots"] = False
    return spec


def run(spec: dict[str, Any]) -> tuple[dict[str, Any], RecordingReporter]:
    reporter = RecordingReporter()
    return run_experiment(copy.deepcopy(spec), reporter), reporter


def recall_of(reporter: RecordingReporter, label: int) -> float:
    rows = list(csv.DictReader(io.StringIO(reporter.artifacts["predictions.csv"].decode())))
    hits = [int(r["predicted"]) == label for r in rows if int(r["true"]) == label]
    return float(np.mean(hits))


@pytest.mark.parametrize("name", OURS)
def test_example_is_a_valid_spec_that_says_what_it_shows(name: str) -> None:
    text = (EXAMPLES / f"{name}.yaml").read_text()
    assert text.startswith("# ") and "ompare" in text.split("name:")[0]
    parse_spec(yaml.safe_load(text))


def test_pca_keeps_classes_apart_along_the_long_axis_and_loses_them_along_the_short_one() -> None:
    works, _ = run(example("pca-works"))
    fails, _ = run(example("pca-fails"))
    assert works["test"]["accuracy"] - fails["test"]["accuracy"] >= 0.15
    assert works["test"]["accuracy"] >= 0.9 and fails["test"]["accuracy"] <= 0.65
    for summary in (works, fails):
        pca = summary["preprocess"][0]
        assert pca["components"] == 1 and len(pca["explained_variance_ratio"]) == 1


def test_polar_coordinates_let_a_linear_model_separate_the_ring() -> None:
    polar, _ = run(example("polar-transform"))
    plain, _ = run(example("polar-baseline"))
    assert polar["test"]["accuracy"] - plain["test"]["accuracy"] >= 0.10
    assert polar["preprocess"][0]["replaced_by"] == ["r", "theta"]


def test_feature_selection_keeps_the_informative_columns_and_loses_nothing() -> None:
    selected, _ = run(example("feature-selection"))
    everything, _ = run(example("feature-selection", without="select"))
    report = selected["preprocess"][1]
    assert report["kept"] == [f"informative_{i}" for i in range(4)]
    assert all(
        report["scores"][k] > max(v for n, v in report["scores"].items() if n.startswith("noise"))
        for k in report["kept"]
    )
    assert selected["test"]["accuracy"] >= everything["test"]["accuracy"] - 0.02
    assert selected["parameters"] < everything["parameters"] / 3


def test_smote_raises_the_recall_of_the_minority_class() -> None:
    balanced, with_smote = run(example("smote"))
    _, without = run(example("smote", without="balance"))
    counts = balanced["preprocess"][1]
    assert counts["class_counts_after"]["0"] == counts["class_counts_after"]["1"] == counts["class_counts_before"]["0"]
    assert recall_of(with_smote, 1) >= recall_of(without, 1) + 0.1
    # the test part keeps its true class mix: resampling touched the training part only
    rows = list(csv.DictReader(io.StringIO(with_smote.artifacts["predictions.csv"].decode())))
    assert np.mean([int(r["true"]) for r in rows]) == pytest.approx(0.05, abs=0.01)


def test_image_augmentation_shrinks_the_train_validation_gap() -> None:
    def gap_and_val(reporter: RecordingReporter) -> tuple[float, float]:
        train, val = reporter.series("train", "accuracy"), reporter.series("validation", "accuracy")
        return float(np.mean(train[-10:]) - np.mean(val[-10:])), float(np.mean(val[-10:]))

    _, augmented = run(example("augmentation"))
    _, plain = run(example("augmentation", without="image"))
    gap_aug, val_aug = gap_and_val(augmented)
    gap_plain, val_plain = gap_and_val(plain)
    assert gap_aug < gap_plain - 0.03
    assert val_aug >= val_plain - 0.01

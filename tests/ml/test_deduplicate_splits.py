"""`deduplicate` removes the leakage between the parts, and the report covers test<->validation."""

from __future__ import annotations

import csv
import io

import numpy as np

from ml.run import run_experiment
from tests.ml.methodology_cases import clinic, load, spec


def _rows(raw: bytes) -> list[tuple[str, ...]]:
    return [tuple(r) for r in csv.reader(io.StringIO(raw.decode()))][1:]


def _run(raw: bytes, preprocess: list[dict], seed: int = 0) -> dict:
    return run_experiment(
        {**spec({"type": "linear"}, epochs=5, preprocess=preprocess), "seed": seed},
        resolve_upload=lambda _id, _spec: load(raw),
    )


def test_leakage_is_reported_between_every_pair_of_parts() -> None:
    raw = clinic(0, n=1500, duplicated=0.1)  # 150 records exported twice
    summary = _run(raw, [{"step": "standardize"}])
    leak = summary["leakage"]
    assert leak["validation_rows_in_train"] > 0 and leak["test_rows_in_train"] > 0
    assert leak["test_rows_in_validation"] > 0
    assert any("duplicated rows leak" in w for w in summary["warnings"])


def test_deduplicate_drops_validation_and_test_rows_that_repeat_earlier_parts() -> None:
    raw = clinic(1, n=1500, duplicated=0.1)
    plain = _run(raw, [{"step": "standardize"}], seed=1)
    summary = _run(raw, [{"step": "deduplicate"}, {"step": "standardize"}], seed=1)
    assert summary["leakage"]["validation_rows_in_train"] == 0
    assert summary["leakage"]["test_rows_in_train"] == 0
    assert summary["leakage"]["test_rows_in_validation"] == 0
    assert not any("leak" in w for w in summary.get("warnings", []))
    dropped = summary["leakage"]["deduplicated"]
    before, after = plain["dataset"]["split"], summary["dataset"]["split"]
    assert after["validation"] == before["validation"] - dropped["validation_removed"]
    assert after["test"] == before["test"] - dropped["test_removed"]
    # every duplicated record had a twin; the dropped ones are exactly those with a twin elsewhere
    assert dropped["validation_removed"] >= plain["leakage"]["validation_rows_in_train"]
    assert dropped["test_removed"] >= plain["leakage"]["test_rows_in_train"]


def test_without_across_splits_only_the_training_part_is_deduplicated() -> None:
    raw = clinic(2, n=1500, duplicated=0.1)
    summary = _run(raw, [{"step": "deduplicate", "across_splits": False}, {"step": "standardize"}], seed=2)
    assert "deduplicated" not in summary["leakage"]
    assert summary["leakage"]["test_rows_in_train"] > 0


def test_a_data_set_without_duplicates_loses_no_row() -> None:
    rows = _rows(clinic(3, n=800))
    assert len(set(rows)) == len(rows)
    summary = _run(clinic(3, n=800), [{"step": "deduplicate"}, {"step": "standardize"}], seed=3)
    assert summary["leakage"]["deduplicated"] == {"validation_removed": 0, "test_removed": 0}
    assert np.isclose(sum(summary["dataset"]["split"].values()), 800)

"""The methodology on data sets whose right verdict is known by construction
(`methodology_cases`): the diagnosis, its advice and the warnings must be right on every one,
for more than one draw of the data."""

from __future__ import annotations

import pytest

from ml.run import run_experiment
from tests.ml.methodology_cases import CASES, Case, load

SEEDS = (0, 1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_verdict_is_the_one_the_data_was_built_for(case: Case, seed: int) -> None:
    raw = case.data(seed)
    summary = run_experiment({**case.spec, "seed": seed}, resolve_upload=lambda _id, _spec: load(raw))
    diagnosis = summary["diagnosis"]
    assert diagnosis["verdict"] in case.verdicts, (case.why, diagnosis["explanation"])
    assert case.check(summary) == [], (case.why, diagnosis, summary.get("warnings"))
    if diagnosis["verdict"] == "underfit":  # the evidence names the measure the verdict rests on
        assert "reference_val_loss" in diagnosis["evidence"] or "baseline_loss" in diagnosis["evidence"]

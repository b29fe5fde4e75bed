"""The typed run summaries (`ml.spec.summary`) hold for the summaries real runs produce, and the
API publishes them: every kind run through `ml` in this process, on tiny seeded data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ml.spec.summary import (
    SUMMARY_MODELS,
    AnySummary,
    FanoutSummary,
    KFoldSummary,
    Summary,
    TrainSummary,
    parse_summary,
    summary_model,
)

MOONS = {"source": "synthetic/moons", "options": {"n_samples": 200, "noise": 0.2}}
TRAIN = {"epochs": 4, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.02}}


def train_spec(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "seed": 0,
        "data": MOONS,
        "model": {"hidden": [8]},
        "train": dict(TRAIN),
        "evaluate": {"plots": False},
        **extra,
    }


# kind (as the API shows it) -> a spec of it, small enough to run in seconds.
SPECS: dict[str, dict[str, Any]] = {
    "train": train_spec(
        "clf", train={**TRAIN, "lr_range_test": {"steps": 10}}, evaluate={"plots": False, "threshold": "youden"}
    ),
    "train/regression": {
        "name": "reg",
        "seed": 0,
        "data": {"source": "synthetic/regression"},
        "model": {"hidden": [8]},
        "train": dict(TRAIN),
        "evaluate": {"plots": False},
    },
    "train/hypergradient": train_spec("hd", trial={"study": "none", "number": 0, "hypergradient": {"beta": 0.02}}),
    "train/transfer": train_spec("tl", init={"from_experiment": "clf", "freeze": 1}),
    "pinn": {
        "kind": "pinn",
        "name": "pinn",
        "seed": 0,
        "network": {"hidden": [8]},
        "collocation": {"interior": 64, "initial": 16, "boundary": 16},
        "optimizer": {"adam_steps": 20, "adam_lr": 0.01, "lbfgs_steps": 5},
        "evaluation_grid": {"nx": 11, "nt": 6},
    },
    "analytic": {"kind": "analytic", "name": "f", "function": "quadratic", "h1": 0.5, "h2": 1.0},
    "analytic/descent": {
        "kind": "analytic",
        "name": "fd",
        "function": "quadratic",
        "h1": 0.5,
        "h2": 1.0,
        "descent": {"lr": 0.05, "steps": 5, "hypergradient": {"beta": 0.01}},
    },
    "kfold": {**train_spec("k"), "data": {**MOONS, "split": {"folds": 3}}},
    "compare": {
        "kind": "compare",
        "name": "cmp",
        "seed": 0,
        "base": train_spec("b"),
        "variants": [{"label": "sgd", "set": {"train.optimizer.name": "sgd"}}, {"label": "adam"}],
    },
    "search": {
        "kind": "search",
        "name": "s",
        "seed": 0,
        "base": {"kind": "analytic", "function": "quadratic"},
        "space": {"h1": {"type": "float", "low": -2, "high": 4}, "h2": {"type": "float", "low": -2, "high": 4}},
        "method": "random",
        "trials": 4,
        "parallel": 1,
    },
    "ensemble": {"kind": "ensemble", "name": "bag", "seed": 0, "base": train_spec("m"), "members": 2},
}


@pytest.fixture(scope="module")
def runs() -> dict[str, Any]:
    """Every spec of `SPECS` run to the end in one in-process host (transfer loads `clf`)."""
    from ml.local import LocalHost

    host = LocalHost()
    out = {}
    for label, spec in SPECS.items():
        experiment = host.run(spec)
        assert experiment.status == "succeeded", (label, experiment.error)
        out[label] = experiment
    out["train/fold"] = host.experiments[out["kfold"].children[0]]
    return out


@pytest.mark.parametrize("label", [*SPECS, "train/fold"])
def test_real_summaries_fit_the_model_of_their_kind(runs: dict[str, Any], label: str) -> None:
    from ml.spec import experiment_kind, parse_spec

    experiment = runs[label]
    kind = experiment_kind(parse_spec(experiment.spec))
    model = summary_model(kind, "succeeded")
    assert model is SUMMARY_MODELS[label.split("/")[0]]
    parsed = model.model_validate(experiment.summary)  # raises, naming the key, if the contract broke
    # Read through the model and dumped again, the summary is the one the run wrote.
    assert json.loads(parsed.model_dump_json()) == json.loads(json.dumps(experiment.summary))
    assert type(parse_summary(kind, "succeeded", experiment.summary)) is model


def test_the_typed_blocks_say_what_the_run_did(runs: dict[str, Any]) -> None:
    clf = TrainSummary.model_validate(runs["train"].summary)
    assert clf.task == "classification" and clf.threshold is not None and clf.threshold.chosen_on == "validation"
    assert clf.lr_range_test is not None and clf.lr_range_test.steps == 10
    assert clf.diagnosis.verdict in ("underfit", "overfit", "good") and clf.test and "accuracy" in clf.test
    reg = TrainSummary.model_validate(runs["train/regression"].summary)
    assert reg.task == "regression" and reg.threshold is None and reg.test and "rmse" in reg.test
    transfer = TrainSummary.model_validate(runs["train/transfer"].summary)
    assert transfer.init is not None and transfer.init.frozen_layers == 1
    assert TrainSummary.model_validate(runs["train/hypergradient"].summary).hypergradient is not None
    fold = TrainSummary.model_validate(runs["train/fold"].summary)
    assert fold.test is None  # the test split stays sealed for a fold
    kfold = KFoldSummary.model_validate(runs["kfold"].summary)
    assert kfold.folds == 3 == len(kfold.per_fold) and kfold.validation["accuracy"].n == 3


def test_a_summary_that_breaks_the_contract_is_refused_naming_the_key(runs: dict[str, Any]) -> None:
    from pydantic import ValidationError

    broken = {**runs["train"].summary, "diagnosis": {**runs["train"].summary["diagnosis"], "verdict": "fine"}}
    with pytest.raises(ValidationError, match="diagnosis.verdict"):
        TrainSummary.model_validate(broken)
    missing = {k: v for k, v in runs["train"].summary.items() if k != "epochs_run"}
    with pytest.raises(ValidationError, match="epochs_run"):
        TrainSummary.model_validate(missing)
    # The API still shows such a summary (an older release's), as it is: with its common keys
    # typed when they are well-formed, else as any mapping.
    assert type(parse_summary("train", "succeeded", missing)) is Summary
    assert type(parse_summary("train", "succeeded", broken)) is AnySummary
    assert parse_summary("train", "succeeded", broken).model_dump() == broken  # type: ignore[union-attr]


def test_a_fanout_parent_that_failed_has_its_children_table() -> None:
    table = {"children": [{"id": 4, "name": "k fold 1/3", "status": "failed", "seconds": 1.5, "error": "nan"}]}
    parsed = parse_summary("kfold", "failed", table)
    assert isinstance(parsed, FanoutSummary) and parsed.children and parsed.children[0].status == "failed"
    assert parsed.model_dump() == table  # no key added


def test_the_openapi_schema_publishes_every_summary_model() -> None:
    from api.main import app

    schemas = app.openapi()["components"]["schemas"]
    summary = schemas["ExperimentRead"]["properties"]["summary"]
    refs = {r["$ref"].rsplit("/", 1)[1] for r in summary["anyOf"] if "$ref" in r}
    assert {m.__name__ for m in SUMMARY_MODELS.values()} | {"FanoutSummary", "Summary"} <= refs
    train = schemas["TrainSummary"]
    assert {"task", "dataset", "diagnosis", "epochs_run"} <= set(train["required"])
    assert train["properties"]["task"]["enum"] == ["classification", "regression"]
    assert schemas["Diagnosis"]["properties"]["verdict"]["enum"] == ["underfit", "overfit", "good"]


def test_every_summary_key_the_dashboard_and_cli_read_is_in_a_model() -> None:
    """A key read by the dashboard's JavaScript or the CLI that no summary model declares is a typo
    (or a field the models lack)."""
    from trainlab.render import SUMMARY_SCALARS

    declared: set[str] = set()
    for model in (*SUMMARY_MODELS.values(), FanoutSummary):
        declared |= set(model.model_fields)
    script = (Path(__file__).parents[1] / "api" / "static" / "experiment.js").read_text()
    read = set(re.findall(r"(?:\bsummary|\bs|\bexp\.summary|\(exp\.summary \|\| \{\}\))\.(\w+)", script))
    listed = re.search(r"const SUMMARY_SCALARS = \[([^\]]*)\]", script)
    assert listed is not None
    read |= set(re.findall(r'"(\w+)"', listed.group(1))) | set(SUMMARY_SCALARS)
    # `direction` is read as a fallback beside `objective.direction` (summaries before objectives).
    assert read - declared - {"direction"} == set()
    assert {"test", "diagnosis", "trials", "per_fold", "members"} <= read

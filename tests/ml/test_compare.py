"""The compare kind: variants as children, overlaid curves and a ranking."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from ml.fanout.base import ChildResult
from ml.planners import planner_for
from ml.reporter import RecordingReporter
from ml.run import run_experiment
from ml.spec import parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_children(spec):
    planner = planner_for(spec)
    children, stored = [], {}
    for i, plan in enumerate(planner.initial(spec)):
        reporter = RecordingReporter()
        summary = run_experiment(plan.spec, reporter)
        stored[i] = reporter
        children.append(ChildResult(i, plan.name, "succeeded", plan.spec, summary, None, 1.0))

    class Stored:
        def metrics(self, child_id):
            return stored[child_id].rows

        def artifact(self, child_id, name):
            return stored[child_id].artifacts.get(name)

    parent = RecordingReporter()
    return planner, children, planner.summarize(spec, children, Stored(), parent), parent


def test_every_optimizer_variant_runs_and_is_ranked_with_an_overlay_plot() -> None:
    raw = yaml.safe_load((EXAMPLES / "optimizers-compare.yaml").read_text())
    raw["base"]["train"]["epochs"] = 2
    spec = parse_spec(raw)
    planner, children, summary, parent = run_children(spec)
    assert [c.spec["train"]["optimizer"]["name"] for c in children] == [
        "sgd",
        "momentum",
        "nesterov",
        "adagrad",
        "adadelta",
        "rmsprop",
        "adam",
        "adamw",
    ]
    ranking = summary["ranking"]
    assert [r["rank"] for r in ranking] == list(range(1, 9))
    values = [r["validation.loss"] for r in ranking]
    assert values == sorted(values) and summary["best"] == ranking[0]["label"]
    assert parent.artifacts["train_loss.png"].startswith(b"\x89PNG")
    assert parent.artifacts["validation_loss.png"].startswith(b"\x89PNG")


def test_variants_change_only_what_they_set() -> None:
    spec = parse_spec(
        {
            "kind": "compare",
            "name": "lr",
            "base": {"data": {"source": "builtin/iris"}, "train": {"epochs": 3, "optimizer": {"name": "sgd"}}},
            "variants": [{"label": "slow", "set": {"train.optimizer.lr": 0.001}}, {"label": "fast"}],
        }
    )
    slow, fast = (plan.spec for plan in planner_for(spec).initial(spec))
    assert slow["train"]["optimizer"]["lr"] == 0.001 and slow["train"]["optimizer"]["name"] == "sgd"
    assert fast["train"]["optimizer"]["name"] == "sgd" and slow["data"] == fast["data"]
    assert slow["name"] == "lr [slow]"


def test_bad_variants_are_refused_naming_the_variant() -> None:
    base = {"data": {"source": "builtin/iris"}}
    with pytest.raises(ValidationError, match="variant 'x'"):
        parse_spec(
            {
                "kind": "compare",
                "name": "c",
                "base": base,
                "variants": [{"label": "x", "set": {"train.optimizer.name": "nope"}}, {"label": "y"}],
            }
        )
    with pytest.raises(ValidationError, match="distinct"):
        parse_spec({"kind": "compare", "name": "c", "base": base, "variants": [{"label": "x"}, {"label": "x"}]})

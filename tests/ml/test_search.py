"""Hyperparameter search: the spec, ask/tell planning within budget and parallelism, failures and
pruning as trial states, the methods on the analytic objective, and hypergradient descent.
Children run in-process (`ml.local.LocalHost`) with the same planners the workers use."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from pydantic import ValidationError

from ml.context import RunContext
from ml.fanout.base import ChildResult
from ml.local import LocalHost
from ml.planners import planner_for
from ml.reporter import RecordingReporter
from ml.run import run_experiment
from ml.spec import parse_spec

SPACE_2D = {"h1": {"type": "float", "low": -10, "high": 10}, "h2": {"type": "float", "low": -10, "high": 10}}


def analytic_search(method: str, trials: int = 30, seed: int = 0, parallel: int = 2, **extra) -> dict:
    return {
        "kind": "search",
        "name": f"hpo-{method}",
        "seed": seed,
        "base": {"kind": "analytic", "function": "quadratic"},
        "space": SPACE_2D,
        "method": method,
        "trials": trials,
        "parallel": parallel,
        **extra,
    }


def moons_base(epochs: int = 12) -> dict:
    return {
        "data": {"source": "synthetic/moons", "options": {"n_samples": 400, "noise": 0.2}},
        "model": {"hidden": [16]},
        "train": {"epochs": epochs, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.01}},
        "evaluate": {"plots": False},
    }


def test_spec_names_a_bad_path_and_refuses_the_test_split() -> None:
    good = {"kind": "search", "name": "s", "base": moons_base()}
    with pytest.raises(ValidationError, match=r"space.train.optimzer.lr = .*at train.optimzer"):
        parse_spec(good | {"space": {"train.optimzer.lr": {"type": "float", "low": 1e-4, "high": 0.1}}})
    with pytest.raises(ValidationError, match="model.dropout = 1.5"):
        parse_spec(good | {"space": {"model.dropout": {"type": "float", "low": 0.0, "high": 1.5}}})
    with pytest.raises(ValidationError, match="objective.metric"):
        parse_spec(
            good
            | {
                "space": {"model.dropout": {"type": "float", "low": 0, "high": 0.5}},
                "objective": {"metric": "test.accuracy"},
            }
        )
    spec = parse_spec(good | {"space": {"model.hidden": {"type": "categorical", "choices": [[8], [16, 8]]}}})
    assert (spec.metric, spec.direction) == ("validation.loss", "minimize")
    spec = parse_spec(
        good
        | {
            "space": {"model.dropout": {"type": "float", "low": 0, "high": 0.5}},
            "objective": {"metric": "validation.accuracy"},
        }
    )
    assert spec.direction == "maximize"


def test_at_most_parallel_trials_are_out_and_a_failed_trial_does_not_end_the_search() -> None:
    spec = parse_spec(analytic_search("random", trials=5, parallel=2))
    planner = planner_for(spec, RunContext())
    plans = planner.initial(spec)
    assert len(plans) == 2 and [p.spec["trial"]["number"] for p in plans] == [0, 1]
    children = [ChildResult(i, p.name, "running", p.spec, None, None, None) for i, p in enumerate(plans)]
    assert planner.advance(spec, children) == []  # both still out
    children[0].status, children[0].error = "failed", "boom"
    more = planner.advance(spec, children)
    assert len(more) == 1  # the failure freed a slot; the search goes on
    children.append(ChildResult(2, more[0].name, "queued", more[0].spec, None, None, None))
    assert planner.advance(spec, children) == []  # two out again
    for child in children[1:]:
        child.status, child.summary = "succeeded", run_experiment(child.spec)
    last = planner.advance(spec, children)
    assert len(last) == 2  # two slots free, two trials of budget left
    children += [
        ChildResult(3 + i, p.name, "succeeded", p.spec, run_experiment(p.spec), None, 0.1) for i, p in enumerate(last)
    ]
    assert planner.advance(spec, children) == []  # the budget is used
    summary = planner.summarize(spec, children, None, RecordingReporter())
    assert summary["counts"] == {"complete": 4, "pruned": 0, "failed": 1}
    failed = [r for r in summary["trials"] if r["state"] == "failed"]
    assert failed[0]["error"] == "boom" and failed[0]["value"] is None


def test_max_failed_stops_the_search_with_an_error() -> None:
    spec = parse_spec(analytic_search("random", trials=10, parallel=1, max_failed=2))
    planner = planner_for(spec, RunContext())
    children = []
    for i in range(2):
        plan = (planner.initial(spec) if i == 0 else planner.advance(spec, children))[0]
        children.append(ChildResult(i, plan.name, "failed", plan.spec, None, f"bad {i}", 0.1))
    assert planner.advance(spec, children) == []
    with pytest.raises(Exception, match=r"2 trials failed \(max_failed 2\).*bad 0"):
        planner.summarize(spec, children, None, RecordingReporter())


def test_tpe_beats_random_search_on_the_analytic_objective_across_seeds() -> None:
    host = LocalHost()
    best = {
        method: [host.run(analytic_search(method, seed=seed)).summary["best"]["value"] for seed in range(5)]
        for method in ("random", "tpe")
    }
    assert statistics.median(best["tpe"]) < statistics.median(best["random"]), best


@pytest.mark.parametrize("storage", ["memory", "journal"])
def test_grid_search_summary_table_importances_and_plots(storage: str, tmp_path: Path) -> None:
    host = LocalHost(None if storage == "memory" else f"journal:{tmp_path / 'optuna.log'}")
    space = {"h1": {"type": "float", "low": -2, "high": 4, "grid": 4}, "h2": {"type": "int", "low": 0, "high": 3}}
    search = host.run(analytic_search("grid", trials=100, space=space))
    summary = search.summary
    assert search.status == "succeeded" and summary["budget"] == 16 == len(summary["trials"])
    points = {(r["params"]["h1"], r["params"]["h2"]) for r in summary["trials"]}
    assert points == {(h1, h2) for h1 in (-2.0, 0.0, 2.0, 4.0) for h2 in (0, 1, 2, 3)}  # each grid point once
    assert summary["best"]["params"] == {"h1": 0.0, "h2": 2} and summary["best"]["value"] == 1.0
    row = summary["trials"][0]
    assert set(row) >= {"trial", "experiment", "params", "value", "state", "seconds"}
    assert set(summary["importances"]) == {"h1", "h2"}
    for name in ("optimization_history.png", "parallel_coordinates.png"):
        assert search.reporter.artifacts[name].startswith(b"\x89PNG")


def test_cmaes_nsga2_and_categorical_lists() -> None:
    pytest.importorskip("cmaes")
    host = LocalHost()
    for method in ("cmaes", "nsga2"):
        summary = host.run(analytic_search(method, trials=12)).summary
        assert summary["counts"]["complete"] == 12 and summary["best"]["value"] < 50
    spec = {
        "kind": "search",
        "name": "widths",
        "base": moons_base(epochs=2),
        "space": {"model.hidden": {"type": "categorical", "choices": [[4], [8, 4]]}},
        "method": "grid",
    }
    search = host.run(spec)
    widths = sorted(host.experiments[i].spec["model"]["hidden"] for i in search.children)
    assert widths == [[4], [8, 4]] and search.summary["best"]["params"]["model.hidden"] in ([4], [8, 4])
    assert "test" in search.summary  # the chosen trial's test metrics


def test_pruning_stops_a_hopeless_trial() -> None:
    host = LocalHost()
    lr = "train.optimizer.lr"
    spec = {
        "kind": "search",
        "name": "prune",
        "base": moons_base(epochs=12),
        "space": {lr: {"type": "float", "low": 1e-7, "high": 0.1, "log": True}},
        "method": "random",
        "trials": 4,
        "enqueue": [{lr: 0.03}, {lr: 0.02}, {lr: 0.05}, {lr: 1e-7}],  # the hopeless one last
        "pruner": {"name": "median", "startup_trials": 2, "warmup_epochs": 2},
    }
    search = host.run(spec)
    states = {r["params"][lr]: r for r in search.summary["trials"]}
    hopeless = states[1e-7]
    assert hopeless["state"] == "pruned" and hopeless["value"] is None
    assert 3 <= hopeless["pruned_at_epoch"] < 12
    child = host.experiments[hopeless["experiment"]]
    assert child.status == "failed" and "median pruner" in child.error
    assert len(child.reporter.series("validation", "loss")) == hopeless["pruned_at_epoch"]  # it stopped there
    assert search.summary["counts"] == {"complete": 3, "pruned": 1, "failed": 0}
    assert search.summary["best"]["params"][lr] != 1e-7


def test_hypergradient_method_adapts_the_step_size() -> None:
    host = LocalHost()
    plain = analytic_search("random", trials=3, parallel=1)
    hd = analytic_search("hypergradient", trials=3, parallel=1, hypergradient={"beta": 0.5, "lr": 0.01, "steps": 10})
    search = host.run(hd)
    assert search.summary["evaluations"] == 30
    child = host.experiments[search.children[0]]
    assert child.summary["hypergradient"]["final_lr"] > 10 * 0.01  # it learned a larger step
    assert search.summary["best"]["value"] < host.run(plain).summary["best"]["value"]
    end = search.summary["best"]["adapted"]  # where the descent went from the sampled start
    assert abs(end["h1"] - 1) < 0.5 and abs(end["h2"] - 2) < 0.5


def test_hypergradient_adapts_the_learning_rate_of_a_training_trial() -> None:
    spec = {"name": "hd", **moons_base(epochs=4)}
    spec["train"]["optimizer"] = {"name": "sgd", "lr": 0.001}
    spec["trial"] = {"study": "not-a-study", "number": 0, "hypergradient": {"beta": 0.02}}
    reporter = RecordingReporter()
    summary = run_experiment(spec, reporter)
    lrs = reporter.series("train", "lr")
    assert lrs[0] == 0.001 and lrs[-1] > lrs[0]  # too small a rate grows
    assert summary["hypergradient"]["steps"] == 4 * 256 // 64  # every batch (256 training rows) of every epoch
    assert any("no pruning" in m for m in reporter.messages)

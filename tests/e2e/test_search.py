"""Search and bagging over real workers: trials are child experiments run side by side by two
worker processes, with the Optuna study in PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest

pytestmark = pytest.mark.e2e
FINAL = ("succeeded", "failed", "cancelled")


def moons(epochs: int) -> dict:
    return {
        "data": {"source": "synthetic/moons", "options": {"n_samples": 3000, "noise": 0.25}},
        "model": {"hidden": [32, 32]},
        "train": {"epochs": epochs, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}},
        "evaluate": {"metrics": ["accuracy"], "plots": False},
    }


def most_at_once(children: list[dict]) -> int:
    events = []
    for c in children:
        events += [(datetime.fromisoformat(c["started_at"]), 1), (datetime.fromisoformat(c["finished_at"]), -1)]
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def test_search_trials_run_concurrently_on_two_workers(two_workers) -> None:
    spec = {
        "kind": "search",
        "name": "e2e-search",
        "base": moons(epochs=12),
        "space": {
            "train.optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.05, "log": True},
            "model.dropout": {"type": "float", "low": 0.0, "high": 0.3},
        },
        "objective": {"metric": "validation.accuracy"},
        "method": "tpe",
        "trials": 4,
        "parallel": 2,
        "pruner": "median",
    }
    created = two_workers.http.post("/api/v1/experiments", json=spec).json()
    assert created["kind"] == "search", created
    parent = two_workers.wait_for(created["id"], FINAL, timeout=120)
    assert parent["status"] == "succeeded", parent["error"]
    children = [two_workers.http.get(f"/api/v1/experiments/{c['id']}").json() for c in parent["children"]]
    assert len(children) == 4 and all(c["kind"] == "train" for c in children)
    assert most_at_once(children) == 2  # side by side, and never more than `parallel`
    assert len({c["worker"].split("/")[0] for c in children}) == 2
    summary = parent["summary"]
    assert summary["objective"] == {"metric": "validation.accuracy", "direction": "maximize"}
    assert sorted(r["trial"] for r in summary["trials"]) == [0, 1, 2, 3]
    assert {r["experiment"] for r in summary["trials"]} == {c["id"] for c in children}
    best = max((r for r in summary["trials"] if r["state"] == "complete"), key=lambda r: r["value"])
    assert summary["best"]["trial"] == best["trial"] and summary["best"]["value"] > 0.8
    assert summary["test"]["accuracy"] > 0.8  # the chosen trial's test metrics
    names = {a["name"] for a in two_workers.http.get(f"/api/v1/experiments/{created['id']}/artifacts").json()}
    assert "optimization_history.png" in names


def test_analytic_grid_search_and_a_bagging_ensemble(two_workers) -> None:
    grid = {
        "kind": "search",
        "name": "e2e-grid",
        "base": {"kind": "analytic", "function": "quadratic"},
        "space": {"h1": {"type": "float", "low": -1, "high": 3}, "h2": {"type": "float", "low": 0, "high": 4}},
        "method": "grid",
        "trials": 9,
        "parallel": 3,
    }
    bag = {
        "kind": "ensemble",
        "name": "e2e-bag",
        "base": moons(epochs=5),
        "members": 3,
    }
    ids = [two_workers.http.post("/api/v1/experiments", json=s).json()["id"] for s in (grid, bag)]
    search, ensemble = (two_workers.wait_for(i, FINAL, timeout=120) for i in ids)
    assert search["status"] == "succeeded", search["error"]
    assert search["summary"]["best"] == {
        "trial": search["summary"]["best"]["trial"],
        "experiment": search["summary"]["best"]["experiment"],
        "value": 0.0,
        "params": {"h1": 1.0, "h2": 2.0},
    }
    assert search["summary"]["counts"] == {"complete": 9, "pruned": 0, "failed": 0}
    assert ensemble["status"] == "succeeded", ensemble["error"]
    summary = ensemble["summary"]
    assert len(summary["members"]) == 3 and summary["member_spread"]["accuracy"]["n"] == 3
    assert summary["test"]["accuracy"] > 0.8


def test_search_on_the_embedded_default_keeps_its_study_in_the_file_journal(embedded) -> None:
    spec = {
        "kind": "search",
        "name": "e2e-journal",
        "base": {"kind": "analytic", "function": "rosenbrock"},
        "space": {"h1": {"type": "float", "low": -2, "high": 2}, "h2": {"type": "float", "low": -1, "high": 3}},
        "method": "tpe",
        "trials": 6,
        "parallel": 2,
    }
    created = embedded.http.post("/api/v1/experiments", json=spec).json()
    search = embedded.wait_for(created["id"], FINAL, timeout=90)
    assert search["status"] == "succeeded", search["error"]
    assert search["summary"]["counts"]["complete"] == 6
    assert search["summary"]["study"] == f"trainlab-search-{created['id']}"
    assert (embedded.data_dir / "optuna-journal.log").stat().st_size > 0

"""Fan-out experiments over real workers: k-fold children run as parallel tasks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def kfold_spec(epochs: int = 15) -> dict:
    spec = yaml.safe_load((ROOT / "examples" / "kfold.yaml").read_text())
    spec["train"]["epochs"] = epochs
    return spec


def test_kfold_children_run_in_parallel_and_parent_summarizes(two_workers) -> None:
    created = two_workers.http.post("/api/v1/experiments", json=kfold_spec()).json()
    assert created["kind"] == "kfold"
    parent = two_workers.wait_for(created["id"], ("succeeded", "failed", "cancelled"), timeout=240)
    assert parent["status"] == "succeeded", parent["error"]
    children = [two_workers.http.get(f"/api/v1/experiments/{c['id']}").json() for c in parent["children"]]
    assert len(children) == 5 and all(c["status"] == "succeeded" for c in children)
    assert all("test" not in c["summary"] for c in children)  # the test split stayed sealed
    spans = sorted(
        (datetime.fromisoformat(c["started_at"]), datetime.fromisoformat(c["finished_at"])) for c in children
    )
    assert any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False)), spans
    assert len({c["worker"].split("/")[0] for c in children}) == 2  # host/pid/attempt: two workers
    summary = parent["summary"]
    assert set(summary["validation"]["accuracy"]) == {"mean", "std", "n"}
    assert summary["validation"]["accuracy"]["n"] == 5 and 0.8 < summary["test"]["accuracy"] <= 1
    listed = two_workers.http.get("/api/v1/experiments", params={"parent_id": created["id"]}).json()
    assert listed["total"] == 5


def test_cancelling_a_kfold_parent_cancels_its_folds(two_workers) -> None:
    long_folds = kfold_spec(epochs=2000)
    del long_folds["train"]["early_stopping"]  # folds that cannot finish before the cancel arrives
    created = two_workers.http.post("/api/v1/experiments", json=long_folds).json()
    two_workers.wait_for(created["id"], ("running",), timeout=60)
    cancelled = two_workers.http.post(f"/api/v1/experiments/{created['id']}/cancel").json()
    assert cancelled["cancel_requested"]
    parent = two_workers.wait_for(created["id"], ("cancelled", "failed", "succeeded"), timeout=60)
    assert parent["status"] == "cancelled"
    for child in parent["children"]:
        assert two_workers.http.get(f"/api/v1/experiments/{child['id']}").json()["status"] == "cancelled"


def test_compare_runs_variants_in_parallel_and_ranks_them(two_workers) -> None:
    spec = {
        "kind": "compare",
        "name": "lr",
        "base": {"data": {"source": "builtin/digits"}, "train": {"epochs": 12, "batch_size": 32}},
        "variants": [
            {"label": "small", "set": {"train.optimizer.lr": 0.0001}},
            {"label": "good", "set": {"train.optimizer.lr": 0.003}},
        ],
    }
    created = two_workers.http.post("/api/v1/experiments", json=spec).json()
    parent = two_workers.wait_for(created["id"], ("succeeded", "failed"), timeout=240)
    assert parent["status"] == "succeeded", parent["error"]
    assert parent["summary"]["best"] == "good"
    children = [two_workers.http.get(f"/api/v1/experiments/{c['id']}").json() for c in parent["children"]]
    (a_start, a_end), (b_start, b_end) = sorted(
        (datetime.fromisoformat(c["started_at"]), datetime.fromisoformat(c["finished_at"])) for c in children
    )
    assert b_start < a_end  # the two variants overlapped in time
    names = {a["name"] for a in two_workers.http.get(f"/api/v1/experiments/{created['id']}/artifacts").json()}
    assert {"train_loss.png", "validation_loss.png"} <= names

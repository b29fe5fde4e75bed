"""Submit over HTTP to real worker processes and watch the experiment's whole life."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = (ROOT / "examples" / "quickstart.yaml").read_text()

LONG_RUN = {
    "name": "long",
    "data": {"source": "synthetic/moons", "options": {"n_samples": 20000}},
    "model": {"hidden": [256, 256]},
    "train": {"epochs": 2000, "batch_size": 16},
}


def test_quickstart_succeeds_with_metrics(service) -> None:
    created = service.http.post("/api/v1/experiments", content=QUICKSTART, headers={"Content-Type": "application/yaml"})
    assert created.status_code == 201 and created.json()["status"] == "queued"
    experiment = service.wait_for(created.json()["id"], ("succeeded", "failed"))
    assert experiment["status"] == "succeeded", experiment["error"]
    assert experiment["summary"]["test"]["accuracy"] >= 0.95
    assert experiment["timings"]["run_seconds"] > 0 and experiment["attempts"] == 1
    metrics = service.http.get(f"/api/v1/experiments/{experiment['id']}/metrics").json()
    series = {(m["split"], m["name"]) for m in metrics}
    assert {("train", "loss"), ("validation", "loss"), ("train", "accuracy"), ("validation", "accuracy")} <= series
    epochs = experiment["summary"]["epochs_run"]
    assert len([m for m in metrics if (m["split"], m["name"]) == ("validation", "loss")]) == epochs
    artifacts = service.http.get(f"/api/v1/experiments/{experiment['id']}/artifacts").json()
    by_name = {a["name"]: a for a in artifacts}
    assert {"predictions.csv", "learning_curves.png", "confusion_matrix.png", "model.pt"} <= set(by_name)
    csv = service.http.get(by_name["predictions.csv"]["url"])
    assert csv.status_code == 200 and csv.text.startswith("row,true,predicted")
    png = service.http.get(by_name["learning_curves.png"]["url"])
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")


def test_cancel_running_experiment_within_seconds(service) -> None:
    created = service.http.post("/api/v1/experiments", json=LONG_RUN).json()
    service.wait_for(created["id"], ("running",), timeout=60)
    # let it log at least one epoch
    deadline = time.monotonic() + 60
    while not service.http.get(f"/api/v1/experiments/{created['id']}/metrics").json():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    asked = time.monotonic()
    assert service.http.post(f"/api/v1/experiments/{created['id']}/cancel").json()["cancel_requested"]
    final = service.wait_for(created["id"], ("cancelled", "failed", "succeeded"), timeout=30)
    assert final["status"] == "cancelled"
    assert time.monotonic() - asked < 5


def test_diverging_spec_fails_with_its_reason(service) -> None:
    spec = {
        "name": "diverge",
        "data": {"source": "builtin/diabetes"},
        "preprocess": [],
        "train": {"epochs": 20, "optimizer": {"name": "sgd", "lr": 10.0}},
    }
    created = service.http.post("/api/v1/experiments", json=spec).json()
    final = service.wait_for(created["id"], ("failed", "succeeded"))
    assert final["status"] == "failed" and final["error_reason"] == "diverged"
    assert "epoch" in final["error"] and "learning rate 10" in final["error"]


def test_cli_submit_wait_and_status(embedded, tmp_path) -> None:
    env = {**os.environ, "TRAINLAB_URL": embedded.url, "TRAINLAB_TOKEN": embedded.token}
    cli = [sys.executable, "-m", "trainlab.cli"]
    done = subprocess.run(
        [*cli, "submit", str(ROOT / "examples" / "quickstart.yaml"), "--wait"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded" in done.stdout and "accuracy" in done.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "name": "bad",
                "data": {"source": "builtin/diabetes"},
                "preprocess": [],
                "train": {"epochs": 20, "optimizer": {"name": "sgd", "lr": 10.0}},
            }
        )
    )
    failed = subprocess.run([*cli, "submit", str(bad), "--wait"], env=env, capture_output=True, text=True, timeout=180)
    assert failed.returncode == 1 and "diverged" in failed.stdout
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("name: x\ndata: {source: builtin/nope}\n")
    refused = subprocess.run([*cli, "submit", str(invalid)], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "builtin/digits" in refused.stderr
    unreachable = subprocess.run(
        [*cli, "status", "1", "--url", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60
    )
    assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr


def test_training_on_an_uploaded_csv(embedded) -> None:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    lines = [",".join([*(f"f{i}" for i in range(5)), "site", "diagnosis"])]
    for i, (row, label) in enumerate(zip(bunch.data[:, :5], bunch.target, strict=True)):
        lines.append(",".join([*(f"{v:.5g}" for v in row), "north" if i % 2 else "south", str(label)]))
    uploaded = embedded.http.post(
        "/api/v1/datasets", files={"file": ("cancer.csv", "\n".join(lines).encode())}, data={"target": "diagnosis"}
    ).json()
    spec = {
        "name": "on-upload",
        "data": {"source": f"dataset/{uploaded['id']}", "target": "diagnosis", "one_hot": True},
        "train": {"epochs": 20},
    }
    created = embedded.http.post("/api/v1/experiments", json=spec).json()
    final = embedded.wait_for(created["id"], ("succeeded", "failed"))
    assert final["status"] == "succeeded", final["error"]
    assert final["summary"]["dataset"]["features"] == 7  # 5 numeric + site=north, site=south
    assert final["summary"]["test"]["accuracy"] > 0.8


def test_transfer_from_own_experiment_only(embedded) -> None:
    pretrain = {
        "name": "pre",
        "data": {"source": "builtin/digits", "classes": [0, 1, 2, 3, 4]},
        "model": {"hidden": [32]},
        "train": {"epochs": 5},
    }
    source = embedded.wait_for(embedded.http.post("/api/v1/experiments", json=pretrain).json()["id"], ("succeeded",))
    finetune = {
        "name": "fine",
        "data": {"source": "builtin/digits", "classes": [5, 6, 7, 8, 9], "max_train_samples": 50},
        "model": {"hidden": [32]},
        "train": {"epochs": 5},
        "init": {"from_experiment": "pre", "freeze": 1, "new_head": True},
    }
    mine = embedded.wait_for(
        embedded.http.post("/api/v1/experiments", json=finetune).json()["id"], ("succeeded", "failed")
    )
    assert mine["status"] == "succeeded", mine["error"]
    assert str(mine["summary"]["init"]["from_experiment"]) in ("pre", str(source["id"]))
    other = httpx.Client(base_url=embedded.url, headers={"Authorization": f"Bearer {embedded.create_user('eve')}"})
    for reference in (source["id"], "pre"):  # by id or by name: refused at submission, nothing stored
        theirs = other.post("/api/v1/experiments", json={**finetune, "init": {"from_experiment": reference}})
        assert theirs.status_code == 422 and "of yours" in theirs.text
    assert other.get("/api/v1/experiments").json()["total"] == 0

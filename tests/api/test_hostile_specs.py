"""Hostile specs on a shared server, on both database backends: every way a spec can name
another user's object, fields only the server sets, parser bombs, costly validation and
oversized work. Each is a 4xx naming the problem, and nothing stored changes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_user
from tests.hostile_inputs import with_peak_memory, yaml_alias_bomb

CSV = b"a,b,c,label\n" + b"".join(f"{i},{i % 7},{i % 3},{i % 2}\n".encode() for i in range(60))
TRAIN = {"name": "t", "data": {"source": "builtin/iris"}, "train": {"epochs": 1}}
MEMBER = {"method": "disjoint", "index": 0, "of": 2}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def lab(client: TestClient) -> dict[str, Any]:
    """Alice owns a data set and an experiment; Bob and an admin are other users."""
    alice = client.headers["Authorization"].split()[1]
    dataset = client.post("/api/v1/datasets", files={"file": ("clinic.csv", CSV)}, data={"target": "label"}).json()
    experiment = client.post("/api/v1/experiments", json={**TRAIN, "name": "alice-pretrain"}).json()
    return {
        "alice": alice,
        "bob": make_user("bob"),
        "admin": make_user("root", admin=True),
        "dataset": dataset["id"],
        "experiment": experiment["id"],
    }


def count(client: TestClient, token: str) -> int:
    return client.get("/api/v1/experiments", headers=bearer(token)).json()["total"]


def refused(client: TestClient, token: str, spec: Any, status: int = 422, **kwargs: Any) -> Any:
    """POST the spec as `token`; assert the status and that the user's experiments did not change."""
    before = count(client, token)
    body = {"json": spec} if not isinstance(spec, str | bytes) else {"content": spec}
    headers = {**bearer(token), **kwargs.pop("headers", {})}
    response = client.post("/api/v1/experiments", headers=headers, **body, **kwargs)
    assert response.status_code == status, response.text
    assert count(client, token) == before
    return response.json()["detail"]


def references_to(dataset: int, experiment: int) -> dict[str, dict[str, Any]]:
    """Every place a spec can name a data set or an experiment."""
    own = {"source": "builtin/iris"}
    theirs = {"source": f"dataset/{dataset}", "target": "label"}
    base = {"data": own, "train": {"epochs": 1}}
    return {
        "train data": {**TRAIN, "data": theirs},
        "train init": {**TRAIN, "init": {"from_experiment": experiment}},
        "train init by name": {**TRAIN, "init": {"from_experiment": "alice-pretrain"}},
        "compare base": {
            "name": "c",
            "kind": "compare",
            "base": {**base, "data": theirs},
            "variants": [{"label": "a", "set": {}}, {"label": "b", "set": {"seed": 2}}],
        },
        "compare variant path": {
            "name": "c",
            "kind": "compare",
            "base": base,
            "variants": [
                {"label": "a", "set": {}},
                {"label": "b", "set": {"data.source": f"dataset/{dataset}", "data.target": "label"}},
            ],
        },
        "compare variant block": {
            "name": "c",
            "kind": "compare",
            "base": base,
            "variants": [{"label": "a", "set": {}}, {"label": "b", "set": {"data": theirs}}],
        },
        "compare variant init": {
            "name": "c",
            "kind": "compare",
            "base": base,
            "variants": [{"label": "a", "set": {}}, {"label": "b", "set": {"init.from_experiment": experiment}}],
        },
        "search base": {
            "name": "s",
            "kind": "search",
            "base": {**base, "data": theirs},
            "space": {"train.optimizer.lr": {"type": "float", "low": 0.001, "high": 0.1}},
        },
        "search choice": {
            "name": "s",
            "kind": "search",
            "base": base,
            "trials": 2,
            "space": {"data": {"type": "categorical", "choices": [own, theirs]}},
        },
        "search init choice": {
            "name": "s",
            "kind": "search",
            "base": base,
            "trials": 2,
            "space": {"init.from_experiment": {"type": "categorical", "choices": ["alice-pretrain"]}},
        },
        "ensemble base": {"name": "e", "kind": "ensemble", "members": 2, "base": {**base, "data": theirs}},
        "kfold": {**TRAIN, "data": {**theirs, "split": {"folds": 3}}},
    }


def test_no_spec_names_another_users_data_or_weights(client: TestClient, lab: dict[str, Any]) -> None:
    for where, spec in references_to(lab["dataset"], lab["experiment"]).items():
        for who in ("bob", "admin"):  # an admin's spec acts as the admin, not as everyone
            detail = refused(client, lab[who], spec)
            assert any("not found" in d["msg"] or "of yours" in d["msg"] for d in detail), (where, who, detail)


def test_the_owner_may_use_them(client: TestClient, lab: dict[str, Any]) -> None:
    for where, spec in references_to(lab["dataset"], lab["experiment"]).items():
        response = client.post("/api/v1/experiments", json=spec)
        assert response.status_code == 201, (where, response.text)
    # wherever the spec named it, the data set is recorded as in use: it cannot be deleted
    assert client.delete(f"/api/v1/datasets/{lab['dataset']}").status_code == 409


def test_a_missing_and_a_foreign_data_set_read_the_same(client: TestClient, lab: dict[str, Any]) -> None:
    foreign = refused(client, lab["bob"], {**TRAIN, "data": {"source": f"dataset/{lab['dataset']}"}})
    missing = refused(client, lab["bob"], {**TRAIN, "data": {"source": "dataset/987654"}})
    assert foreign[0]["msg"].replace(str(lab["dataset"]), "N") == missing[0]["msg"].replace("987654", "N")
    assert "label" not in json.dumps(foreign)  # nothing of her columns
    huge = refused(client, lab["bob"], {**TRAIN, "data": {"source": "dataset/99999999999999999999"}})
    assert huge[0]["loc"][-1] == "source"
    refused(client, lab["bob"], {**TRAIN, "init": {"from_experiment": "99999999999999999999"}})
    refused(client, lab["bob"], {**TRAIN, "init": {"from_experiment": 99999999999999999999}}, 400)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({**TRAIN, "trial": {"study": "trainlab-search-1", "number": 9}}, "trial"),
        ({**TRAIN, "data": {"source": "builtin/iris", "split": {"folds": 5, "fold": 1}}}, "fold"),
        ({**TRAIN, "data": {"source": "builtin/iris", "sample": MEMBER}}, "sample"),
        (
            {
                "name": "c",
                "kind": "compare",
                "base": TRAIN,
                "variants": [
                    {"label": "a", "set": {}},
                    {"label": "b", "set": {"trial.study": "trainlab-search-1", "trial.number": 1}},
                ],
            },
            "trial",
        ),
        (
            {
                "name": "s",
                "kind": "search",
                "base": TRAIN,
                "space": {"data.split.fold": {"type": "int", "low": 0, "high": 1}},
            },
            "fold",
        ),
    ],
)
def test_fields_only_the_server_sets_are_refused(client: TestClient, spec: dict, field: str) -> None:
    detail = refused(client, client.headers["Authorization"].split()[1], spec)
    assert field in json.dumps(detail)


def test_a_yaml_alias_bomb_is_refused_before_it_expands(client: TestClient) -> None:
    bomb = yaml_alias_bomb()
    assert len(bomb) < 1024  # 9^10 values once expanded
    token = client.headers["Authorization"].split()[1]
    yaml_body = {"Content-Type": "application/yaml"}
    detail, peak = with_peak_memory(lambda: refused(client, token, bomb, 413, headers=yaml_body))
    assert "aliases" in detail and peak < 50 * 1024**2


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        ("a: &a [*a]\nname: x\n", "application/yaml", 400, "itself"),
        ("name: x\nname: y\ndata: {source: builtin/iris}\n", "application/yaml", 400, "duplicate key"),
        ("[" * 100_000 + "]" * 100_000, "application/json", 400, "nested"),
        ("- " * 5000 + "x", "application/yaml", 400, "nested"),
        ('{"name": "x", "seed": ' + "9" * 5000 + "}", "application/json", 400, "digits"),
        ("name: x\nseed: " + "9" * 5000 + "\n", "application/yaml", 400, "digits"),
        (json.dumps({"name": "x", "description": "y" * 20_000}), "application/json", 413, "longer"),
        (
            json.dumps({"name": "x", "data": {"source": "builtin/iris", "options": {"big": list(range(30_000))}}}),
            "application/json",
            413,
            "values",
        ),
        (json.dumps({**TRAIN, "pad": "z" * 300_000}), "application/json", 413, "limit"),
        (json.dumps(TRAIN), "text/plain", 415, "application/json"),
    ],
)
def test_parsers_are_bounded(client: TestClient, body: str, content_type: str, status: int, words: str) -> None:
    token = client.headers["Authorization"].split()[1]
    detail = refused(client, token, body, status, headers={"Content-Type": content_type})
    assert words in json.dumps(detail)


def test_generator_options_are_scalars_within_bounds(client: TestClient) -> None:
    token = client.headers["Authorization"].split()[1]
    nested = {**TRAIN, "data": {"source": "synthetic/imbalanced", "options": {"n_features": {"x": [1, 2]}}}}
    assert refused(client, token, nested)[0]["loc"][:3] == ["body", "data", "options"]
    wide = {**TRAIN, "data": {"source": "synthetic/regression", "options": {"n_features": 20_000}}}
    assert "10000" in json.dumps(refused(client, token, wide))
    tall = {**TRAIN, "data": {"source": "synthetic/regression", "options": {"n_samples": 1_000_000, "n_features": 500}}}
    assert "generated values" in json.dumps(refused(client, token, tall))


def test_networks_that_would_exhaust_a_worker_are_refused(client: TestClient) -> None:
    token = client.headers["Authorization"].split()[1]
    widest = {**TRAIN, "model": {"hidden": [4096] * 32}, "train": {"epochs": 1, "batch_size": 65536}}
    assert "weights" in json.dumps(refused(client, token, widest))
    batch = {**TRAIN, "model": {"hidden": [4096, 4096]}, "train": {"epochs": 1, "batch_size": 65536}}
    assert "batch_size" in json.dumps(refused(client, token, batch))


def test_a_fan_out_child_cannot_fan_out(client: TestClient) -> None:
    token = client.headers["Authorization"].split()[1]
    variants = [{"label": "a", "set": {}}, {"label": "b", "set": {"data.split.folds": 20}}]
    assert "fan out" in json.dumps(
        refused(client, token, {"name": "c", "kind": "compare", "base": TRAIN, "variants": variants})
    )
    space = {"data.split.folds": {"type": "categorical", "choices": [2, 20]}}
    assert "fan out" in json.dumps(
        refused(client, token, {"name": "s", "kind": "search", "base": TRAIN, "space": space})
    )


def test_search_validation_cost_is_bounded(client: TestClient) -> None:
    token = client.headers["Authorization"].split()[1]
    choices = [[w] for w in range(1, 101)]
    space = {f"model.hidden.{i}": {"type": "categorical", "choices": choices} for i in range(32)}
    base = {**TRAIN, "model": {"hidden": [8] * 32}}
    assert "at most" in json.dumps(
        refused(client, token, {"name": "s", "kind": "search", "base": base, "space": space})
    )
    # 500 enqueued points of 5 values each are checked against the space, not re-validated
    space = {f"model.hidden.{i}": {"type": "int", "low": 1, "high": 64} for i in range(5)}
    points = [{f"model.hidden.{i}": (n + i) % 64 + 1 for i in range(5)} for n in range(500)]
    spec = {"name": "s", "kind": "search", "method": "random", "base": base, "space": space, "enqueue": points}
    assert client.post("/api/v1/experiments", json=spec).status_code == 201
    outside = {**spec, "enqueue": [*points[:3], {"model.hidden.0": 65}]}
    assert "outside the space" in json.dumps(refused(client, token, outside))
    ranged = {
        "name": "s",
        "kind": "search",
        "base": TRAIN,
        "space": {"init.from_experiment": {"type": "int", "low": 1, "high": 1000}},
    }
    assert "listed choices" in json.dumps(refused(client, token, ranged))


def test_priority_and_queue_limits(client: TestClient, lab: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import reset_caches

    high = {**TRAIN, "priority": "high"}
    assert "reserved" in json.dumps(refused(client, lab["bob"], high, 403))
    assert client.post("/api/v1/experiments", json=high, headers=bearer(lab["admin"])).status_code == 201
    monkeypatch.setenv("TRAINLAB_HIGH_PRIORITY_USERS", "bob")
    monkeypatch.setenv("TRAINLAB_MAX_QUEUED_PER_USER", "2")
    reset_caches()
    assert client.post("/api/v1/experiments", json=high, headers=bearer(lab["bob"])).status_code == 201
    assert client.post("/api/v1/experiments", json=TRAIN, headers=bearer(lab["bob"])).status_code == 201
    detail = refused(client, lab["bob"], TRAIN, 429)
    assert "2 experiments queued or running" in detail


def test_refused_submissions_are_charged_to_the_rate_limit(client: TestClient, monkeypatch) -> None:
    from tests.conftest import reset_caches

    monkeypatch.setenv("TRAINLAB_SUBMIT_RATE_PER_MINUTE", "3")
    reset_caches()
    token = client.headers["Authorization"].split()[1]
    for _ in range(3):
        refused(client, token, {"name": "x", "data": {"source": "nope"}})
    assert "rate limit" in refused(client, token, TRAIN, 429)

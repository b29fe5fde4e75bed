"""What the dashboard's run table reads from the list: each item's owner, main metrics (a finished
run's summary, a running run's last logged step) and spec parameters; and `/me`, who a token
belongs to. Every backend (the `client` fixture's database)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import make_user

SPEC = {
    "name": "table",
    "data": {"source": "builtin/iris"},
    "model": {"type": "mlp", "hidden": [32, 16]},
    "train": {"epochs": 3, "batch_size": 16, "optimizer": {"name": "sgd", "lr": 0.05}},
}
SUMMARY = {
    "final": {"train": {"loss": 0.31, "accuracy": 0.9}, "validation": {"loss": 0.42, "accuracy": 0.85}},
    "validation": {"accuracy": 0.86, "threshold": 0.5, "confusion_matrix": {"labels": ["a"], "matrix": [[1]]}},
    "test": {"accuracy": 0.8, "f1": 0.79},
    "epochs_run": 3,
}


def run(experiment_id: int, summary: dict[str, Any] | None = None, rows: list[tuple] | None = None) -> None:
    """What a worker records: claim, log metric rows, finish with a summary (when given)."""
    from core.db import session_scope
    from core.models import Status
    from core.repositories import MetricRepository, RunRepository

    with session_scope() as session:
        runs = RunRepository(session)
        assert runs.claim(experiment_id, "w1/1/1")
        MetricRepository(session).add_many(experiment_id, rows or [])
        if summary is not None:
            runs.finish(experiment_id, Status.succeeded, summary=summary)
        session.commit()


def items(client: TestClient, **headers: str) -> dict[int, dict[str, Any]]:
    answer = client.get("/api/v1/experiments", headers=headers)
    assert answer.status_code == 200, answer.text
    return {item["id"]: item for item in answer.json()["items"]}


def test_list_items_carry_owner_metrics_and_parameters(client: TestClient) -> None:
    finished = client.post("/api/v1/experiments", json=SPEC).json()["id"]
    running = client.post("/api/v1/experiments", json={**SPEC, "name": "live"}).json()["id"]
    queued = client.post("/api/v1/experiments", json={**SPEC, "name": "waiting"}).json()["id"]
    run(finished, SUMMARY)
    rows = [(step, split, "loss", 1.0 / step) for step in (1, 2, 3) for split in ("train", "validation")]
    run(running, rows=[*rows, (3, "validation", "accuracy", 0.7)])
    shown = items(client)
    assert shown[finished]["metrics"] == {
        "train.loss": 0.31,
        "train.accuracy": 0.9,
        "validation.loss": 0.42,
        "validation.accuracy": 0.86,  # the evaluated split over the last epoch's
        "test.accuracy": 0.8,
        "test.f1": 0.79,
        "epochs_run": 3.0,
    }
    # a running run: its last logged step, under the same column names
    assert shown[running]["metrics"] == {"train.loss": 1 / 3, "validation.loss": 1 / 3, "validation.accuracy": 0.7}
    assert shown[queued]["metrics"] == {}
    params = shown[finished]["params"]
    assert params["train.optimizer.name"] == "sgd" and params["train.optimizer.lr"] == 0.05
    assert params["train.batch_size"] == 16 and params["model.type"] == "mlp"
    assert params["model.hidden"] == "[32, 16]" and params["data.source"] == "builtin/iris"
    assert "name" not in params and not any(v is None for v in params.values())
    assert {item["owner"] for item in shown.values()} == {"owner"}  # the fixture client's user


def test_a_search_shows_its_best_value_under_its_objective(client: TestClient) -> None:
    search = {
        "kind": "search",
        "name": "s",
        "base": {"kind": "analytic", "function": "quadratic"},
        "space": {"h1": {"type": "float", "low": -3, "high": 3}},
        "method": "random",
        "trials": 2,
    }
    parent = client.post("/api/v1/experiments", json=search).json()["id"]
    summary = {"objective": {"metric": "value", "direction": "minimize"}, "best": {"value": 0.25, "trial": 1}}
    run(parent, summary)
    item = items(client)[parent]
    assert item["metrics"] == {"value": 0.25}
    assert item["params"]["space.h1.low"] == -3 and item["params"]["method"] == "random"


def test_an_admin_sees_every_owner(client: TestClient) -> None:
    client.post("/api/v1/experiments", json=SPEC)
    other = make_user("someone")
    client.post("/api/v1/experiments", json={**SPEC, "name": "theirs"}, headers={"Authorization": f"Bearer {other}"})
    admin = make_user("boss", admin=True)
    shown = items(client, Authorization=f"Bearer {admin}")
    assert sorted((e["name"], e["owner"]) for e in shown.values()) == [("table", "owner"), ("theirs", "someone")]


def test_me_says_who_the_token_belongs_to(client: TestClient) -> None:
    me = client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["name"] == "owner" and me.json()["is_admin"] is False
    admin = make_user("boss", admin=True)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {admin}"}).json()["is_admin"] is True
    assert client.get("/api/v1/me", headers={"Authorization": ""}).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer tl_unknown"}).status_code == 401


def test_a_plot_opens_inline_and_other_files_still_download(client: TestClient) -> None:
    """The dashboard's thumbnails link to their plot full size (`inline`); a CSV stays a download."""
    from core.artifacts import get_artifact_store
    from core.db import session_scope
    from core.repositories import ArtifactRepository

    experiment = client.post("/api/v1/experiments", json=SPEC).json()["id"]
    png = b"\x89PNG\r\n\x1a\n" + bytes(16)
    store = get_artifact_store()
    with session_scope() as session:
        for name, data, kind in (("roc.png", png, "image/png"), ("predictions.csv", b"y\n1\n", "text/csv")):
            key = store.key_for(experiment, name)
            store.put(key, data)
            ArtifactRepository(session).put(experiment, name, key, len(data), kind)
        session.commit()
    base = f"/api/v1/experiments/{experiment}/artifacts"
    shown = client.get(f"{base}/roc.png", params={"inline": "true"})
    assert shown.status_code == 200 and shown.content == png
    assert shown.headers["content-disposition"] == 'inline; filename="roc.png"'
    assert client.get(f"{base}/roc.png").headers["content-disposition"].startswith("attachment;")
    assert (
        client.get(f"{base}/predictions.csv", params={"inline": "true"})
        .headers["content-disposition"]
        .startswith("attachment;")
    )
    assert client.get(f"{base}/roc.png", params={"inline": "maybe"}).status_code == 422


def list_statements(client: TestClient, limit: int, token: str) -> tuple[int, dict[int, dict[str, Any]]]:
    """How many statements one page of the list runs on the database, and its items."""
    from sqlalchemy import event

    from core.db import get_engine

    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        answer = client.get(
            "/api/v1/experiments", params={"limit": limit}, headers={"Authorization": f"Bearer {token}"}
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert answer.status_code == 200, answer.text
    return len(seen), {item["id"]: item for item in answer.json()["items"]}


def test_a_page_of_running_runs_costs_the_same_statements_whatever_its_length(client: TestClient) -> None:
    """The running runs' metrics come from one statement for every last step and one per
    LATEST_CHUNK runs for their rows, their owners' names from one: 10 or 100 runs on a page, the
    same statements (no N+1); one more run than LATEST_CHUNK, one more statement. The runs belong
    to three users (each may have only so many running) and an admin lists them all."""
    from core.repositories.results import LATEST_CHUNK

    owners = [client.headers["Authorization"], *(f"Bearer {make_user(name)}" for name in ("second", "third"))]
    splits = ("train", "validation")
    for number in range(LATEST_CHUNK + 1):
        experiment = client.post(
            "/api/v1/experiments",
            json={**SPEC, "name": f"live-{number}"},
            headers={"Authorization": owners[number % len(owners)]},
        ).json()["id"]
        run(experiment, rows=[(step, split, "loss", number + 1 / step) for step in (1, 2) for split in splits])
    admin = make_user("boss", admin=True)
    list_statements(client, 10, admin)  # anything a token's first request does once
    counts: dict[int, int] = {}
    for limit in (10, LATEST_CHUNK, LATEST_CHUNK + 1, 10):
        counts[limit], shown = list_statements(client, limit, admin)
        assert len(shown) == limit
        for item in shown.values():  # every run on the page shows its last step, read by those statements
            last = int(item["name"].removeprefix("live-")) + 1 / 2
            assert item["metrics"] == {"train.loss": last, "validation.loss": last}, item
        assert len({item["owner"] for item in shown.values()}) == len(owners)
    assert counts[10] == counts[LATEST_CHUNK], counts
    assert counts[LATEST_CHUNK + 1] == counts[LATEST_CHUNK] + 1, counts

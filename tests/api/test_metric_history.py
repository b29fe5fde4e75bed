"""Metric histories: the columnar form, filters, shape-keeping down-sampling, incremental reads
and the latest values in GET /experiments/{id} (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from typing import Any


def store_run(client: Any, epochs: int = 1000) -> int:
    """A stored experiment with `epochs` steps of train/validation loss and accuracy; the
    validation loss has one spike (step 500) and one dip (step 777)."""
    from core.db import session_scope
    from core.repositories import MetricRepository

    experiment_id = client.post("/api/v1/experiments", json={"name": "h", "data": {"source": "builtin/iris"}}).json()[
        "id"
    ]

    def loss(step: int) -> float:
        return 9.0 if step == 500 else -1.0 if step == 777 else 1.0 / step

    rows = [
        (step, split, name, loss(step) if name == "loss" else step / epochs)
        for step in range(1, epochs + 1)
        for split in ("train", "validation")
        for name in ("accuracy", "loss")
    ]
    with session_scope() as session:
        MetricRepository(session).add_many(experiment_id, rows)
        session.commit()
    return experiment_id


def series_of(body: dict[str, Any]) -> dict[tuple[str, str], tuple[list[int], list[float]]]:
    return {(s["split"], s["name"]): (s["steps"], s["values"]) for s in body["series"]}


def test_columnar_form_holds_every_point_in_step_order(client) -> None:
    experiment_id = store_run(client)
    body = client.get(f"/api/v1/experiments/{experiment_id}/metrics/series").json()
    assert body["experiment_id"] == experiment_id and body["last_step"] == 1000
    series = series_of(body)
    assert sorted(series) == [
        ("train", "accuracy"),
        ("train", "loss"),
        ("validation", "accuracy"),
        ("validation", "loss"),
    ]
    steps, values = series[("validation", "loss")]
    assert steps == list(range(1, 1001)) and values[499] == 9.0 and values[0] == 1.0
    rows = client.get(f"/api/v1/experiments/{experiment_id}/metrics").json()  # the row form, unchanged
    assert len(rows) == 4000 and rows[0] == {"step": 1, "split": "train", "name": "accuracy", "value": 0.001}


def test_series_filters_by_split_and_name(client) -> None:
    experiment_id = store_run(client, epochs=20)
    one = client.get(f"/api/v1/experiments/{experiment_id}/metrics/series", params={"split": "train", "name": "loss"})
    assert list(series_of(one.json())) == [("train", "loss")]
    names = client.get(f"/api/v1/experiments/{experiment_id}/metrics/series", params={"name": "accuracy"}).json()
    assert sorted(series_of(names)) == [("train", "accuracy"), ("validation", "accuracy")]
    none = client.get(f"/api/v1/experiments/{experiment_id}/metrics/series", params={"split": "test"}).json()
    assert none == {"experiment_id": experiment_id, "last_step": None, "series": []}


def test_max_points_keeps_the_shape(client) -> None:
    experiment_id = store_run(client)
    body = client.get(
        f"/api/v1/experiments/{experiment_id}/metrics/series",
        params={"split": "validation", "name": "loss", "max_points": 51},
    ).json()
    steps, values = series_of(body)[("validation", "loss")]
    assert 3 <= len(steps) <= 51 and steps == sorted(set(steps))
    assert max(values) == 9.0 and steps[values.index(9.0)] == 500  # the spike survives
    assert min(values) == -1.0 and steps[values.index(-1.0)] == 777  # and the dip
    assert steps[-1] == 1000 and values[-1] == 1.0 / 1000  # the last point is kept
    assert steps[0] == 1 and values[0] == 1.0  # the first bucket's maximum is the first point
    small = client.get(f"/api/v1/experiments/{experiment_id}/metrics/series", params={"max_points": 2000}).json()
    assert series_of(small)[("train", "loss")][0] == list(range(1, 1001))  # fewer points than asked: all
    refused = client.get(f"/api/v1/experiments/{experiment_id}/metrics/series", params={"max_points": 2})
    assert refused.status_code == 422


def test_after_step_returns_only_new_points(client) -> None:
    from core.db import session_scope
    from core.repositories import MetricRepository

    experiment_id = store_run(client, epochs=10)
    url = f"/api/v1/experiments/{experiment_id}/metrics"
    tail = client.get(f"{url}/series", params={"after_step": 8}).json()
    assert tail["last_step"] == 10 and all(s["steps"] == [9, 10] for s in tail["series"])
    assert client.get(f"{url}/series", params={"after_step": 10}).json()["series"] == []
    assert [r["step"] for r in client.get(url, params={"after_step": 9, "name": "loss"}).json()] == [10, 10]
    with session_scope() as session:  # the run logs another epoch
        MetricRepository(session).add_many(experiment_id, [(11, "train", "loss", 0.5)])
        session.commit()
    assert client.get(url, params={"after_step": 10}).json() == [
        {"step": 11, "split": "train", "name": "loss", "value": 0.5}
    ]


def test_get_carries_the_latest_values(client) -> None:
    experiment_id = store_run(client, epochs=30)
    body = client.get(f"/api/v1/experiments/{experiment_id}").json()
    latest = body["latest_metrics"]
    assert latest["step"] == 30
    assert latest["values"]["validation"] == {"accuracy": 1.0, "loss": 1.0 / 30}
    assert math.isclose(latest["values"]["train"]["accuracy"], 1.0)
    fresh = client.post("/api/v1/experiments", json={"name": "new", "data": {"source": "builtin/iris"}}).json()
    assert client.get(f"/api/v1/experiments/{fresh['id']}").json()["latest_metrics"] is None


def test_history_of_another_users_experiment_is_404(client) -> None:
    from tests.conftest import make_user

    experiment_id = store_run(client, epochs=3)
    stranger = {"Authorization": f"Bearer {make_user('stranger')}"}
    answer = client.get(f"/api/v1/experiments/{experiment_id}/metrics/series", headers=stranger)
    assert answer.status_code == 404

"""The Python client against a live server with a real worker: typed results, waiting with a
callback, metrics as rows, downloads, cancel, and retries that never submit twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cli.support import auth_enforced, fast_spec, live_service, long_spec
from tests.services import Service
from trainlab.client import AuthError, Client, Experiment, MetricRows, TrainlabError

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[Service, str | None]]:
    with live_service() as (service, token, _config):
        yield service, token


@pytest.fixture
def client(live: tuple[Service, str | None]) -> Iterator[Client]:
    service, token = live
    with Client(service.url, token) as c:
        yield c


class FlakyTransport(httpx.HTTPTransport):
    """A network that fails the first POST: before it is sent (connection refused) or after the
    server has handled it (the answer is lost)."""

    def __init__(self, lose_answer: bool) -> None:
        super().__init__()
        self.lose_answer = lose_answer
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return super().handle_request(request)
        self.keys.append(request.headers.get("Idempotency-Key"))
        if len(self.keys) > 1:
            return super().handle_request(request)
        if not self.lose_answer:
            raise httpx.ConnectError("connection refused", request=request)
        super().handle_request(request).close()  # the server created the experiment...
        raise httpx.ReadError("connection reset by peer", request=request)  # ...but we never hear of it


class RecordingTransport(httpx.HTTPTransport):
    """The real network, with a note of every metric-history download: its query and the rows
    the server answered."""

    def __init__(self) -> None:
        super().__init__()
        self.downloads: list[tuple[dict[str, str], list[dict[str, Any]]]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "GET" and request.url.path.endswith("/metrics"):
            response.read()
            self.downloads.append((dict(request.url.params), response.json()))
        return response


def test_submit_wait_and_read_back_typed_results(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(fast_spec("client-file")))
    created = client.submit(path, overrides=["train.epochs=3"])
    assert isinstance(created, Experiment) and created.status == "queued" and created.spec["train"]["epochs"] == 3
    seen: list[tuple[str, int]] = []
    final = client.wait(created.id, on_update=lambda e, m: seen.append((e.status, m.last_step)), poll=0.3)
    assert final.status == "succeeded" and final.done, final.error
    assert seen[-1] == ("succeeded", final.summary["epochs_run"])
    assert 0 <= final.test_metrics["accuracy"] <= 1 and final.diagnosis and final.diagnosis.verdict
    assert final.timings.run_seconds and final.created_at and final.finished_at
    rows = client.metrics(final.id)
    assert isinstance(rows, MetricRows) and rows.last_step == final.summary["epochs_run"]
    assert rows.as_dicts()[0].keys() == {"step", "split", "name", "value"}
    assert len(rows.series()[("validation", "loss")]) == final.summary["epochs_run"]
    assert all(m.split == "train" for m in client.metrics(final.id, split="train"))
    names = {a.name for a in client.artifacts(final.id)}
    assert {"learning_curves.png", "roc.png", "predictions.csv"} <= names
    assert client.download(final.id, "predictions.csv").startswith(b"row,true,predicted")
    saved = client.download_all(final.id, tmp_path / "artifacts")
    assert {p.name for p in saved} == names and all(p.stat().st_size > 0 for p in saved)
    page = client.list(name="client-file", status="succeeded")
    assert page.total >= 1 and page.items[0].id == final.id


def test_submit_a_dict_or_a_yaml_string_and_cancel(client: Client) -> None:
    running = client.submit(long_spec("client-long"))
    queued = client.submit(yaml.safe_dump(long_spec("client-yaml")))
    assert queued.name == "client-yaml" and queued.spec["train"]["epochs"] == 2000
    assert client.cancel(queued.id).status == "cancelled"
    client.cancel(running.id)
    assert client.wait(running.id, poll=0.3, timeout=60).status == "cancelled"


def test_a_refused_spec_raises_with_the_servers_explanation(client: Client) -> None:
    with pytest.raises(TrainlabError) as refused:
        client.submit({"name": "bad", "data": {"source": "builtin/nope"}})
    assert refused.value.status_code == 422 and "builtin/digits" in str(refused.value)
    with pytest.raises(TrainlabError) as missing:
        client.get(999_999)
    assert missing.value.status_code == 404


def test_retry_after_a_refused_connection_reuses_the_idempotency_key(live: tuple[Service, str | None]) -> None:
    service, token = live
    transport = FlakyTransport(lose_answer=False)
    name = f"client-retry-{uuid.uuid4().hex[:6]}"
    with Client(service.url, token, transport=transport, backoff=0.05) as flaky:
        created = flaky.submit(fast_spec(name, epochs=1))
        assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1] and transport.keys[0]
        assert flaky.list(name=name).total == 1 and created.name == name
        other = flaky.submit(fast_spec(name, epochs=1))
        assert transport.keys[2] != transport.keys[0] and other.id != created.id  # a new submission, a new key
        flaky.cancel(created.id), flaky.cancel(other.id)


def test_retry_after_a_lost_answer_does_not_create_a_second_experiment(live: tuple[Service, str | None]) -> None:
    service, token = live
    transport = FlakyTransport(lose_answer=True)
    name = f"client-lost-{uuid.uuid4().hex[:6]}"
    with Client(service.url, token, transport=transport, backoff=0.05) as flaky:
        created = flaky.submit(fast_spec(name, epochs=1))
        assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
        listed = flaky.list(name=name)
        flaky.cancel(created.id)
    assert listed.total == 1 and listed.items[0].id == created.id


def test_unreachable_server_raises_after_the_retries() -> None:
    nowhere = Client("http://127.0.0.1:9", token="tl_x", retries=1, backoff=0.01)
    with nowhere, pytest.raises(httpx.ConnectError):
        nowhere.list()


def test_a_wrong_token_raises_auth_error(live: tuple[Service, str | None]) -> None:
    service, _ = live
    assert auth_enforced(service)  # a server without authentication is a regression, never a skip
    with Client(service.url, "tl_wrong-token") as wrong, pytest.raises(AuthError) as refused:
        wrong.list()
    assert refused.value.status_code == 401


def test_wait_follows_a_run_by_downloading_only_the_new_steps(live: tuple[Service, str | None]) -> None:
    """Following a run costs O(new points) a poll: the first download is the history so far, each
    later one asks for the steps after the last one held (after_step) and brings at least one new
    step, no row comes twice, and the rows handed to on_update are the whole history."""
    service, token = live
    transport = RecordingTransport()
    with Client(service.url, token, transport=transport) as watching:
        run = watching.submit(long_spec(f"client-follow-{uuid.uuid4().hex[:6]}"))
        seen: list[int] = []

        def on_update(experiment: Experiment, rows: MetricRows) -> None:
            seen.append(len(rows))
            if len(transport.downloads) >= 4 and not (experiment.done or experiment.cancel_requested):
                watching.cancel(run.id)  # four downloads with new steps are enough: stop the run

        final = watching.wait(run.id, on_update=on_update, poll=0.2, timeout=120)
        history = watching.metrics(run.id).as_dicts()
    assert final.status == "cancelled"
    downloads = transport.downloads[:-1]  # the last one is the check above, not a poll
    assert len(downloads) >= 4
    assert "after_step" not in downloads[0][0]
    held = max(r["step"] for r in downloads[0][1])
    for params, rows in downloads[1:]:
        assert int(params["after_step"]) == held
        assert rows and min(r["step"] for r in rows) > held  # only new steps, and some
        held = max(r["step"] for r in rows)
    downloaded = [(r["step"], r["split"], r["name"]) for _, rows in downloads for r in rows]
    assert len(downloaded) == len(set(downloaded)) == len(history) == seen[-1]
    assert sorted(downloaded) == sorted((r["step"], r["split"], r["name"]) for r in history)

"""Users, tokens and isolation: every route x owner / other user / admin / no token."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_user

SPEC = {"name": "mine", "data": {"source": "builtin/iris"}}


def as_user(client: TestClient, token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture
def world(client: TestClient):
    """The fixture client's user owns one experiment; another user and an admin exist."""
    owner = client.headers["Authorization"].split()[1]
    experiment = client.post("/api/v1/experiments", json=SPEC).json()
    return {
        "owner": owner,
        "other": make_user("other"),
        "admin": make_user("boss", admin=True),
        "id": experiment["id"],
    }


ROUTES = [
    ("GET", "/api/v1/experiments/{id}"),
    ("GET", "/api/v1/experiments/{id}/metrics"),
    ("GET", "/api/v1/experiments/{id}/artifacts"),
    ("GET", "/api/v1/experiments/{id}/artifacts/predictions.csv"),
    ("POST", "/api/v1/experiments/{id}/cancel"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_isolation_matrix(client: TestClient, world, method: str, path: str) -> None:
    url = path.format(id=world["id"])
    expected = {"owner": 200, "admin": 200, "other": 404, None: 401}
    if path.endswith("predictions.csv"):  # not produced (no worker here): 404 for everyone allowed
        expected = {"owner": 404, "admin": 404, "other": 404, None: 401}
    for who, status in expected.items():
        token = world[who] if who else None
        response = client.request(method, url, headers=as_user(client, token) if token else {"Authorization": ""})
        assert response.status_code == status, (who, method, url, response.text)
    if method == "POST":  # the other user's attempt changed nothing before the owner's cancel
        assert (
            client.get(url.replace("/cancel", ""), headers=as_user(client, world["owner"])).json()["status"]
            == "cancelled"
        )


def test_lists_show_only_your_own_and_admins_see_all(client: TestClient, world) -> None:
    other = as_user(client, world["other"])
    client.post("/api/v1/experiments", json={**SPEC, "name": "theirs"}, headers=other)
    mine = client.get("/api/v1/experiments").json()
    theirs = client.get("/api/v1/experiments", headers=other).json()
    everything = client.get("/api/v1/experiments", headers=as_user(client, world["admin"])).json()
    assert [e["name"] for e in mine["items"]] == ["mine"]
    assert [e["name"] for e in theirs["items"]] == ["theirs"]
    assert everything["total"] == 2


def test_missing_bad_and_revoked_tokens_are_401(client: TestClient, world) -> None:
    from core.db import session_scope
    from core.repositories import TokenRepository

    assert client.get("/api/v1/experiments", headers={"Authorization": ""}).status_code == 401
    bad = client.get("/api/v1/experiments", headers={"Authorization": "Bearer tl_nope"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/spec/schema", headers={"Authorization": ""}).status_code == 401
    assert client.get("/api/v1/health", headers={"Authorization": ""}).status_code == 200
    with session_scope() as session:
        assert TokenRepository(session).revoke(world["other"][:10]) == 1
        session.commit()
    assert client.get("/api/v1/experiments", headers=as_user(client, world["other"])).status_code == 401
    # the dashboard's cookie works like the header
    client.cookies.set("trainlab_token", world["admin"])
    assert client.get("/api/v1/experiments", headers={"Authorization": ""}).status_code == 200


def test_tokens_are_stored_as_hashes_only(client: TestClient, world) -> None:
    from core.db import session_scope
    from core.repositories import TokenRepository

    assert world["other"].startswith("tl_") and len(world["other"]) > 40
    with session_scope() as session:
        rows = TokenRepository(session).list()
        assert all(world["other"] != r.token_hash and len(r.token_hash) == 64 for r in rows)
        assert any(world["other"].startswith(r.prefix) for r in rows)


def test_idempotency_key_returns_the_first_experiment(client: TestClient) -> None:
    headers = {"Idempotency-Key": "submit-42"}
    first = client.post("/api/v1/experiments", json=SPEC, headers=headers)
    again = client.post("/api/v1/experiments", json=SPEC, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert client.get("/api/v1/experiments").json()["total"] == 1
    other_key = client.post("/api/v1/experiments", json=SPEC, headers={"Idempotency-Key": "submit-43"})
    assert other_key.status_code == 201 and other_key.json()["id"] != first.json()["id"]


def test_submission_rate_limit_is_429_with_retry_after(client: TestClient, monkeypatch) -> None:
    from core.settings import get_settings

    monkeypatch.setenv("TRAINLAB_SUBMIT_RATE_PER_MINUTE", "2")
    get_settings.cache_clear()
    assert client.post("/api/v1/experiments", json=SPEC).status_code == 201
    assert client.post("/api/v1/experiments", json=SPEC).status_code == 201
    third = client.post("/api/v1/experiments", json=SPEC)
    assert third.status_code == 429 and third.headers["retry-after"] == "60"
    assert client.get("/api/v1/experiments").json()["total"] == 2

"""Hostile requests on a shared server, on both database backends: upload bombs, anonymous
uploads, cross-site requests with the dashboard's cookie, and what the responses promise."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_user
from tests.hostile_inputs import forged_npz, npz_bytes, wide_csv, with_peak_memory

TRAIN = {"name": "t", "data": {"source": "builtin/iris"}, "train": {"epochs": 1}}


def upload(client: TestClient, content: bytes, filename: str, **kwargs) -> object:
    return client.post("/api/v1/datasets", files={"file": (filename, content)}, **kwargs)


def datasets(client: TestClient) -> int:
    return len(client.get("/api/v1/datasets").json())


def test_an_npz_zip_bomb_is_refused_before_it_inflates(client: TestClient, api_env: Path) -> None:
    bomb = npz_bytes(X=np.zeros((40_000, 4_000)), y=np.zeros(40_000))  # 1.28 GB of zeros
    assert len(bomb) < 2 * 1024**2
    response, peak = with_peak_memory(lambda: upload(client, bomb, "bomb.npz"))
    assert response.status_code == 413 and "inflates" in response.json()["detail"]
    assert peak < 100 * 1024**2 and datasets(client) == 0
    assert not list((api_env / "artifacts").rglob("data.*")) if (api_env / "artifacts").exists() else True


def test_a_highly_compressed_member_is_refused_by_its_ratio(client: TestClient) -> None:
    bomb = npz_bytes(X=np.zeros((2_000, 1_000)), y=np.arange(2_000) % 2)  # 16 MB, ~1000:1
    response = upload(client, bomb, "ratio.npz")
    assert response.status_code == 413 and "more than the allowed 100:1" in response.json()["detail"]


def test_a_forged_array_header_is_a_400_not_an_allocation(client: TestClient) -> None:
    response = upload(client, forged_npz(), "forged.npz")  # valid checksums around a lying header
    assert response.status_code == 400 and "header says shape" in response.json()["detail"]
    assert datasets(client) == 0


def test_an_anonymous_upload_is_refused_unread(client: TestClient) -> None:
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(60):  # 60 MB, streamed
            sent += 1024**2
            yield b"a" * 1024**2

    response = client.post(
        "/api/v1/datasets",
        content=body(),
        headers={"Authorization": "", "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 401
    assert sent < 60 * 1024**2  # the server answered before taking the whole body


def test_a_chunked_upload_over_the_limit_is_a_413(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.main import create_app
    from tests.conftest import reset_caches

    for limit in ("REQUEST", "UPLOAD", "ARCHIVE"):  # an upload's body limit is the larger of its files' limits
        monkeypatch.setenv(f"TRAINLAB_MAX_{limit}_BYTES", str(2 * 1024**2))
    reset_caches()

    def body() -> Iterator[bytes]:  # no Content-Length: the size is only known as it streams
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\na,b\n'
        for _ in range(4):
            yield b"1,2\n" * 262_144
        yield b"\r\n--xyz--\r\n"

    with TestClient(create_app()) as small:
        small.headers["Authorization"] = client.headers["Authorization"]
        form = {"Content-Type": "multipart/form-data; boundary=xyz"}
        response = small.post("/api/v1/datasets", content=body(), headers=form)
    assert response.status_code == 413, response.text
    assert datasets(client) == 0


def test_a_wide_csv_costs_about_its_floats(client: TestClient) -> None:
    raw = wide_csv(2000, 500)
    response, peak = with_peak_memory(lambda: upload(client, raw, "wide.csv"))
    assert response.status_code == 201, response.text
    assert response.json()["info"]["rows"] == 500
    assert peak < 6 * len(raw)  # the file, its floats and the parse: not a Python string per cell


def test_the_api_answers_others_while_an_upload_is_parsed(client: TestClient) -> None:
    raw = wide_csv(500, 4000, seed=1)  # seconds of parsing
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(upload(client, raw, "big.csv").status_code))
    worker.start()
    answered = 0
    while worker.is_alive():
        assert client.get("/api/v1/health").status_code == 200
        answered += 1
    worker.join()
    assert results == [201]
    assert answered >= 5  # the event loop kept serving while the upload was parsed


@pytest.fixture
def browser(client: TestClient) -> Iterator[tuple[TestClient, str]]:
    """A browser signed in to the dashboard: its cookie, no Authorization header."""
    token = client.headers["Authorization"].split()[1]
    from api.main import create_app

    with TestClient(create_app(), follow_redirects=False) as tab:
        tab.cookies.set("trainlab_token", token)
        yield tab, token


def test_cookie_changes_from_another_origin_are_refused(browser: tuple[TestClient, str], client: TestClient) -> None:
    tab, _ = browser
    ours = {"Origin": "http://testserver"}
    created = tab.post("/api/v1/experiments", json=TRAIN, headers=ours)
    assert created.status_code == 201, created.text
    experiment = created.json()["id"]
    for headers in (
        {"Origin": "http://testserver:8888"},  # a student's notebook on another port of the host
        {"Origin": "null"},
        {"Referer": "http://evil.example/page"},
        {},  # no Origin and no Referer: not one of our pages
    ):
        assert tab.post("/api/v1/experiments", json=TRAIN, headers=headers).status_code == 403
        assert tab.post(f"/api/v1/experiments/{experiment}/cancel", headers=headers).status_code == 403
    plain = {**ours, "Content-Type": "text/plain"}  # what a cross-site form could send unasked
    assert tab.post("/api/v1/experiments", content=b'{"name": "x"}', headers=plain).status_code == 415
    assert client.get(f"/api/v1/experiments/{experiment}").json()["status"] == "queued"
    assert client.get("/api/v1/experiments").json()["total"] == 1
    assert tab.get("/api/v1/experiments").status_code == 200  # reading needs no Origin
    from_our_page = {"Referer": "http://testserver/experiments/1"}
    assert tab.post(f"/api/v1/experiments/{experiment}/cancel", headers=from_our_page).status_code == 200


def test_sign_in_and_out_from_another_origin_are_refused(api_env: Path) -> None:
    from api.main import create_app

    bob = make_user("bob")
    with TestClient(create_app(), follow_redirects=False) as tab:
        forged = tab.post("/login", data={"token": bob}, headers={"Origin": "http://localhost:9999"})
        assert forged.status_code == 403 and "trainlab_token" not in forged.headers.get("set-cookie", "")
        assert tab.post("/login", data={"token": bob}).status_code == 403
        assert tab.post("/login", data={"token": bob}, headers={"Origin": "http://testserver"}).status_code == 303


def test_security_headers(client: TestClient) -> None:
    for path in ("/", "/login", "/api/v1/health", "/api/v1/experiments"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]


def test_the_database_and_data_folder_are_private(client: TestClient, api_env: Path, database_url: str) -> None:
    assert stat.S_IMODE(api_env.stat().st_mode) == 0o700
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

"""Uploads: every bad file gets a clear 4xx naming the line or column, and changes nothing."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_user

GOOD_CSV = b"a,b,colour,label\n1,2,red,0\n3,4,blue,1\n5,6,red,0\n7,8,blue,1\n"


def upload(client, content: bytes, filename: str = "data.csv", **form):
    return client.post("/api/v1/datasets", files={"file": (filename, content)}, data=form)


def stored(client, data_dir: Path) -> tuple[int, int]:
    files = list((data_dir / "artifacts").rglob("data.*")) if (data_dir / "artifacts").exists() else []
    return len(client.get("/api/v1/datasets").json()), len(files)


def test_csv_upload_is_described_and_listed(client, api_env) -> None:
    response = upload(client, GOOD_CSV, target="label")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["info"]["rows"] == 4 and body["info"]["columns"] == ["a", "b", "colour", "label"]
    assert body["info"]["categorical"] == ["colour"] and body["info"]["class_counts"] == {"0": 2, "1": 2}
    assert len(body["sha256"]) == 64
    assert [d["id"] for d in client.get("/api/v1/datasets").json()] == [body["id"]]
    assert client.get(f"/api/v1/datasets/{body['id']}").json()["name"] == "data.csv"


def test_npz_upload_with_images(client) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.random.default_rng(0).random((20, 8, 8)), y=np.arange(20) % 2)
    response = upload(client, buffer.getvalue(), "images.npz")
    assert response.status_code == 201, response.text
    assert response.json()["info"]["shape"] == [20, 8, 8]


@pytest.mark.parametrize(
    ("content", "form", "status", "words"),
    [
        (b"\x00\x01\x02binary", {}, 400, "not a CSV"),
        (b"a,b,label\n1,2,0\n3,4\n", {}, 400, "line 3"),
        (b"a,b,label\n1,2,0\n3,x,1\n", {}, 400, "line 3, column 'b'"),
        (b"a,b,label\n1,,0\n3,4,1\n", {}, 400, "column 'b': missing value on line 2"),
        (GOOD_CSV, {"target": "nope"}, 422, "target column 'nope' does not exist"),
        (b"a,label\n1,0\n2,0\n", {"target": "label"}, 422, "one class only"),
        (b"a,b\n", {}, 400, "no data rows"),
    ],
)
def test_bad_uploads_are_refused_and_store_nothing(client, api_env, content, form, status, words) -> None:
    before = stored(client, api_env)
    response = upload(client, content, **form)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert stored(client, api_env) == before


def test_bad_npz_and_pickles_are_refused(client) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([{"a": 1}], dtype=object), y=np.array([1]))
    response = upload(client, buffer.getvalue(), "evil.npz")
    assert response.status_code == 400 and "pickled" in response.json()["detail"]
    buffer = io.BytesIO()
    np.savez(buffer, features=np.zeros((3, 2)))
    assert "needs arrays X and y" in upload(client, buffer.getvalue(), "x.npz").json()["detail"]


def test_oversized_upload_is_413(client, api_env, monkeypatch) -> None:
    from core.settings import get_settings

    monkeypatch.setenv("TRAINLAB_MAX_UPLOAD_BYTES", "100")
    get_settings.cache_clear()
    response = upload(client, b"a,label\n" + b"1,0\n2,1\n" * 100)
    assert response.status_code == 413
    assert stored(client, api_env) == (0, 0)


def test_delete_in_use_is_refused_and_other_users_see_nothing(client, api_env) -> None:
    dataset = upload(client, GOOD_CSV, target="label").json()
    spec = {"name": "on-upload", "data": {"source": f"dataset/{dataset['id']}", "target": "label", "one_hot": True}}
    assert client.post("/api/v1/experiments", json=spec).status_code == 201
    refused = client.delete(f"/api/v1/datasets/{dataset['id']}")
    assert refused.status_code == 409 and "used by 1 experiment" in refused.json()["detail"]
    other = {"Authorization": f"Bearer {make_user('other')}"}
    assert client.get(f"/api/v1/datasets/{dataset['id']}", headers=other).status_code == 404
    assert client.delete(f"/api/v1/datasets/{dataset['id']}", headers=other).status_code == 404
    assert client.get("/api/v1/datasets", headers=other).json() == []
    theirs = client.post("/api/v1/experiments", json=spec, headers=other)
    assert theirs.status_code == 422 and "not found" in str(theirs.json()["detail"])
    assert stored(client, api_env) == (1, 1)


def test_unused_dataset_can_be_deleted(client, api_env) -> None:
    dataset = upload(client, GOOD_CSV, target="label").json()
    assert client.delete(f"/api/v1/datasets/{dataset['id']}").status_code == 204
    assert stored(client, api_env) == (0, 0)


def test_names_cannot_escape_their_folder(client, api_env) -> None:
    response = upload(client, GOOD_CSV, filename="../../../escape.csv", target="label")
    assert response.status_code == 201
    files = [p for p in api_env.rglob("*") if p.is_file() and p.suffix == ".csv"]
    assert files and all((api_env / "artifacts") in p.parents for p in files)
    assert not (api_env.parent / "escape.csv").exists()
    experiment = client.post("/api/v1/experiments", json={"name": "x", "data": {"source": "builtin/iris"}}).json()
    for name in ("..%2F..%2Ftrainlab.db", "..%2Fdata.csv", ".hidden"):
        assert client.get(f"/api/v1/experiments/{experiment['id']}/artifacts/{name}").status_code == 404


def test_artifact_store_refuses_escaping_keys(tmp_path) -> None:
    from core.artifacts import LocalArtifactStore, UnsafeName

    store = LocalArtifactStore(tmp_path / "store")
    with pytest.raises(UnsafeName):
        store.key_for(1, "../x")
    with pytest.raises(UnsafeName):
        store.put("../outside", b"x")
    assert not (tmp_path / "outside").exists()

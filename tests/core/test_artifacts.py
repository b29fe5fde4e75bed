"""The artifact store's file interface on both store kinds (a directory; an S3 bucket, moto's
in-process mock): `put_file` streams a file in, `local_path` gives a worker a file on disk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.artifacts import ArtifactStore, LocalArtifactStore, S3ArtifactStore, UnsafeName


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield LocalArtifactStore(tmp_path / "store")
        return
    import boto3
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="trainlab")
        yield S3ArtifactStore("trainlab", "lab", client=client)


def big_file(path: Path, size: int) -> Path:
    """`size` random bytes (incompressible, and past boto3's 8 MB multipart threshold when large)."""
    with path.open("wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 1024**2))
            out.write(chunk)
            left -= len(chunk)
    return path


def test_put_file_and_local_path_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    source = big_file(tmp_path / "archive.zip", 9 * 1024**2 + 17)
    key = "ns/datasets/1/data.zip"
    store.put_file(key, source)
    assert store.exists(key)
    with store.local_path(key) as path:
        assert path.is_file() and path.read_bytes() == source.read_bytes()
        seen = path
    if isinstance(store, S3ArtifactStore):  # a downloaded copy, removed afterwards
        assert not seen.exists()
    else:  # the stored file itself, kept
        assert seen.exists() and tmp_path / "store" in seen.parents
    assert store.get(key) == source.read_bytes()


def test_put_file_replaces_and_leaves_no_temporary_file(store: ArtifactStore, tmp_path: Path) -> None:
    key = "ns/datasets/2/data.tar"
    store.put(key, b"old")
    store.put_file(key, big_file(tmp_path / "new.tar", 1000))
    assert store.get(key) == (tmp_path / "new.tar").read_bytes()
    if isinstance(store, LocalArtifactStore):
        assert [p.name for p in (tmp_path / "store" / "ns" / "datasets" / "2").iterdir()] == ["data.tar"]


def test_a_failed_put_file_leaves_nothing(store: ArtifactStore, tmp_path: Path) -> None:
    key = "ns/datasets/3/data.zip"
    with pytest.raises(OSError):
        store.put_file(key, tmp_path / "missing.zip")
    assert not store.exists(key)
    if isinstance(store, LocalArtifactStore):
        assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]


def test_local_path_of_a_missing_key_is_file_not_found(store: ArtifactStore) -> None:
    with pytest.raises(FileNotFoundError), store.local_path("ns/datasets/4/data.zip"):
        pass


def test_keys_cannot_escape_the_store(store: ArtifactStore, tmp_path: Path) -> None:
    source = big_file(tmp_path / "a.zip", 10)
    with pytest.raises(UnsafeName):
        store.put_file("../outside/data.zip", source)
    with pytest.raises(UnsafeName), store.local_path("ns/../../etc/passwd"):
        pass
    assert not (tmp_path / "outside").exists()

"""The artifact store: bytes by key, in a directory (local or a shared mount) or an
S3-compatible bucket, so workers on other machines store artifacts the API can serve."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from core.settings import get_settings

CHUNK = 1024 * 1024  # files are copied a chunk at a time, never held whole

# Artifact names are plain file names: no separators, no "..", nothing hidden.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class UnsafeName(ValueError):
    """An artifact name that could escape its folder."""


def check_name(name: str) -> str:
    if not SAFE_NAME.match(name) or ".." in name:
        raise UnsafeName(f"artifact name {name!r} is not a plain file name")
    return name


class ArtifactStore(Protocol):
    @property
    def namespace(self) -> str: ...
    def key_for(self, experiment_id: int, name: str) -> str: ...
    def dataset_key(self, dataset_id: int, fmt: str) -> str: ...
    def put(self, key: str, data: bytes) -> None: ...
    def put_file(self, key: str, path: str | Path) -> None: ...
    def get(self, key: str) -> bytes: ...
    def local_path(self, key: str) -> AbstractContextManager[Path]: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...


def delete_files(store: ArtifactStore, keys: list[str]) -> int:
    """Delete stored files whose rows are gone (committed first: a crash in between leaves an
    orphan file, never a row without its file). Returns how many were deleted."""
    deleted = 0
    for key in keys:
        try:
            if store.exists(key):
                store.delete(key)
                deleted += 1
        except (OSError, UnsafeName):
            continue
    return deleted


class _Keys:
    """Keys carry this database's id (`installation.uid`): a new or restored database sharing
    the store never reads or overwrites another database's experiment N."""

    _namespace: str | None = None

    @property
    def namespace(self) -> str:
        if self._namespace is None:
            from core.db import session_scope
            from core.operations import InstallationRepository

            with session_scope() as session:
                uid = InstallationRepository(session).uid()
                session.commit()
            self._namespace = uid
        return self._namespace

    def key_for(self, experiment_id: int, name: str) -> str:
        name = check_name(name)
        return f"{self.namespace}/experiments/{int(experiment_id)}/{name}"

    def dataset_key(self, dataset_id: int, fmt: str) -> str:
        fmt = check_name(fmt)
        return f"{self.namespace}/datasets/{int(dataset_id)}/data.{fmt}"


class LocalArtifactStore(_Keys):
    """Files under one root directory; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise UnsafeName(f"artifact key {key!r} escapes the store")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)

    def put_file(self, key: str, path: str | Path) -> None:
        """Store a file's content, copied a chunk at a time (atomic like `put`)."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, Path(path).open("rb") as source:
                shutil.copyfileobj(source, out, CHUNK)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """The stored file itself (read it, never change it). FileNotFoundError if absent."""
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no stored file {key!r}")
        yield path

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_file():
            path.unlink()


class S3ArtifactStore(_Keys):
    """Objects in an S3-compatible bucket (AWS, MinIO, ...), under an optional prefix. A PUT
    is atomic for readers: they see the old object or the new one."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, client: Any = None) -> None:
        import boto3

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url)

    def _key(self, key: str) -> str:
        if ".." in key.split("/"):
            raise UnsafeName(f"artifact key {key!r} escapes the store")
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: str | Path) -> None:
        """Store a file's content, streamed (boto3's managed transfer: multipart when large)."""
        self.client.upload_file(str(path), self.bucket, self._key(key))

    def get(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        return body

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """The object downloaded (streamed) to a temporary file, removed afterwards.
        FileNotFoundError if there is no such object."""
        from botocore.exceptions import ClientError

        fd, tmp = tempfile.mkstemp(prefix="trainlab-", suffix=f"-{Path(key).name}")
        os.close(fd)
        path = Path(tmp)
        try:
            try:
                self.client.download_file(self.bucket, self._key(key), tmp)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    raise FileNotFoundError(f"no stored object {key!r}") from exc
                raise
            yield path
        finally:
            path.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


@lru_cache
def get_artifact_store() -> ArtifactStore:
    """The configured store: `TRAINLAB_ARTIFACT_STORE=s3://bucket/prefix` (endpoint from
    `TRAINLAB_S3_ENDPOINT_URL`, credentials from the usual AWS variables), else a directory."""
    settings = get_settings()
    url = settings.artifact_store
    if url and url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        return S3ArtifactStore(bucket, prefix, settings.s3_endpoint_url)
    return LocalArtifactStore(Path(url) if url else settings.resolved_artifact_dir)

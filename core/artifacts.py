"""The artifact store: bytes by key, in a directory (local or a shared mount)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

# Artifact names are plain file names: no separators, no "..", nothing hidden.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class UnsafeName(ValueError):
    """An artifact name that could escape its folder."""


def check_name(name: str) -> str:
    if not SAFE_NAME.match(name) or ".." in name:
        raise UnsafeName(f"artifact name {name!r} is not a plain file name")
    return name


class LocalArtifactStore:
    """Files under one root directory; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def key_for(self, experiment_id: int, name: str) -> str:
        return f"experiments/{int(experiment_id)}/{check_name(name)}"

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

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_file():
            path.unlink()

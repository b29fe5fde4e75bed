"""The worker streams a folder data set that a run in memory would need more than its data memory
budget for (TRAINLAB_WORKER_DATA_MEMORY_MB): decoded once into shards beside the archive, listed on
the data set's row (deleted with it), read back by the next run; `data.stream` overrides."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient


def archive(per_class: int = 12, size: int = 16, broken: bool = False) -> bytes:
    """Two classes of PNGs; `broken`: then a last member that is not an image."""
    from PIL import Image

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for label in ("dark", "light"):
            for k in range(per_class):
                level = 40 if label == "dark" else 200
                pixels = np.clip(rng.normal(level, 20, (size, size, 3)), 0, 255).astype(np.uint8)
                png = io.BytesIO()
                Image.fromarray(pixels).save(png, "PNG")
                z.writestr(f"set/{label}/{k}.png", png.getvalue())
        if broken:
            z.writestr("set/light/zz-broken.png", b"\x89PNG\r\n\x1a\n not an image after all")
    return buffer.getvalue()


@pytest.fixture
def folder(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An uploaded image folder (24 images of 16x16: 74 KB of features, 295 KB in memory) and a
    worker whose data memory budget is 1 MB."""
    from core.db import session_scope
    from core.models import User
    from core.settings import get_settings

    body = client.post("/api/v1/datasets", files={"file": ("set.zip", archive())}).json()
    monkeypatch.setenv("TRAINLAB_WORKER_DATA_MEMORY_MB", "1")
    get_settings.cache_clear()
    with session_scope() as session:
        owner = session.query(User).filter_by(name="owner").one().id
    return {"id": body["id"], "owner": owner}


def resolve(folder: dict[str, Any], **data: Any) -> Any:
    from core.artifacts import get_artifact_store
    from ml.spec import DataSpec
    from workers.uploads import UploadResolver

    spec = DataSpec.model_validate({"source": f"dataset/{folder['id']}", **data})
    return UploadResolver(get_artifact_store(), folder["owner"])(str(folder["id"]), spec)


def test_over_the_budget_the_worker_streams_from_shards_kept_with_the_data_set(
    client: TestClient, folder: dict[str, Any], api_env: Path
) -> None:
    from ml.data.shards import ShardedDataset
    from ml.data.sources import Dataset

    small = resolve(folder, image={"size": [16, 16]})  # 295 KB in memory: under the budget
    assert isinstance(small, Dataset)
    big = resolve(folder, image={"size": [128, 128]})  # 4.7 MB of features: over it
    assert isinstance(big, ShardedDataset) and big.budget_bytes == 1024**2 and big.shards == 3
    assert big.shard_rows == 8 and len(big.y) == 24 and big.class_names == ["dark", "light"]
    caches = client.get(f"/api/v1/datasets/{folder['id']}").json()["info"]["feature_caches"]
    shards = [c for c in caches if "/shards-" in c]
    names = sorted(c.rsplit("/", 1)[1] for c in shards)
    assert names == ["keys.npy", "labels.npy", "meta.json", "shard-00000.npy", "shard-00001.npy", "shard-00002.npy"]
    assert len(caches) == len(shards) + 1  # and the small set's .npz

    again = resolve(folder, image={"size": [128, 128]})  # read back, not decoded again
    assert np.array_equal(again.gather(np.arange(24)), big.gather(np.arange(24)))
    assert client.get(f"/api/v1/datasets/{folder['id']}").json()["info"]["feature_caches"] == caches

    forced = resolve(folder, image={"size": [16, 16]}, stream=True)
    assert isinstance(forced, ShardedDataset) and forced.shards == 1

    store = api_env / "artifacts"
    assert all((store / key).is_file() for key in shards)
    assert client.delete(f"/api/v1/datasets/{folder['id']}").status_code == 204
    assert not any((store / key).exists() for key in shards)


def test_stream_false_over_the_budget_is_refused_with_the_setting(folder: dict[str, Any]) -> None:
    from ml.errors import DataError

    with pytest.raises(DataError, match=r"data\.stream is false, but .* \(TRAINLAB_WORKER_DATA_MEMORY_MB\)"):
        resolve(folder, image={"size": [128, 128]}, stream=False)


def test_a_decoding_that_fails_midway_leaves_no_shards_behind(
    client: TestClient, folder: dict[str, Any], api_env: Path
) -> None:
    """Shards are listed on the data set's row only once all are stored: a member that fails to
    decode after some were stored must not leave them in the store, unlisted (DELETE would miss them)."""
    from core.artifacts import get_artifact_store
    from core.db import session_scope
    from core.models import Dataset as DatasetRow
    from ml.data.uploads import DatasetError

    with session_scope() as session:
        row = session.get(DatasetRow, folder["id"])
        assert row is not None
        key = row.key
    # The stored archive now ends with a member that does not decode (passed the upload's checks
    # once; a worker reading it later finds it damaged): its 24 images fill three shards first.
    get_artifact_store().put(key, archive(broken=True))
    with pytest.raises(DatasetError, match="zz-broken.png: not a readable"):
        resolve(folder, image={"size": [128, 128]})

    store = api_env / "artifacts"
    assert not [p for p in store.rglob("*") if "shards-" in str(p) and p.is_file()]
    info = client.get(f"/api/v1/datasets/{folder['id']}").json()["info"]
    assert not [c for c in info.get("feature_caches", []) if "/shards-" in c]
    assert client.delete(f"/api/v1/datasets/{folder['id']}").status_code == 204
    assert not [p for p in store.rglob("*") if p.is_file() and p.suffix in (".npy", ".json", ".zip")]

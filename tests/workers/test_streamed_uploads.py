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


def test_workers_with_other_budgets_never_share_shards_and_a_damaged_one_is_decoded_again(
    client: TestClient, folder: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget sizes the shards: a worker with another budget writes (and reads) its own set,
    never another's files under the same keys; a shard that does not match its set's description
    is an error naming it, and the next run decodes the set again."""
    from core.artifacts import get_artifact_store
    from core.settings import get_settings
    from ml.data.uploads import DatasetError

    small = resolve(folder, image={"size": [128, 128]})  # the 1 MB budget: 8 rows a shard
    monkeypatch.setenv("TRAINLAB_WORKER_DATA_MEMORY_MB", "26")
    get_settings.cache_clear()
    large = resolve(folder, image={"size": [128, 128]}, stream=True)  # 26 MB: 16 rows a shard
    assert (small.shard_rows, small.shards, large.shard_rows, large.shards) == (8, 3, 16, 2)
    assert np.array_equal(large.gather(np.arange(24)), small.gather(np.arange(24)))
    caches = client.get(f"/api/v1/datasets/{folder['id']}").json()["info"]["feature_caches"]
    sets = sorted({c.rsplit("/", 1)[0] for c in caches if "/shards-" in c})
    assert len(sets) == 2 and all(c.rsplit("/", 1)[0] in sets for c in caches if "/shards-" in c)

    # The 26 MB set's first shard replaced by the 1 MB set's (same width, 8 rows instead of 16).
    store = get_artifact_store()
    first = next(c for c in caches if c.endswith("/shard-00000.npy") and c.rsplit("/", 1)[0] != sets[0])
    other = next(c for c in caches if c.endswith("/shard-00000.npy") and c != first)
    store.put(first, store.get(other))
    damaged = resolve(folder, image={"size": [128, 128]}, stream=True)
    with pytest.raises(DatasetError, match=r"shard-00000\.npy .* \(8, 49152\) float32 values, not 16 rows of 49152"):
        damaged.gather(np.arange(24))
    again = resolve(folder, image={"size": [128, 128]}, stream=True)  # decoded again
    assert again.shard_rows == 16 and np.array_equal(again.gather(np.arange(24)), small.gather(np.arange(24)))

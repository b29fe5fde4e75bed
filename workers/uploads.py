"""What a run may read from the server: uploaded data sets (`resolve_upload` of `ml.run`) and
another experiment's trained weights (`RunContext.load_weights`, for transfer learning)."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.artifacts import ArtifactStore, delete_files
from core.db import session_scope
from core.models import Dataset as DatasetRow
from core.references import resolve_dataset, resolve_experiment
from core.settings import get_settings
from ml.data.shards import ShardedDataset
from ml.data.sources import Dataset
from ml.data.uploads import load_upload
from ml.errors import DataError


class UploadResolver:
    """`dataset/<id>` -> an `ml.data.sources.Dataset`, read from the database and the artifact store, if
    the run's owner uploaded it."""

    def __init__(self, store: ArtifactStore, owner_id: int | None) -> None:
        self.store, self.owner_id = store, owner_id

    def __call__(self, dataset_id: str, data_spec: Any) -> Dataset | ShardedDataset:
        with session_scope() as session:
            row = resolve_dataset(session, self.owner_id, dataset_id) if self.owner_id is not None else None
            if row is None:
                raise DataError(f"data set {dataset_id} not found")
            key, fmt = row.key, row.format
            target, one_hot = upload_defaults(row.info or {}, data_spec)
            info = dict(row.info or {})
        if fmt == "folder":
            return self._folder(int(dataset_id), key, info, data_spec)
        table = load_upload(self.store.get(key), fmt, target, one_hot)  # DataError if unusable
        return Dataset(
            X=table.X,
            y=table.y,
            task=table.task,
            feature_names=table.feature_names,
            class_names=table.class_names,
            image_shape=table.image_shape,
        )

    def _folder(self, dataset_id: int, key: str, info: dict[str, Any], data_spec: Any) -> Dataset | ShardedDataset:
        """A folder archive's decoded features, from the cache beside it when they were built
        with the same settings before, else decoded now (once per data set and settings).

        When a run in memory would need more than the worker's data memory budget
        (`TRAINLAB_WORKER_DATA_MEMORY_MB`; or the spec says `data.stream: true`), the features
        are decoded into shards instead, and the run streams them."""
        from ml.data.perceptual import dataset_from_npz, dataset_to_npz, feature_key, load_folder_dataset
        from ml.data.shards import in_memory_bytes, should_stream
        from ml.data.uploads import DatasetError
        from ml.spec import AudioSpec, ImageSpec

        kind = info.get("kind", "audio")
        settings = (data_spec.audio or AudioSpec()) if kind == "audio" else (data_spec.image or ImageSpec())
        budget = get_settings().data_memory_budget_bytes()
        shortest = (info.get("audio") or {}).get("seconds", {}).get("min")
        needed = in_memory_bytes(kind, settings, int(info.get("files") or 0), shortest)
        if should_stream(getattr(data_spec, "stream", "auto"), needed, budget):
            return self._sharded(dataset_id, key, kind, settings, budget)
        # Beside the archive; the data set's row lists it, so deleting the data set deletes it too.
        cache = f"{key.rsplit('/', 1)[0]}/features-{feature_key(kind, settings)}.npz"
        if self.store.exists(cache):
            try:
                return dataset_from_npz(self.store.get(cache))
            except (DatasetError, ValueError, KeyError, OSError):
                pass  # a damaged or outdated cache: decode again below
        with self.store.local_path(key) as path:
            data = load_folder_dataset(
                path,
                kind,
                audio=settings if isinstance(settings, AudioSpec) else None,
                image=settings if isinstance(settings, ImageSpec) else None,
            )
        self.store.put(cache, dataset_to_npz(data))
        self._record_caches(dataset_id, [cache])
        return data

    def _sharded(self, dataset_id: int, key: str, kind: str, settings: Any, budget: int) -> ShardedDataset:
        """The archive's features as shards beside it (``shards-<key>-<budget>/shard-00000.npy``...):
        read back when written before with the same settings and budget, else decoded now member by
        member, each shard stored as soon as it is full (never the whole feature array in memory).

        The budget sizes the shards, so it is part of their keys: two workers with different budgets
        decoding the same data set at once write shards of different sizes, never to the same files.
        A shard found not to match the set's description discards the set (its ``meta.json``): the
        next run decodes it again."""
        from ml.data.perceptual import feature_key
        from ml.data.shards import META, SHARD_VERSION, open_shards, write_shards
        from ml.data.uploads import DatasetError
        from ml.spec import AudioSpec, ImageSpec

        prefix = f"{key.rsplit('/', 1)[0]}/shards-{feature_key(kind, settings)}-v{SHARD_VERSION}-b{budget}"
        read = self._shard_reader(prefix)

        def discard() -> None:
            with contextlib.suppress(Exception):  # the run fails with the shard's error either way
                self.store.delete(f"{prefix}/{META}")

        if self.store.exists(f"{prefix}/{META}"):  # written last: the set is complete
            try:
                return open_shards(json.loads(self.store.get(f"{prefix}/{META}")), read, budget, discard)
            except (DatasetError, ValueError, KeyError, OSError):
                pass  # a damaged or outdated set: decode again below
        stored: list[str] = []

        def keep(file: Path) -> None:
            stored.append(f"{prefix}/{file.name}")  # before the copy: a copy that fails may leave a part
            self.store.put_file(f"{prefix}/{file.name}", file)
            file.unlink()  # the local copy: at most one shard on the worker's disk

        try:
            with self.store.local_path(key) as path, tempfile.TemporaryDirectory(prefix="trainlab-shards-") as tmp:
                meta = write_shards(
                    path,
                    kind,
                    tmp,
                    audio=settings if isinstance(settings, AudioSpec) else None,
                    image=settings if isinstance(settings, ImageSpec) else None,
                    budget_bytes=budget,
                    on_file=keep,
                )
            self._record_caches(dataset_id, stored)
        except BaseException:
            # The files are listed on the data set's row only once all are stored: a decoding that
            # fails midway (a bad member, a cancelled run) deletes what it stored, or deleting the
            # data set would leave them behind.
            with contextlib.suppress(Exception):  # the failure is what the run reports
                delete_files(self.store, stored)
            raise
        return open_shards(meta, read, budget, discard)

    def _shard_reader(self, prefix: str) -> Callable[[str], np.ndarray]:
        def read(name: str) -> np.ndarray:
            with self.store.local_path(f"{prefix}/{name}") as path:  # S3: a temporary download
                return np.load(path, allow_pickle=False)

        return read

    def _record_caches(self, dataset_id: int, keys: list[str]) -> None:
        """List decoded-feature files on the data set's row: deleting the data set deletes them."""
        with session_scope() as session:
            # Locked: two runs with other settings may record their caches at the same moment.
            row = session.get(DatasetRow, dataset_id, with_for_update=True)
            if row is not None:
                caches = sorted({*(row.info or {}).get("feature_caches", []), *keys})
                row.info = {**(row.info or {}), "feature_caches": caches}
                session.commit()


def upload_defaults(info: dict[str, Any], data_spec: Any) -> tuple[str | None, bool]:
    """The target and one-hot choice a run reads an upload with: the spec's target, else the
    `--target` given at upload; one-hot encoding when the spec asks for it or the upload has
    categorical feature columns (the stored spec holds `one_hot: false` by default, so a default
    cannot be told from a choice: a categorical column is always encoded rather than refused)."""
    target = data_spec.target or info.get("target")
    categorical = [c for c in info.get("categorical") or [] if c != target]
    return target, bool(data_spec.one_hot) or bool(categorical)


class WeightsLoader:
    """`from_experiment` (an id or a name) -> that experiment's `model.pt`, if it is one of the
    run's owner's succeeded experiments (admins too start only from their own)."""

    def __init__(self, store: ArtifactStore, owner_id: int | None) -> None:
        self.store, self.owner_id = store, owner_id

    def __call__(self, reference: str) -> bytes | None:
        with session_scope() as session:
            source = None
            if self.owner_id is not None:
                source = resolve_experiment(session, self.owner_id, str(reference), succeeded=True)
            if source is None:
                raise DataError(f"no succeeded experiment {reference!r} of yours to start from")
            source_id = source.id
        key = self.store.key_for(source_id, "model.pt")
        return self.store.get(key) if self.store.exists(key) else None

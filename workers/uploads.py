"""What a run may read from the server: uploaded data sets (`resolve_upload` of `ml.run`) and
another experiment's trained weights (`RunContext.load_weights`, for transfer learning)."""

from __future__ import annotations

from typing import Any

from core.artifacts import ArtifactStore
from core.db import session_scope
from core.references import resolve_dataset, resolve_experiment
from ml.data.sources import Dataset
from ml.data.uploads import load_upload
from ml.errors import DataError


class UploadResolver:
    """`dataset/<id>` -> an `ml.data.sources.Dataset`, read from the database and the artifact store, if
    the run's owner uploaded it."""

    def __init__(self, store: ArtifactStore, owner_id: int | None) -> None:
        self.store, self.owner_id = store, owner_id

    def __call__(self, dataset_id: str, data_spec: Any) -> Dataset:
        with session_scope() as session:
            row = resolve_dataset(session, self.owner_id, dataset_id) if self.owner_id is not None else None
            if row is None:
                raise DataError(f"data set {dataset_id} not found")
            key, fmt = row.key, row.format
            target, one_hot = upload_defaults(row.info or {}, data_spec)
        table = load_upload(self.store.get(key), fmt, target, one_hot)  # DataError if unusable
        return Dataset(
            X=table.X,
            y=table.y,
            task=table.task,
            feature_names=table.feature_names,
            class_names=table.class_names,
            image_shape=table.image_shape,
        )


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

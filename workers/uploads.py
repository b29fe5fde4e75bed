"""Loads uploaded data sets for `ml` (the `resolve_upload` callable of `ml.run`)."""

from __future__ import annotations

from typing import Any

from core.artifacts import ArtifactStore
from core.datasets import DatasetError, load_upload
from core.db import session_scope
from core.repositories import DatasetRepository
from ml.data import Dataset
from ml.errors import DataError


class UploadResolver:
    """`dataset/<id>` -> an `ml.data.Dataset`, read from the database and the artifact store."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def __call__(self, dataset_id: str, data_spec: Any) -> Dataset:
        with session_scope() as session:
            row = DatasetRepository(session).get(int(dataset_id))
            if row is None:
                raise DataError(f"data set {dataset_id} no longer exists")
            key, fmt = row.key, row.format
        try:
            table = load_upload(self.store.get(key), fmt, data_spec.target, data_spec.one_hot)
        except DatasetError as exc:
            raise DataError(str(exc)) from exc
        return Dataset(
            X=table.X,
            y=table.y,
            task=table.task,
            feature_names=table.feature_names,
            class_names=table.class_names,
            image_shape=table.image_shape,
        )

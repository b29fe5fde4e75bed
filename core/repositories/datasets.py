"""Uploaded data sets."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Dataset, Experiment, User


class DatasetRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, dataset: Dataset) -> Dataset:
        self.session.add(dataset)
        self.session.flush()
        return dataset

    def visible(self, dataset_id: int, user: User) -> Dataset | None:
        dataset = self.session.get(Dataset, dataset_id)
        if dataset is None or not (user.is_admin or dataset.owner_id == user.id):
            return None
        return dataset

    def owned(self, dataset_id: int, owner_id: int) -> Dataset | None:
        """The data set if `owner_id` uploaded it (a spec's reference acts as its submitter)."""
        dataset = self.session.get(Dataset, dataset_id)
        return dataset if dataset is not None and dataset.owner_id == owner_id else None

    def list(self, owner_id: int | None) -> Sequence[Dataset]:
        query = select(Dataset).order_by(Dataset.id.desc())
        if owner_id is not None:
            query = query.where(Dataset.owner_id == owner_id)
        return self.session.scalars(query).all()

    def in_use(self, dataset_id: int) -> int:
        """How many experiments use the data set."""
        return self.session.scalar(select(func.count()).where(Experiment.dataset_id == dataset_id)) or 0

    def delete(self, dataset: Dataset) -> None:
        self.session.delete(dataset)
        self.session.flush()

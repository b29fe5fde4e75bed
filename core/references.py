"""The one place a spec's references to other objects are resolved, for the user who submitted
it: at submission (the API) and again when a worker runs it. A data set is usable only by its
uploader and an experiment's weights only by its owner; admins act as themselves here. The
answers do not tell "not yours" from "does not exist", so ids cannot be probed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sqlalchemy.orm import Session

from core.models import Dataset, Experiment
from core.repositories import MAX_ROW_ID, DatasetRepository, ExperimentRepository


class NamedReference(Protocol):
    """What `ml.spec.references.Reference` carries (core does not import ml)."""

    @property
    def kind(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def path(self) -> str: ...


def resolve_dataset(session: Session, owner_id: int, dataset_id: int | str) -> Dataset | None:
    """The owner's uploaded data set with this id, or None (missing and not-yours alike)."""
    text = str(dataset_id)
    if not text.isdigit() or not 0 < int(text) <= MAX_ROW_ID:
        return None
    return DatasetRepository(session).owned(int(text), owner_id)


def resolve_experiment(session: Session, owner_id: int, reference: str, *, succeeded: bool) -> Experiment | None:
    """The owner's experiment by id or name (newest of that name), or None."""
    return ExperimentRepository(session).owned_by_reference(str(reference), owner_id, succeeded=succeeded)


def unresolved(session: Session, owner_id: int, references: Iterable[NamedReference]) -> list[tuple[str, str]]:
    """(path, message) for each reference the owner cannot use. An experiment named for
    transfer learning need only exist here: it may still be running when its successor is
    submitted; the worker loads its weights only once it has succeeded."""
    problems = []
    for ref in references:
        if ref.kind == "dataset" and resolve_dataset(session, owner_id, ref.value) is None:
            problems.append((ref.path, f"data set {ref.value} not found"))
        elif ref.kind == "experiment" and resolve_experiment(session, owner_id, ref.value, succeeded=False) is None:
            problems.append((ref.path, f"no experiment {ref.value!r} of yours"))
    return problems

"""Dependencies as Annotated aliases, so a route signature reads like a sentence."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException
from sqlalchemy.orm import Session

from core.db import get_sessionmaker
from core.models import Experiment
from core.repositories import ExperimentRepository


def get_session() -> Iterator[Session]:
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def get_experiment(experiment_id: int, session: SessionDep) -> Experiment:
    experiment = ExperimentRepository(session).get(experiment_id)
    if experiment is None:
        raise HTTPException(status_code=404, detail=f"experiment {experiment_id} not found")
    return experiment


ExperimentDep = Annotated[Experiment, Depends(get_experiment)]

"""Health, the published spec schema, and who a token belongs to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.deps import CurrentUser, SessionDep
from api.schemas import Health, UserRead, WorkersHealth, errors
from core.celery_app import get_celery_app
from core.models import utcnow
from core.operations import WorkerRepository, worker_timeout
from ml.spec import spec_json_schema

router = APIRouter(tags=["system"])


def _broker_state() -> str:
    try:
        with get_celery_app().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "A dependency is down"}})
def health(session: SessionDep, response: Response) -> Health:
    """The state of the database and the broker (503 when one is down)."""
    try:
        session.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:
        database = f"unreachable: {type(exc).__name__}"
    broker = _broker_state()
    workers = _workers(session) if database == "ok" else None
    problems = [f"database {database}"] if database != "ok" else []
    problems += [f"broker {broker}"] if broker != "ok" else []
    if workers is not None and workers.alive == 0:
        problems.append("no worker alive: submitted experiments wait in the queue until one starts")
    response.status_code = 200 if database == broker == "ok" else 503
    return Health(
        status="degraded" if problems else "ok", database=database, broker=broker, workers=workers, problems=problems
    )


def _workers(session: Session) -> WorkersHealth:
    repo = WorkerRepository(session)
    alive = repo.seen_since(utcnow() - worker_timeout())
    return WorkersHealth(alive=len(alive), names=[w.name for w in alive], last_seen=repo.last_seen())


@router.get("/spec/schema", responses=errors(401))
def spec_schema(user: CurrentUser) -> dict[str, Any]:
    """The JSON Schema of experiment specs, for clients that validate before submitting."""
    return spec_json_schema()


@router.get("/me", response_model=UserRead, responses=errors(401))
def me(user: CurrentUser) -> UserRead:
    """The user the token belongs to: name and whether an admin (the dashboard's "signed in as")."""
    return UserRead.model_validate(user)

"""Health and the published spec schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import text

from api.deps import CurrentUser, SessionDep
from api.schemas import Health, errors
from core.celery_app import get_celery_app
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
    ok = database == "ok" and broker == "ok"
    response.status_code = 200 if ok else 503
    return Health(status="ok" if ok else "degraded", database=database, broker=broker)


@router.get("/spec/schema", responses=errors(401))
def spec_schema(user: CurrentUser) -> dict[str, Any]:
    """The JSON Schema of experiment specs, for clients that validate before submitting."""
    return spec_json_schema()

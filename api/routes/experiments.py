"""Experiment routes: submit, list, read, metrics, artifacts, cancel."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

from api.deps import ExperimentDep, SessionDep
from api.schemas import ArtifactRead, ExperimentList, ExperimentRead, MetricRead
from api.spec_body import read_document, validate_spec
from core.artifacts import LocalArtifactStore
from core.celery_app import send_run_experiment
from core.models import FINAL_STATUSES, Status
from core.repositories import ArtifactRepository, ExperimentRepository, MetricRepository
from core.settings import get_settings
from ml.spec import experiment_kind

log = logging.getLogger(__name__)
router = APIRouter(prefix="/experiments", tags=["experiments"])

SPEC_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ExperimentSpecDocument"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


@router.post("", status_code=201, response_model=ExperimentRead, openapi_extra=SPEC_BODY)
async def create_experiment(request: Request, session: SessionDep) -> ExperimentRead:
    """Validate a spec (JSON or YAML), store it and queue it."""
    document = read_document(await request.body(), request.headers.get("content-type", ""))
    spec = validate_spec(document)
    repo = ExperimentRepository(session)
    experiment = repo.create(name=spec.name, kind=experiment_kind(spec), spec=spec.model_dump(mode="json"))
    session.commit()
    try:
        send_run_experiment(experiment.id)
    except Exception:  # the row is queued; the reconciler re-dispatches what the broker lost
        log.exception("could not queue experiment %s", experiment.id)
    return ExperimentRead.of(experiment)


@router.get("", response_model=ExperimentList)
def list_experiments(
    session: SessionDep,
    status: Annotated[Status | None, Query()] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    parent_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ExperimentList:
    """List experiments, newest first; filter by status, kind, name or parent."""
    rows, total = ExperimentRepository(session).list(
        status=status, kind=kind, name=name, parent_id=parent_id, limit=limit, offset=offset
    )
    return ExperimentList(items=list(rows), total=total, limit=limit, offset=offset)  # type: ignore[arg-type]


@router.get("/{experiment_id}", response_model=ExperimentRead)
def get_experiment(experiment: ExperimentDep) -> ExperimentRead:
    """Status, spec, summary, diagnosis, error, timings and children of one experiment."""
    return ExperimentRead.of(experiment)


@router.get("/{experiment_id}/metrics", response_model=list[MetricRead])
def get_metrics(
    experiment: ExperimentDep,
    session: SessionDep,
    split: Annotated[str | None, Query(max_length=32)] = None,
    name: Annotated[str | None, Query(max_length=64)] = None,
) -> list[MetricRead]:
    """The per-epoch series: [{step, split, name, value}]."""
    rows = MetricRepository(session).series(experiment.id, split=split, name=name)
    return [MetricRead.model_validate(r) for r in rows]


@router.post("/{experiment_id}/cancel", response_model=ExperimentRead)
def cancel_experiment(experiment: ExperimentDep, session: SessionDep) -> ExperimentRead:
    """Queued: cancelled now. Running: stops at its next check. Children are cancelled too."""
    repo = ExperimentRepository(session)
    repo.request_cancel(experiment)
    for child in experiment.children:
        repo.request_cancel(child)
    if experiment.children and all(c.status in FINAL_STATUSES for c in experiment.children):
        # a fan-out parent whose children were all still queued: nothing will run again
        repo.finish(experiment.id, Status.cancelled, error="cancelled", reason="cancelled")
    session.commit()
    session.refresh(experiment)
    return ExperimentRead.of(experiment)


@router.get("/{experiment_id}/artifacts", response_model=list[ArtifactRead])
def list_artifacts(experiment: ExperimentDep, session: SessionDep, request: Request) -> list[ArtifactRead]:
    """Files the run produced (plots, predictions, weights)."""
    base = str(request.url).rstrip("/")
    return [
        ArtifactRead(
            name=a.name, size=a.size, content_type=a.content_type, created_at=a.created_at, url=f"{base}/{a.name}"
        )
        for a in ArtifactRepository(session).list(experiment.id)
    ]


@router.get("/{experiment_id}/artifacts/{name}")
def download_artifact(experiment: ExperimentDep, name: str, session: SessionDep) -> Response:
    """Download one artifact."""
    artifact = ArtifactRepository(session).get(experiment.id, name)
    store = LocalArtifactStore(get_settings().resolved_artifact_dir)
    if artifact is None or not store.exists(artifact.key):
        raise HTTPException(404, detail=f"experiment {experiment.id} has no artifact {name!r}")
    return Response(
        content=store.get(artifact.key),
        media_type=artifact.content_type,
        headers={"Content-Disposition": f'attachment; filename="{artifact.name}"'},
    )

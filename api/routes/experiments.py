"""Experiment routes: submit, list, read, metrics, artifacts, cancel."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.deps import MAX_ID, CurrentUser, ExperimentDep, SessionDep
from api.limits import AttemptWindow, read_limited
from api.run_table import latest_metrics, spec_parameters, summary_metrics
from api.schemas import (
    ArtifactRead,
    ExperimentBrief,
    ExperimentList,
    ExperimentRead,
    ExperimentRow,
    LatestMetrics,
    MetricHistory,
    MetricRead,
    errors,
)
from api.series import MAX_POINTS, columns, downsample, json_response
from api.spec_body import read_document, validate_spec
from core.artifacts import delete_files, get_artifact_store
from core.celery_app import send_run_experiment
from core.models import FINAL_STATUSES, Experiment, Status, User, utcnow
from core.operations import WorkerRepository
from core.references import unresolved
from core.repositories import (
    ArtifactRepository,
    ExperimentRepository,
    MetricRepository,
    RunRepository,
    UserRepository,
)
from core.resources import queue_for, unservable_reason
from core.settings import get_settings
from ml.spec import experiment_kind
from ml.spec.references import SpecReferences, spec_references

log = logging.getLogger(__name__)
router = APIRouter(prefix="/experiments", tags=["experiments"], responses=errors(401, 404, 413, 422))

SPEC_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ExperimentSpecDocument"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=ExperimentRead,
    openapi_extra=SPEC_BODY,
    responses={
        200: {
            "model": ExperimentRead,
            "description": "The experiment an earlier request with the same Idempotency-Key created",
        },
        **errors(400, 403, 415, 429),
    },
)
async def create_experiment(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> ExperimentRead:
    """Validate a spec (JSON or YAML), store it and queue it. A repeated Idempotency-Key returns
    the experiment the first request created (200) instead of a second one."""
    settings = get_settings()
    raw = await read_limited(request, settings.max_spec_bytes)
    content_type = request.headers.get("content-type", "")
    # Parsing, validation and the database are blocking work: off the event loop, so one costly
    # spec never stalls the other users' requests.
    return await run_in_threadpool(_create, request, session, user, response, raw, content_type, idempotency_key)


def _create(
    request: Request,
    session: Session,
    user: User,
    response: Response,
    raw: bytes,
    content_type: str,
    idempotency_key: str | None,
) -> ExperimentRead:
    repo = ExperimentRepository(session)
    if idempotency_key and (earlier := repo.by_idempotency_key(user.id, idempotency_key)):
        response.status_code = 200
        return ExperimentRead.of(earlier)
    _check_rate(request, repo, user)  # charged before parsing: refused specs count too
    spec = validate_spec(read_document(raw, content_type))
    found = spec_references(spec)
    _check_references(session, user, found)
    _check_allowances(repo, user, spec)
    datasets = found.datasets()
    try:
        experiment = repo.create(
            name=spec.name,
            kind=experiment_kind(spec),
            spec=spec.model_dump(mode="json"),
            owner_id=user.id,
            priority=spec.priority,
            idempotency_key=idempotency_key,
            dataset_id=datasets[0] if datasets else None,
        )
        session.commit()
    except IntegrityError:  # the same key raced in from a retry: return the first one
        session.rollback()
        earlier = repo.by_idempotency_key(user.id, idempotency_key or "")
        if earlier is None:
            raise
        response.status_code = 200
        return ExperimentRead.of(earlier)
    dispatch(session, experiment)
    return ExperimentRead.of(experiment, warning=routing_warning(session, experiment))


def routing_warning(session: Session, experiment: Experiment) -> str | None:
    """For a queued experiment: why no live worker can run it (its resources), or None."""
    if experiment.status != Status.queued:
        return None
    return unservable_reason(experiment.spec, WorkerRepository(session).live_queues())


def dispatch(session: Session, experiment: Experiment) -> None:
    """Send "run experiment N"; if the broker is down the row stays queued for the reconciler."""
    try:
        send_run_experiment(experiment.id, experiment.priority, queue_for(experiment.spec))
        ExperimentRepository(session).mark_dispatched(experiment.id)
        session.commit()
    except Exception:
        session.rollback()
        log.exception("could not queue experiment %s", experiment.id)


def _check_rate(request: Request, repo: ExperimentRepository, user: User) -> None:
    """At most N submission attempts a minute per user (this process counts refused ones too;
    the database counts stored ones across API processes)."""
    limit = get_settings().submit_rate_per_minute
    attempts: AttemptWindow = request.app.state.submissions
    if not attempts.allow(user.id, limit) or repo.submitted_since(user.id, utcnow() - timedelta(minutes=1)) >= limit:
        raise HTTPException(
            429,
            detail=f"rate limit: at most {limit} submissions per minute per user",
            headers={"Retry-After": "60"},
        )


def _check_references(session: Session, user: User, found: SpecReferences) -> None:
    """Every object the spec names, anywhere in its tree, must be the submitter's (422 naming
    the path); fields only the server sets are refused."""
    problems = [(path, f"{path} is set by the server only; leave it out") for path in found.server_only]
    problems += unresolved(session, user.id, found.references)
    if problems:
        raise HTTPException(
            422,
            detail=[
                {"loc": ["body", *path.replace("[", ".").rstrip("]").split(".")], "msg": msg, "type": "value_error"}
                for path, msg in problems
            ],
        )


def _check_allowances(repo: ExperimentRepository, user: User, spec: object) -> None:
    """What a user may ask of a shared server: a priority above normal, and how many
    experiments they have waiting or running."""
    settings = get_settings()
    allowed = {n.strip() for n in settings.high_priority_users.split(",") if n.strip()}
    if getattr(spec, "priority", "normal") == "high" and not (user.is_admin or user.name in allowed):
        raise HTTPException(403, detail="priority high is reserved for admins and the users they allow it")
    limit = settings.max_queued_per_user
    if limit and repo.active_top_level(user.id) >= limit:
        raise HTTPException(
            429,
            detail=f"you already have {limit} experiments queued or running (the per-user limit); wait for some to end",
            headers={"Retry-After": "60"},
        )


@router.get("", response_model=ExperimentList)
def list_experiments(
    session: SessionDep,
    user: CurrentUser,
    status: Annotated[Status | None, Query()] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    parent_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    top_level: Annotated[bool, Query(description="Only experiments that are no fan-out's child.")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> ExperimentList:
    """List experiments, newest first; filter by status, kind, name, parent or top level. Each
    item has its owner, main metrics and spec parameters (the dashboard's run table)."""
    rows, total = ExperimentRepository(session).list(
        status=status,
        kind=kind,
        name=name,
        parent_id=parent_id,
        top_level=top_level,
        owner_id=None if user.is_admin else user.id,
        limit=limit,
        offset=offset,
    )
    return ExperimentList(items=run_table_rows(session, rows), total=total, limit=limit, offset=offset)


def run_table_rows(session: Session, experiments: Sequence[Experiment]) -> list[ExperimentRow]:
    """The list's items: a query for the owners' names and one for the last logged step of the
    runs whose summary has no metrics yet (running ones), whatever the page's length."""
    metrics = {e.id: summary_metrics(e.summary) for e in experiments}
    latest = MetricRepository(session).latest_of([i for i, found in metrics.items() if not found])
    owners = UserRepository(session).names(e.owner_id for e in experiments if e.owner_id is not None)
    return [
        ExperimentRow(
            **ExperimentBrief.model_validate(e).model_dump(),
            owner=owners.get(e.owner_id) if e.owner_id is not None else None,
            metrics=metrics[e.id] or latest_metrics(latest[e.id][1] if e.id in latest else ()),
            params=spec_parameters(e.spec),
        )
        for e in experiments
    ]


@router.get("/{experiment_id}", response_model=ExperimentRead)
def get_experiment(experiment: ExperimentDep, session: SessionDep) -> ExperimentRead:
    """Status, spec, summary, diagnosis, error, timings, children and latest metrics of one experiment."""
    latest = MetricRepository(session).latest(experiment.id)
    values: dict[str, dict[str, float | None]] = {}
    for split, name, value in latest[1] if latest else ():
        values.setdefault(split, {})[name] = value
    return ExperimentRead.of(
        experiment,
        LatestMetrics(step=latest[0], values=values) if latest else None,
        warning=routing_warning(session, experiment),
    )


SplitQuery = Annotated[str | None, Query(max_length=32, description="Only this split (train, validation...).")]
NameQuery = Annotated[str | None, Query(max_length=64, description="Only this metric (loss, accuracy...).")]
AfterStep = Annotated[
    int | None,
    Query(ge=-MAX_ID, le=MAX_ID, description="Only the steps after this one: poll with the last step you have."),
]


@router.get("/{experiment_id}/metrics", response_model=list[MetricRead])
def get_metrics(
    experiment: ExperimentDep,
    session: SessionDep,
    split: SplitQuery = None,
    name: NameQuery = None,
    after_step: AfterStep = None,
) -> Response:
    """The per-epoch rows: [{step, split, name, value}] (the columnar form is `/metrics/series`)."""
    rows = MetricRepository(session).rows(experiment.id, split=split, name=name, after_step=after_step)
    return json_response([{"step": st, "split": sp, "name": n, "value": v} for st, sp, n, v in rows])


@router.get("/{experiment_id}/metrics/series", response_model=MetricHistory)
def get_metric_series(
    experiment: ExperimentDep,
    session: SessionDep,
    split: SplitQuery = None,
    name: NameQuery = None,
    after_step: AfterStep = None,
    max_points: Annotated[
        int | None,
        Query(
            ge=3,
            le=MAX_POINTS,
            description="Down-sample each series to at most this many points "
            "(min and max per bucket of steps, the last point kept).",
        ),
    ] = None,
) -> Response:
    """Metric histories in columns: {experiment_id, last_step, series: [{split, name, steps, values}]}."""
    rows = MetricRepository(session).rows(experiment.id, split=split, name=name, after_step=after_step)
    series = columns(rows)
    if max_points is not None:
        for item in series:
            item["steps"], item["values"] = downsample(item["steps"], item["values"], max_points)
    last_step = rows[-1][0] if rows else None
    return json_response({"experiment_id": experiment.id, "last_step": last_step, "series": series})


@router.post("/{experiment_id}/cancel", response_model=ExperimentRead)
def cancel_experiment(experiment: ExperimentDep, session: SessionDep) -> ExperimentRead:
    """Queued: cancelled now. Running: stops at its next check (now, if its worker is gone).
    Children are cancelled too."""
    abandoned_before = utcnow() - timedelta(seconds=get_settings().lease_seconds)
    RunRepository(session).cancel_tree(experiment, abandoned_before)
    session.commit()
    return ExperimentRead.of(experiment)


@router.delete("/{experiment_id}", status_code=204, responses=errors(409))
def delete_experiment(experiment: ExperimentDep, session: SessionDep) -> Response:
    """Delete a finished experiment with its children, metrics and artifacts (409 while it runs)."""
    if experiment.status not in FINAL_STATUSES:
        raise HTTPException(409, detail=f"experiment {experiment.id} is {experiment.status}: cancel it first")
    if experiment.parent_id is not None:
        raise HTTPException(409, detail=f"experiment {experiment.id} belongs to {experiment.parent_id}: delete that")
    repo = ExperimentRepository(session)
    keys = ArtifactRepository(session).keys_of(repo.tree_ids(experiment.id))
    repo.delete_tree(experiment.id)
    session.commit()
    delete_files(get_artifact_store(), keys)
    return Response(status_code=204)


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


# Artifacts a browser may show in a tab of its own (plots): raster images, which run no script.
INLINE_TYPES = frozenset({"image/png", "image/jpeg"})


@router.get("/{experiment_id}/artifacts/{name}")
def download_artifact(
    experiment: ExperimentDep,
    name: str,
    session: SessionDep,
    inline: Annotated[
        bool, Query(description="Show a PNG or JPEG plot in the browser instead of saving it (other files: ignored).")
    ] = False,
) -> Response:
    """Download one artifact (or, with `inline`, open a plot full size)."""
    artifact = ArtifactRepository(session).get(experiment.id, name)
    store = get_artifact_store()
    if artifact is None or not store.exists(artifact.key):
        raise HTTPException(404, detail=f"experiment {experiment.id} has no artifact {name!r}")
    disposition = "inline" if inline and artifact.content_type in INLINE_TYPES else "attachment"
    return Response(
        content=store.get(artifact.key),
        media_type=artifact.content_type,
        headers={"Content-Disposition": f'{disposition}; filename="{artifact.name}"'},
    )

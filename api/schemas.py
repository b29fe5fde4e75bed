"""Request and response schemas (separate from the ORM models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.models import ErrorReason, Experiment
from core.repositories import durations
from ml.spec.summary import RunSummary, parse_summary


class ExperimentBrief(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    status: str
    parent_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class Timings(BaseModel):
    queued_seconds: float | None
    run_seconds: float | None


class LatestMetrics(BaseModel):
    """The last step an experiment logged and its values by split and name (what a watcher shows)."""

    step: int
    values: dict[str, dict[str, float | None]]


class ExperimentRead(ExperimentBrief):
    spec: dict[str, Any]
    summary: RunSummary | None = Field(
        description="What the run reported, typed by kind (`ml.spec.summary`): a succeeded run's kind "
        "gives its model (TrainSummary, KFoldSummary, SearchSummary...); a fan-out parent that did not "
        "succeed has its children table (FanoutSummary). Runners may add keys beyond these models."
    )
    error: str | None
    error_reason: ErrorReason | None
    cancel_requested: bool
    attempts: int = Field(description="Runs started (a graceful hand-over to another worker starts one more).")
    losses: int = Field(default=0, description="Runs lost (worker killed, infrastructure failure), up to max_attempts.")
    worker: str | None
    timings: Timings
    children: list[ExperimentBrief]
    latest_metrics: LatestMetrics | None = Field(
        default=None,
        description="The last logged step and its values (GET of one experiment); poll "
        "`/metrics/series?after_step=` for the points since the step you already have.",
    )
    warning: str | None = Field(
        default=None,
        description="Why a queued experiment may wait forever: no live worker serves its resources "
        "(GPUs, cpu_only); it names what it needs and what the live workers offer.",
    )

    @classmethod
    def of(
        cls, experiment: Experiment, latest: LatestMetrics | None = None, warning: str | None = None
    ) -> ExperimentRead:
        brief = ExperimentBrief.model_validate(experiment).model_dump()
        return cls(
            **brief,
            spec=experiment.spec,
            summary=parse_summary(experiment.kind, experiment.status, experiment.summary),
            error=experiment.error,
            error_reason=ErrorReason(experiment.error_reason) if experiment.error_reason else None,
            cancel_requested=experiment.cancel_requested,
            attempts=experiment.attempts,
            losses=experiment.losses,
            worker=experiment.worker,
            timings=Timings(**durations(experiment)),
            children=[ExperimentBrief.model_validate(c) for c in experiment.children],
            latest_metrics=latest,
            warning=warning,
        )


class ExperimentRow(ExperimentBrief):
    """A list item: the record, its owner, and what a run table shows of it."""

    owner: str | None = Field(default=None, description="The name of the user who submitted it.")
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Its main metrics by column (`validation.loss`, `test.accuracy`, `relative_l2_error`...): "
        "a finished run's from its summary, a running one's from its last logged step.",
    )
    params: dict[str, float | int | str | bool] = Field(
        default_factory=dict,
        description="Its spec's set values by dotted path (`train.optimizer.lr`, `model.type`, `model.hidden`).",
    )


class ExperimentList(BaseModel):
    items: list[ExperimentRow]
    total: int
    limit: int
    offset: int


class UserRead(BaseModel):
    """Who the token belongs to."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    is_admin: bool


class MetricRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    step: int
    split: str
    name: str
    value: float


class MetricSeriesRead(BaseModel):
    """One series in columns: `values[i]` was logged at `steps[i]` (steps ascending)."""

    split: str
    name: str
    steps: list[int]
    values: list[float | None]


class MetricHistory(BaseModel):
    """An experiment's metric histories in columns. `last_step` is the newest step in the answer
    (null when it has none): pass it as `after_step` to the next poll to get only what is new."""

    experiment_id: int
    last_step: int | None
    series: list[MetricSeriesRead]


class ArtifactRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    size: int
    content_type: str
    created_at: datetime
    url: str


class WorkersHealth(BaseModel):
    """Workers seen alive: each one's reconciler writes a heartbeat every `reconcile_seconds`."""

    alive: int
    names: list[str]
    last_seen: datetime | None


class Health(BaseModel):
    """`status` is ok, or degraded with the `problems` a lab admin should act on (503 only when
    the database or the broker is down: the API itself then cannot work)."""

    status: str
    database: str
    broker: str
    workers: WorkersHealth | None = None
    problems: list[str] = []


class ErrorDetail(BaseModel):
    """Every 4xx answer: `detail` says what is wrong (a sentence, or a list of {loc, msg, type})."""

    detail: Any


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error codes a route can answer."""
    text = {
        400: "Malformed body or file (the line or column at fault)",
        401: "Missing, unknown or revoked API token",
        403: "Not allowed: a cross-site request, or a priority reserved for others",
        404: "Not found (or not yours)",
        409: "Conflict with stored state",
        413: "Body or upload larger than the limit",
        415: "The body is neither JSON nor YAML",
        422: "Invalid spec or form: the field path and the allowed values",
        429: "Too many submissions (see Retry-After)",
    }
    return {code: {"model": ErrorDetail, "description": text[code]} for code in codes}

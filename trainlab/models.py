"""Typed objects the client returns. Each keeps the server's JSON in `raw`, so fields a newer
server adds are never lost (`--json` prints `raw`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml.spec.summary import Diagnosis, SummaryModel

FINAL_STATUSES = ("succeeded", "failed", "cancelled", "pruned")


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class ExperimentBrief:
    """One row of a list: what an experiment is and where it stands."""

    id: int
    name: str
    kind: str
    status: str
    parent_id: int | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentBrief:
        return cls(**_brief_fields(data), raw=data)

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES


def _brief_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": int(data["id"]),
        "name": data.get("name", ""),
        "kind": data.get("kind", ""),
        "status": data.get("status", ""),
        "parent_id": data.get("parent_id"),
        "created_at": _time(data.get("created_at")),
        "started_at": _time(data.get("started_at")),
        "finished_at": _time(data.get("finished_at")),
    }


@dataclass(frozen=True)
class Timings:
    queued_seconds: float | None = None
    run_seconds: float | None = None


@dataclass(frozen=True)
class Experiment(ExperimentBrief):
    """An experiment in full: its spec, summary (test metrics, diagnosis...), error and children."""

    spec: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_reason: str | None = None
    cancel_requested: bool = False
    attempts: int = 0
    worker: str | None = None
    timings: Timings = field(default_factory=Timings)
    children: list[ExperimentBrief] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        timings = data.get("timings") or {}
        return cls(
            **_brief_fields(data),
            raw=data,
            spec=data.get("spec") or {},
            summary=data.get("summary") or {},
            error=data.get("error"),
            error_reason=data.get("error_reason"),
            cancel_requested=bool(data.get("cancel_requested")),
            attempts=int(data.get("attempts") or 0),
            worker=data.get("worker"),
            timings=Timings(timings.get("queued_seconds"), timings.get("run_seconds")),
            children=[ExperimentBrief.from_dict(c) for c in data.get("children") or []],
        )

    @property
    def latest_step(self) -> int | None:
        """The last step the run logged metrics for (None before any, or from an older server)."""
        latest = self.raw.get("latest_metrics") or {}
        return int(latest["step"]) if "step" in latest else None

    @property
    def latest_metrics(self) -> dict[tuple[str, str], float]:
        """The values logged at `latest_step`, by (split, name)."""
        latest = self.raw.get("latest_metrics") or {}
        return {
            (split, name): float(value)
            for split, named in (latest.get("values") or {}).items()
            for name, value in named.items()
            if value is not None
        }

    @cached_property
    def results(self) -> SummaryModel | None:
        """The summary read through the typed model of its kind (`ml.spec.summary`): a
        `TrainSummary`, `KFoldSummary`, `SearchSummary`...; None while there is none."""
        from ml.spec.summary import parse_summary  # pydantic only; imported when first read

        return parse_summary(self.kind, self.status, self.summary or None)

    @property
    def test_metrics(self) -> dict[str, float]:
        """The final test metrics by name (numbers only)."""
        from ml.spec.summary import Summary

        test = (self.results.test if isinstance(self.results, Summary) else None) or {}
        return {k: float(v) for k, v in test.items() if isinstance(v, int | float) and not isinstance(v, bool)}

    @property
    def validation_metrics(self) -> dict[str, Any]:
        """Validation metrics by name: a number, or for k-fold `{mean, std, n}` over the folds."""
        from pydantic import BaseModel

        from ml.spec.summary import Summary

        validation = self.results.validation if isinstance(self.results, Summary) else None
        return {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in (validation or {}).items()}

    @property
    def diagnosis(self) -> Diagnosis | None:
        """`verdict`, `confidence`, `evidence`, `advice`, `explanation` once the run is evaluated."""
        from ml.spec.summary import Summary

        return self.results.diagnosis if isinstance(self.results, Summary) else None

    @property
    def warnings(self) -> list[str]:
        from ml.spec.summary import Summary

        warnings = self.results.warnings if isinstance(self.results, Summary) else None
        return [str(w) for w in warnings or []]


@dataclass(frozen=True)
class Metric:
    """One value of one per-epoch series."""

    step: int
    split: str
    name: str
    value: float

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "split": self.split, "name": self.name, "value": self.value}


class MetricRows(list[Metric]):
    """The per-epoch rows of an experiment, as a list, with plain-Python views of them."""

    def as_dicts(self) -> list[dict[str, Any]]:
        """`[{step, split, name, value}, ...]` — no pandas needed."""
        return [m.as_dict() for m in self]

    def series(self) -> dict[tuple[str, str], list[tuple[int, float]]]:
        """`{(split, name): [(step, value), ...]}` in step order."""
        out: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for m in sorted(self, key=lambda m: m.step):
            out.setdefault((m.split, m.name), []).append((m.step, m.value))
        return out

    def last(self) -> dict[tuple[str, str], float]:
        """The latest value of every series."""
        return {key: points[-1][1] for key, points in self.series().items()}

    @property
    def last_step(self) -> int:
        return max((m.step for m in self), default=0)


@dataclass(frozen=True)
class Artifact:
    """A file a run produced (plot, predictions, weights)."""

    name: str
    size: int
    content_type: str
    created_at: datetime | None
    url: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Artifact:
        return cls(
            name=data["name"],
            size=int(data.get("size") or 0),
            content_type=data.get("content_type", "application/octet-stream"),
            created_at=_time(data.get("created_at")),
            url=data.get("url", ""),
        )

    def as_dict(self) -> dict[str, Any]:
        created = self.created_at.isoformat() if self.created_at else None
        return {
            "name": self.name,
            "size": self.size,
            "content_type": self.content_type,
            "created_at": created,
            "url": self.url,
        }


@dataclass(frozen=True)
class ExperimentPage:
    """One page of a listing, newest first, with the total count of matching experiments."""

    items: list[ExperimentBrief]
    total: int
    limit: int
    offset: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentPage:
        return cls(
            items=[ExperimentBrief.from_dict(i) for i in data.get("items", [])],
            total=int(data.get("total", 0)),
            limit=int(data.get("limit", 0)),
            offset=int(data.get("offset", 0)),
            raw=data,
        )


@dataclass(frozen=True)
class Dataset:
    """An uploaded dataset; specs use it as `data: {source: dataset/<id>}`."""

    id: int | str
    name: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dataset:
        return cls(id=data.get("id", ""), name=str(data.get("name") or data.get("filename") or ""), raw=data)

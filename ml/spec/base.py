"""Shared pieces of every spec model. Pydantic only: importing this never imports torch."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ml.spec.versions import SPEC_VERSION

# What a data set's target is: class labels (cross-entropy, accuracy...) or numbers (MSE, RMSE...).
Task = Literal["classification", "regression"]

# Bounds that keep one spec from exhausting a shared server (each violation is a 422 naming it).
MAX_EPOCHS = 5000
MAX_WIDTH = 4096
MAX_LAYERS = 32
MAX_BATCH_SIZE = 65536
MAX_SAMPLES = 1_000_000
# A network and a batch of its activations that fit a shared worker: dense weights between hidden
# layers (x4 bytes, x4 with Adam's state: ~1.3 GB) and batch x hidden units (x4 bytes, x3 for
# the pre-activations, activations and their gradients: ~800 MB).
MAX_DENSE_WEIGHTS = 80_000_000
MAX_ACTIVATIONS = 64 * 1024 * 1024
# The most GPUs one experiment may ask for (queues gpu1..gpu16: core.celery_app.MAX_GPU_QUEUE).
MAX_GPUS = 16


def base_with_defaults(value: Any, info: Any) -> Any:
    """A fan-out kind's `base` spec: a train spec unless it says otherwise, named after the
    parent unless it has a name (a `field_validator("base", mode="before")` body)."""
    if isinstance(value, dict):
        value = {"kind": "train", "name": (info.data or {}).get("name") or "base", **value}
    return value


class StrictModel(BaseModel):
    """Base of every spec block: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class ResourcesSpec(StrictModel):
    """What a run needs of a worker: the server routes it to a worker that has it (a Celery queue
    per resource class: ``cpu``, ``gpu1``, ``gpu2``...; no block: any worker)."""

    gpus: int = Field(
        default=0,
        ge=0,
        le=MAX_GPUS,
        description="GPUs the run needs; it goes to a worker with at least that many (0: any worker).",
    )
    cpu_only: bool = Field(
        default=False,
        description="Run on a worker that takes CPU-only runs (small runs that should not hold a GPU); "
        "the run then trains on the CPU.",
    )

    @model_validator(mode="after")
    def _one_or_the_other(self) -> ResourcesSpec:
        if self.cpu_only and self.gpus:
            raise ValueError(f"cpu_only: true asks for no GPU, but gpus is {self.gpus}; set one of them")
        return self


class ExperimentHeader(StrictModel):
    """Fields every experiment kind carries."""

    spec_version: int = Field(
        default=SPEC_VERSION,
        ge=1,
        le=SPEC_VERSION,
        description="The spec language version it is written in; older ones are upgraded when read.",
    )
    name: str = Field(min_length=1, max_length=200, description="A label for people; not unique.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seeds data, splits and weights.")
    description: str | None = Field(default=None, max_length=5000)
    time_limit_seconds: int | None = Field(
        default=None, ge=1, le=7 * 24 * 3600, description="Wall-clock limit; past it the run fails with reason timeout."
    )
    priority: Literal["low", "normal", "high"] = Field(
        default="normal", description="Queue priority among the waiting experiments (PostgreSQL + Redis set-up)."
    )
    resources: ResourcesSpec | None = Field(
        default=None,
        description="GPUs or CPU only: which workers may run it (a fan-out's children inherit it).",
    )

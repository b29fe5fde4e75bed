"""One Settings class; every value comes from a TRAINLAB_* environment variable."""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service configuration. Defaults give the embedded set-up: SQLite and a filesystem broker
    under one data directory, no server needed."""

    model_config = SettingsConfigDict(env_prefix="TRAINLAB_", extra="ignore")

    data_dir: Path = Field(default=Path(".trainlab"), description="Holds the SQLite file, broker and artifacts.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir.")
    broker_url: str | None = Field(default=None, description="Celery broker; default filesystem:// in data_dir.")
    broker_polling_interval: float = Field(default=0.1, gt=0, description="Filesystem broker poll (s).")
    artifact_dir: Path | None = Field(default=None, description="Default: data_dir/artifacts.")
    artifact_store: str | None = Field(
        default=None, description="s3://bucket/prefix for an S3-compatible bucket, or a directory (shared mount)."
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint (MinIO, ...); default AWS.")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    worker_concurrency: int = Field(default=1, ge=1, description="Experiments one worker runs at once.")
    worker_memory_mb: int = Field(
        default=0, ge=0, description="Data memory of one run process (MemoryError above: the run fails); 0: none."
    )
    worker_data_memory_mb: int | None = Field(
        default=None,
        ge=1,
        description="Memory a run may fill with a data set's decoded features; a folder data set that needs more "
        "is decoded into shards and streamed shard by shard (data.stream: auto). Default: half of "
        "TRAINLAB_WORKER_MEMORY_MB, else half of the machine's memory shared by the worker's processes.",
    )
    worker_queues: str | None = Field(
        default=None,
        description="Comma-separated queues a worker consumes; default: from its GPUs (trainlab and cpu "
        "without GPUs; trainlab, gpu1..gpuN with N GPUs).",
    )
    worker_gpus: str | None = Field(
        default=None,
        description="GPU ids a worker uses (`0,1`; empty: none); default: CUDA_VISIBLE_DEVICES, else "
        "every GPU torch sees.",
    )
    worker_cpu_runs: bool | None = Field(
        default=None, description="Whether a worker takes `resources.cpu_only` runs; default: only without GPUs."
    )
    torch_threads: int | None = Field(default=None, ge=1, description="Default: cores / concurrency.")
    cancel_poll_seconds: float = Field(default=0.5, gt=0, description="How often a run checks for cancel.")
    max_request_bytes: int = Field(default=100 * 1024 * 1024, description="Body size limit (413 above).")
    max_upload_bytes: int = Field(default=100 * 1024 * 1024, description="Data-set upload limit (413 above).")
    max_upload_expanded_bytes: int = Field(
        default=1024**3, ge=1, description="An NPZ upload may inflate to at most this many bytes (413 above)."
    )
    max_upload_ratio: float = Field(
        default=100.0, gt=1, description="Largest inflated/compressed ratio of an NPZ member (zip bombs: ~1000)."
    )
    max_archive_bytes: int = Field(
        default=4 * 1024**3,
        ge=1,
        description="Size limit of a folder data set's .zip/.tar(.gz) archive (413 above); never held in memory.",
    )
    max_archive_files: int = Field(default=100_000, ge=1, description="Sample files one archive may hold (413 above).")
    max_archive_expanded_bytes: int = Field(
        default=20 * 1024**3, ge=1, description="An archive may inflate to at most this many bytes (413 above)."
    )
    max_archive_ratio: float = Field(
        default=100.0, gt=1, description="Largest inflated/compressed ratio of an archive or its members (bombs)."
    )
    max_spec_bytes: int = Field(default=256 * 1024, ge=1024, description="Size limit of one spec (413 above).")
    submit_rate_per_minute: int = Field(
        default=120, ge=1, description="Submissions per user per minute, refused ones included (429)."
    )
    max_running_per_user: int = Field(
        default=4, ge=0, description="Single runs of one user running at once (others wait); 0: no limit."
    )
    max_queued_per_user: int = Field(
        default=100, ge=0, description="Top-level experiments of one user queued or running at once (429); 0: none."
    )
    high_priority_users: str = Field(
        default="", description="Comma-separated user names allowed priority high (admins always are)."
    )
    default_time_limit_seconds: int = Field(
        default=24 * 3600, ge=0, description="Time limit of a run whose spec sets none (0: none)."
    )
    heartbeat_seconds: float = Field(default=3.0, gt=0, description="How often a running experiment renews its lease.")
    lease_seconds: float = Field(default=20.0, gt=0, description="A run whose lease is older is presumed lost.")
    checkpoint_seconds: float = Field(
        default=0.0, ge=0, description="Minimum seconds between two checkpoints (0: after every epoch)."
    )
    max_attempts: int = Field(default=3, ge=1, description="Runs of one experiment before it fails as worker_lost.")
    reconcile_seconds: float = Field(default=10.0, gt=0, description="How often each worker repairs lost work.")
    redispatch_after_seconds: float = Field(
        default=60.0, gt=0, description="Queued, sent, not started and the queue empty: send again after this."
    )
    worker_max_tasks_per_child: int = Field(
        default=100, ge=1, description="Recycle worker processes (memory); a replacement takes ~5 s to start."
    )
    fanout_window: int = Field(
        default=8, ge=1, description="Children of one fan-out experiment queued at once (fair share of workers)."
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'trainlab.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_folder(self) -> Path:
        return (self.data_dir / "broker").resolve()

    @property
    def resolved_artifact_dir(self) -> Path:
        return (self.artifact_dir or self.data_dir / "artifacts").resolve()

    @property
    def optuna_storage(self) -> str:
        """Where search studies live: the PostgreSQL database itself in the lab set-up; a file
        journal on the embedded default (Optuna advises against SQLite for parallel trials)."""
        url = self.resolved_database_url
        if url.startswith("postgresql"):
            return url
        return f"journal:{(self.data_dir / 'optuna-journal.log').resolve()}"

    def ensure_data_dir(self) -> Path:
        """The data directory, readable by the service's user only (it holds the database, the
        broker's messages and everyone's artifacts)."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(OSError):  # a folder another account owns keeps its mode
            self.data_dir.chmod(0o700)
        return self.data_dir

    def data_memory_budget_bytes(self) -> int:
        """`worker_data_memory_mb` in bytes, or its default (half the run process's memory)."""
        if self.worker_data_memory_mb:
            return self.worker_data_memory_mb * 1024**2
        if self.worker_memory_mb:
            return self.worker_memory_mb * 1024**2 // 2
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return physical // 2 // self.worker_concurrency

    def threads_per_worker_process(self) -> int:
        """Torch threads per worker process, so processes x threads never exceeds the cores."""
        if self.torch_threads:
            return self.torch_threads
        return max(1, (os.cpu_count() or 1) // self.worker_concurrency)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()

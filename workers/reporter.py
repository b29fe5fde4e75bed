"""The reporter a worker gives to `ml`: metrics, artifacts, checkpoints and the lease go to the
database and the artifact store; cancel, interrupt and time limit are read back."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from core.artifacts import ArtifactStore
from core.db import session_scope
from core.repositories import ArtifactRepository, MetricRepository, RunRepository
from ml.reporter import Reporter

CHECKPOINT = "checkpoint.pt"
# Set when this run process receives SIGTERM (a service manager signals the whole process group,
# not only Celery's main process): the run checkpoints and goes back to the queue, gracefully.
SHUTDOWN = threading.Event()


class LeaseKeeper(threading.Thread):
    """Renews the run's lease every few seconds, whatever the training loop is doing. If the
    lease was taken away (the reconciler presumed this worker dead), `lost` turns True and the
    run stops: the same experiment never trains on two workers at once."""

    def __init__(self, experiment_id: int, worker: str, every: float) -> None:
        super().__init__(name=f"lease-{experiment_id}", daemon=True)
        self.experiment_id, self.worker, self.every = experiment_id, worker, every
        self.lost = False
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            try:
                with session_scope() as session:
                    kept = RunRepository(session).renew_lease(self.experiment_id, self.worker)
                    session.commit()
            except Exception:  # a database hiccup: try again at the next beat
                continue
            if not kept:
                self.lost = True
                return

    def stop(self) -> None:
        self._stop_event.set()


class DatabaseReporter(Reporter):
    """Persists one experiment's progress. Each hook is its own short transaction.

    `stop_reason` says why `should_stop` turned True: cancel, interrupt (graceful worker
    shutdown), timeout or lease_lost.
    """

    def __init__(
        self,
        experiment_id: int,
        store: ArtifactStore,
        poll_seconds: float,
        worker: str | None = None,
        time_limit: float | None = None,
        lease: LeaseKeeper | None = None,
        checkpoint_seconds: float = 0.0,
        resume: bool = False,
    ) -> None:
        self.experiment_id = experiment_id
        # Only a retry of this experiment (the database says it ran before) resumes a checkpoint.
        self.resume = resume
        self.store = store
        self.poll_seconds = poll_seconds
        self.worker = worker
        self.time_limit = time_limit
        self.lease = lease
        self.started = time.monotonic()
        self.stop_reason: str | None = None
        self._next_poll = 0.0
        self.checkpoint_seconds = checkpoint_seconds
        self._last_checkpoint = -float("inf")

    def _read_flags(self, repo: RunRepository) -> None:
        cancel, interrupt, holder = repo.flags(self.experiment_id)
        if cancel:
            self.stop_reason = "cancel"
        elif interrupt:
            self.stop_reason = "interrupt"
        elif self.worker is not None and holder != self.worker:
            self.stop_reason = "lease_lost"

    def on_epoch_end(self, step: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        rows = [(step, split, name, value) for split, named in metrics.items() for name, value in named.items()]
        with session_scope() as session:
            MetricRepository(session).add_many(self.experiment_id, rows)
            if self.stop_reason is None:
                self._read_flags(RunRepository(session))
            session.commit()
        self._next_poll = time.monotonic() + self.poll_seconds

    def should_stop(self) -> bool:
        # Called between batches: hit the database at most once per poll interval.
        now = time.monotonic()
        if self.stop_reason is None and SHUTDOWN.is_set():  # this process got SIGTERM: hand over
            self.stop_reason = "interrupt"
        if self.stop_reason is None and self.time_limit is not None and now - self.started > self.time_limit:
            self.stop_reason = "timeout"
        if self.stop_reason is None and self.lease is not None and self.lease.lost:
            self.stop_reason = "lease_lost"
        if self.stop_reason is None and now >= self._next_poll:
            self._next_poll = now + self.poll_seconds
            with session_scope() as session:
                self._read_flags(RunRepository(session))
        return self.stop_reason is not None

    def save_artifact(self, name: str, data: bytes, content_type: str) -> None:
        key = self.store.key_for(self.experiment_id, name)
        self.store.put(key, data)
        with session_scope() as session:
            ArtifactRepository(session).put(self.experiment_id, name, key, len(data), content_type)
            session.commit()

    def checkpoint_due(self) -> bool:
        # Every epoch, unless epochs are shorter than `checkpoint_seconds` (then every so often).
        return time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds

    def save_checkpoint(self, state: bytes) -> None:
        self._last_checkpoint = time.monotonic()
        # Written atomically (temp file + rename): a kill mid-write leaves the previous one.
        self.save_artifact(CHECKPOINT, state, "application/octet-stream")

    def load_checkpoint(self) -> bytes | None:
        if not self.resume:
            return None
        key = self.store.key_for(self.experiment_id, CHECKPOINT)
        return self.store.get(key) if self.store.exists(key) else None

"""The reporter a worker gives to `ml`: metrics, artifacts and heartbeats go to the database;
cancellation is read from it."""

from __future__ import annotations

import time
from collections.abc import Mapping

from core.artifacts import LocalArtifactStore
from core.db import session_scope
from core.repositories import ArtifactRepository, ExperimentRepository, MetricRepository
from ml.reporter import Reporter


class DatabaseReporter(Reporter):
    """Persists one experiment's progress. Each hook is its own short transaction."""

    def __init__(self, experiment_id: int, store: LocalArtifactStore, poll_seconds: float) -> None:
        self.experiment_id = experiment_id
        self.store = store
        self.poll_seconds = poll_seconds
        self._next_poll = 0.0
        self._stop = False

    def on_epoch_end(self, step: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        rows = [(step, split, name, value) for split, named in metrics.items() for name, value in named.items()]
        with session_scope() as session:
            MetricRepository(session).add_many(self.experiment_id, rows)
            repo = ExperimentRepository(session)
            repo.heartbeat(self.experiment_id)
            self._stop = self._stop or repo.cancel_requested(self.experiment_id)
            session.commit()
        self._next_poll = time.monotonic() + self.poll_seconds

    def should_stop(self) -> bool:
        # Called between batches: hit the database at most once per poll interval.
        now = time.monotonic()
        if not self._stop and now >= self._next_poll:
            self._next_poll = now + self.poll_seconds
            with session_scope() as session:
                self._stop = ExperimentRepository(session).cancel_requested(self.experiment_id)
        return self._stop

    def save_artifact(self, name: str, data: bytes, content_type: str) -> None:
        key = self.store.key_for(self.experiment_id, name)
        self.store.put(key, data)
        with session_scope() as session:
            ArtifactRepository(session).put(self.experiment_id, name, key, len(data), content_type)
            session.commit()

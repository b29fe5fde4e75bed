"""Backup and restore, and artifacts that belong to one database: a backup of the embedded
server restores onto PostgreSQL; a new database sharing the artifact store never reads the old
one's checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from tests.conftest import make_user, reset_caches
from tests.services import throwaway_postgres


def point_at(monkeypatch: pytest.MonkeyPatch, data_dir: Path, database_url: str, store: Path) -> None:
    from core.migrate import upgrade_database

    data_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("TRAINLAB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TRAINLAB_DATABASE_URL", database_url)
    monkeypatch.setenv("TRAINLAB_ARTIFACT_DIR", str(store))
    monkeypatch.delenv("TRAINLAB_BROKER_URL", raising=False)
    reset_caches()
    upgrade_database(database_url)


def a_finished_run() -> tuple[int, str]:
    """An experiment with metrics, a checkpoint and a prediction file, written as a worker does."""
    from core.artifacts import get_artifact_store
    from core.db import session_scope
    from core.models import Status, User
    from core.repositories import ArtifactRepository, ExperimentRepository, MetricRepository, RunRepository

    store = get_artifact_store()
    with session_scope() as session:
        repo, runs = ExperimentRepository(session), RunRepository(session)
        owner = session.query(User).filter_by(name="ada").one()
        row = repo.create(name="kept", kind="train", spec={"name": "kept"}, owner_id=owner.id)
        session.flush()
        assert runs.claim(row.id, "w")
        for name, data in (("checkpoint.pt", b"weights after epoch 3"), ("predictions.csv", b"y,p\n1,0.9\n")):
            key = store.key_for(row.id, name)
            store.put(key, data)
            ArtifactRepository(session).put(row.id, name, key, len(data), "application/octet-stream")
        MetricRepository(session).add_many(row.id, [(s, "train", "loss", 1.0 / s) for s in range(1, 4)])
        assert runs.finish(row.id, Status.succeeded, summary={"test": {"accuracy": 0.9}})
        session.commit()
        return row.id, store.namespace


def test_backup_restores_onto_postgresql_and_a_new_database_never_reads_the_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.artifacts import get_artifact_store
    from core.db import session_scope
    from core.repositories import ArtifactRepository, ExperimentRepository, MetricRepository, TokenRepository
    from trainlab.operations import backup, restore

    store_dir = tmp_path / "artifacts"  # one store, kept across databases
    point_at(monkeypatch, tmp_path / "old", f"sqlite:///{tmp_path / 'old' / 'trainlab.db'}", store_dir)
    token = make_user("ada")
    experiment_id, namespace = a_finished_run()
    backup(tmp_path / "backup")
    assert (tmp_path / "backup" / "database" / "metrics.jsonl").read_text().count("\n") == 3

    with throwaway_postgres() as pg:
        point_at(monkeypatch, tmp_path / "new", pg, store_dir)
        store = get_artifact_store()
        assert store.namespace != namespace  # a new database: its experiment 1 is not the old one's
        assert not store.exists(store.key_for(experiment_id, "checkpoint.pt"))

        restore(tmp_path / "backup")
        store = get_artifact_store()
        assert store.namespace == namespace
        with session_scope() as session:
            restored = ExperimentRepository(session).get(experiment_id)
            assert restored is not None and restored.summary == {"test": {"accuracy": 0.9}}
            assert [m.step for m in MetricRepository(session).series(experiment_id)] == [1, 2, 3]
            checkpoint = ArtifactRepository(session).get(experiment_id, "checkpoint.pt")
            assert checkpoint is not None and store.get(checkpoint.key) == b"weights after epoch 3"
            assert TokenRepository(session).authenticate(token) is not None
            owner_id = restored.owner_id
            later = ExperimentRepository(session).create(name="next", kind="train", spec={}, owner_id=owner_id)
            session.commit()
            assert later.id > experiment_id  # ids continue after the restored ones
        with pytest.raises(typer.Exit):  # never into a server in use
            restore(tmp_path / "backup")
    reset_caches()

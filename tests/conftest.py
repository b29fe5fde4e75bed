"""Shared fixtures. API tests run in-process against a real database (SQLite file and a
throwaway PostgreSQL database: the same test, every backend)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import throwaway_postgres

# One BLAS/OpenMP thread per test process: tiny runs on a busy 2-core machine are otherwise
# 10-50x slower (thread oversubscription). Set before numpy and torch are imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def reset_caches() -> None:
    """Forget process-wide settings, engines and the Celery app (env vars changed)."""
    from core.celery_app import get_celery_app
    from core.db import get_engine, get_sessionmaker
    from core.settings import get_settings

    if get_engine.cache_info().currsize:
        get_engine().dispose()
    from core.artifacts import get_artifact_store

    for cached in (get_settings, get_engine, get_sessionmaker, get_celery_app, get_artifact_store):
        cached.cache_clear()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trainlab.db'}"
    else:
        with throwaway_postgres() as url:
            yield url


@pytest.fixture
def api_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point settings at the test database and a filesystem broker under tmp_path."""
    from core.migrate import upgrade_database

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("TRAINLAB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TRAINLAB_DATABASE_URL", database_url)
    monkeypatch.delenv("TRAINLAB_BROKER_URL", raising=False)
    reset_caches()
    upgrade_database(database_url)
    yield data_dir
    reset_caches()


@pytest.fixture
def client(api_env: Path) -> Iterator[object]:
    """An in-process HTTP client for the API (no worker: queued tasks wait in the broker)."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app()) as test_client:
        test_client.headers["Authorization"] = f"Bearer {make_user('owner')}"
        yield test_client


def make_user(name: str, admin: bool = False) -> str:
    """A user in the configured database; returns its token."""
    from trainlab.admin import create_user

    return create_user(name, admin)


def queued_messages(data_dir: Path) -> int:
    """How many task messages the filesystem broker holds."""
    folder = data_dir / "broker" / "queue"
    return len(list(folder.iterdir())) if folder.exists() else 0


os.environ.setdefault("TRAINLAB_TORCH_THREADS", "1")

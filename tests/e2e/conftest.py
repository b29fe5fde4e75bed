"""Running services for end-to-end tests: the embedded default and PostgreSQL + Redis."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import Service, running_service, throwaway_postgres, throwaway_redis


@pytest.fixture(scope="module")
def embedded() -> Iterator[Service]:
    """SQLite + the filesystem broker under one data directory: what `make run` starts."""
    with running_service({}, Path(tempfile.mkdtemp(prefix="trainlab-e2e-"))) as service:
        yield service


@pytest.fixture(scope="module")
def lab_server() -> Iterator[Service]:
    """PostgreSQL + Redis: the lab-server set-up."""
    with throwaway_postgres() as pg, throwaway_redis() as redis_url:
        env = {"TRAINLAB_DATABASE_URL": pg, "TRAINLAB_BROKER_URL": redis_url}
        with running_service(env, Path(tempfile.mkdtemp(prefix="trainlab-e2e-"))) as service:
            yield service


@pytest.fixture(params=["embedded", "lab_server"])
def service(request: pytest.FixtureRequest) -> Service:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def two_workers() -> Iterator[Service]:
    """PostgreSQL + Redis with two worker processes (fan-out children run side by side)."""
    with throwaway_postgres() as pg, throwaway_redis() as redis_url:
        env = {"TRAINLAB_DATABASE_URL": pg, "TRAINLAB_BROKER_URL": redis_url, "TRAINLAB_TORCH_THREADS": "1"}
        with running_service(env, Path(tempfile.mkdtemp(prefix="trainlab-e2e-")), workers=2) as service:
            yield service

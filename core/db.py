"""Database engine and sessions. SQLite gets WAL mode and a busy timeout, since the API and the
worker write at the same time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from core.settings import get_settings


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite connections are set to WAL with a 30 s busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            _owner_only(url)

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _owner_only(url: str) -> None:
    """The SQLite file (tokens' hashes, everyone's specs) readable by the service's user only;
    SQLite gives its -wal and -shm files the same mode."""
    path = url.removeprefix("sqlite:///")
    if path and path != url and os.path.exists(path):
        os.chmod(path, 0o600)


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    settings = get_settings()
    if settings.resolved_database_url.startswith("sqlite"):
        settings.ensure_data_dir()
    return make_engine(settings.resolved_database_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session for a task: the caller commits; anything uncommitted is rolled back."""
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()

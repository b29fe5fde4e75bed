"""Apply the Alembic migrations programmatically (`trainlab migrate`, tests, `trainlab up`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str | None = None) -> None:
    """Bring the database at `url` (default: the configured one) to the newest revision."""
    command.upgrade(alembic_config(url), "head")


class SchemaNotCurrent(RuntimeError):
    """The database is not at the code's newest migration: `trainlab migrate` first."""


def head_revision() -> str:
    """The newest migration this code ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_current_schema(engine: Engine) -> None:
    """Refuse to serve or work on a database that is behind (or ahead of) this code: upgrades
    are applied explicitly by `trainlab migrate`, never half-way by a process that happens to
    start first.

    Raises:
        SchemaNotCurrent: with what to run.
    """
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotCurrent(
            f"the database is at migration {current or 'none'} and this trainlab needs {head}: "
            "run `trainlab migrate` (back up first: `trainlab backup DIR`)"
        )

"""Set-up problems of the server-side commands (`migrate`, `up`, `users`, `tokens`, `doctor`...)
said in one line with the fix, instead of a traceback: a database that cannot be opened (not
created yet, wrong address or password, server down) and a schema behind the code."""

from __future__ import annotations

from typing import Any

# Words of the database drivers' messages that mean "the tables are not (all) there".
MISSING_TABLES = ("no such table", "no such column", "relation", "column")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: say nothing of it
        return "(the configured database)"


def _createdb(url: str) -> str:
    """The `createdb` command that makes the database a PostgreSQL URL names."""
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    host = f" -h {parts.host}" if parts.host else ""
    port = f" -p {parts.port}" if parts.port else ""
    user = f" -U {parts.username}" if parts.username else ""
    return f"createdb{host}{port}{user} {parts.database}"


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return " ".join(lines[:2])[:300]


def database_url(redacted: bool = True) -> str:
    from core.settings import get_settings

    url = get_settings().resolved_database_url
    return _redact(url) if redacted else url


def schema_line() -> str:
    """Where the schema is against the code, or '' when that cannot be told."""
    try:
        from core.db import get_engine
        from core.migrate import current_revision, head_revision

        current, head = current_revision(get_engine()), head_revision()
    except Exception:
        return ""
    if current == head:
        return ""
    return f"the database is at migration {current or 'none'} and this trainlab needs {head}"


def explain(exc: BaseException) -> str | None:
    """One line that says what is wrong and what to run, or None for an error of another kind."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from core.migrate import SchemaNotCurrent

    if isinstance(exc, SchemaNotCurrent):
        return f"{exc} (database {database_url()})"
    if not isinstance(exc, DBAPIError):
        return None
    url, reason = database_url(), _first_line(exc)
    lowered = reason.lower()
    opening = isinstance(exc, OperationalError) and any(
        w in lowered for w in ("connection", "unable to open", 'database "', "authentication", "could not")
    )
    if not opening and any(w in lowered for w in MISSING_TABLES):
        behind = schema_line() or "its tables are missing or older than this code"
        return f"database {url}: {behind}. Fix: run `trainlab migrate` ({reason})"
    if not opening:
        return None
    if "does not exist" in lowered and url.startswith("postgresql"):
        fix = f"create it first (`{_createdb(database_url(redacted=False))}`), then run `trainlab migrate`"
    elif "unable to open" in lowered:
        fix = "make TRAINLAB_DATA_DIR a folder this user can write, then run `trainlab migrate`"
    else:
        fix = "check that the database server runs and that TRAINLAB_DATABASE_URL names it (user, password, host)"
    return f"cannot open the database {url}: {reason}. Fix: {fix}"


def explained(exc: Any) -> str | None:
    """`explain`, never raising itself (a broken set-up must not hide the first error)."""
    try:
        return explain(exc)
    except Exception:
        return None

"""Backup and restore of the database and the artifact store, portable between backends.

The database is written as one JSON-lines file per table (rows in primary-key order, parents
before children), so a backup of the embedded SQLite server restores onto PostgreSQL and back.
Artifacts are copied by the keys the database lists (experiments' files and uploads), so the
same code serves a local folder and an S3 bucket. A restore goes into an empty, migrated
database only: it never merges into or overwrites a server in use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session

from core.artifacts import ArtifactStore
from core.models import ApiToken, Artifact, Base, Dataset, Experiment, Installation, Metric, User

# Parents before children (foreign keys); worker heartbeats are not state worth restoring.
MODELS = (Installation, User, ApiToken, Dataset, Experiment, Metric, Artifact)
FORMAT_VERSION = 1
BATCH = 5000


class RestoreRefused(RuntimeError):
    """The target is not an empty server of the same schema."""


def _table(model: type[Base]) -> Table:
    return model.__table__  # type: ignore[return-value]


def _encode(value: Any) -> Any:
    return {"$datetime": value.isoformat()} if isinstance(value, datetime) else value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$datetime"}:
        return datetime.fromisoformat(value["$datetime"])
    return value


def dump_database(session: Session, folder: Path, schema_revision: str) -> dict[str, int]:
    """Write every table to `folder/database/<table>.jsonl`; returns rows per table."""
    target = folder / "database"
    target.mkdir(parents=True, exist_ok=True)
    counts = {}
    for model in MODELS:
        table = _table(model)
        count = 0
        with (target / f"{table.name}.jsonl").open("w") as out:
            for row in session.execute(select(table).order_by(*table.primary_key.columns)).mappings():
                out.write(json.dumps({k: _encode(v) for k, v in row.items()}) + "\n")
                count += 1
        counts[table.name] = count
    manifest = {"format": FORMAT_VERSION, "schema_revision": schema_revision, "rows": counts}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return counts


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as lines:
        for line in lines:
            if line.strip():
                yield {k: _decode(v) for k, v in json.loads(line).items()}


def load_database(session: Session, folder: Path, schema_revision: str) -> dict[str, int]:
    """Insert a dump into this (empty, migrated) database; returns rows per table.

    Raises:
        RestoreRefused: the database holds users or experiments, or the dump was written by
            another schema revision (migrate one of them first).
    """
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("schema_revision") != schema_revision:
        raise RestoreRefused(
            f"the backup is of schema {manifest.get('schema_revision')}, this database of {schema_revision}: "
            "restore into a database migrated to the backup's revision, then run `trainlab migrate`"
        )
    for occupied in (User, Experiment, Dataset):
        if session.scalar(select(func.count()).select_from(_table(occupied))):
            raise RestoreRefused("the target database is not empty: restore into a new, migrated database")
    session.execute(_table(Installation).delete())  # the backup's identity replaces the new one's
    counts = {}
    for model in MODELS:
        table = _table(model)
        batch: list[dict[str, Any]] = []
        count = 0
        for row in _rows(folder / "database" / f"{table.name}.jsonl"):
            batch.append(row)
            if len(batch) >= BATCH:
                session.execute(insert(table), batch)
                count, batch = count + len(batch), []
        if batch:
            session.execute(insert(table), batch)
            count += len(batch)
        counts[table.name] = count
    _reset_sequences(session)
    session.flush()
    return counts


def _reset_sequences(session: Session) -> None:
    """PostgreSQL: the id sequences continue after the restored ids (SQLite needs nothing)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for model in MODELS:
        table = _table(model)
        column = next(iter(table.primary_key.columns))
        if table.name == "installation" or not column.autoincrement:
            continue
        session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
            )
        )


def stored_keys(session: Session) -> list[str]:
    """Every artifact-store key the database refers to."""
    keys = list(session.scalars(select(Artifact.key)))
    keys += [k for k in session.scalars(select(Dataset.key)) if k]
    return keys


def copy_out(store: ArtifactStore, keys: list[str], folder: Path) -> int:
    """Copy the stored files to `folder/artifacts/<key>`; missing ones are skipped."""
    copied = 0
    for key in keys:
        if not store.exists(key):
            continue
        path = folder / "artifacts" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get(key))
        copied += 1
    return copied


def copy_in(folder: Path, store: ArtifactStore) -> int:
    """Put every file of `folder/artifacts` back under its key."""
    root = folder / "artifacts"
    copied = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []:
        store.put(path.relative_to(root).as_posix(), path.read_bytes())
        copied += 1
    return copied

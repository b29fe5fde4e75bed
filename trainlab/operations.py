"""What a lab admin runs on the server: `doctor`, `gc`, `backup` and `restore`.

Like `trainlab migrate` and `trainlab users`, these talk to the database and the artifact store
directly (TRAINLAB_DATABASE_URL, TRAINLAB_ARTIFACT_STORE...): run them on the server.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from trainlab.render import SafeConsole

console = SafeConsole()
CHECKPOINT = "checkpoint.pt"


def _checks() -> list[tuple[str, bool, str]]:
    """(what, ok, detail) for each thing the server needs."""
    from sqlalchemy import text

    from core.artifacts import get_artifact_store
    from core.celery_app import get_celery_app
    from core.db import get_engine, session_scope
    from core.migrate import current_revision, head_revision
    from core.models import utcnow
    from core.operations import WorkerRepository, worker_timeout
    from core.settings import get_settings

    results: list[tuple[str, bool, str]] = []
    settings = get_settings()
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        current, head = current_revision(get_engine()), head_revision()
        results.append(("database reachable", True, _redact(settings.resolved_database_url)))
        detail = f"at {current}" if current == head else f"at {current or 'none'}, code needs {head}: trainlab migrate"
        results.append(("database schema current", current == head, detail))
    except Exception as exc:
        results.append(("database reachable", False, f"{type(exc).__name__}: {exc}"[:200]))
        return results
    try:
        with get_celery_app().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
        results.append(("broker reachable", True, _redact(settings.resolved_broker_url)))
    except Exception as exc:
        results.append(("broker reachable", False, f"{type(exc).__name__}: {exc}"[:200]))
    if current == head:
        with session_scope() as session:
            alive = WorkerRepository(session).seen_since(utcnow() - worker_timeout())
            names = ", ".join(w.name for w in alive)
        results.append(("workers alive", bool(alive), names or "none seen recently: start `trainlab worker`"))
        try:
            store = get_artifact_store()
            probe = f"{store.namespace}/doctor/{uuid.uuid4().hex}"
            store.put(probe, b"ok")
            readable = store.get(probe) == b"ok"
            store.delete(probe)
            where = settings.artifact_store or str(settings.resolved_artifact_dir)
            results.append(("artifact store writable", readable, where))
        except Exception as exc:
            results.append(("artifact store writable", False, f"{type(exc).__name__}: {exc}"[:200]))
    return results


def _redact(url: str) -> str:
    import httpx

    return str(httpx.URL(url).copy_with(password="***")) if "@" in url else url


def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Check the server: database reachable and migrated, broker, workers alive, artifact store
    writable. Exit status 1 when something needs attention."""
    results = _checks()
    if as_json:
        print(json.dumps([{"check": c, "ok": ok, "detail": d} for c, ok, d in results], indent=2))
    else:
        table = Table("check", "", "detail")
        for check, ok, detail in results:
            table.add_row(check, "ok" if ok else "PROBLEM", detail)
        console.print(table)
    if not all(ok for _, ok, _ in results):
        raise typer.Exit(1)


def gc(
    checkpoints: Annotated[bool, typer.Option(help="Delete the checkpoints of finished experiments.")] = True,
    failed_days: Annotated[
        int | None, typer.Option(help="Delete failed and cancelled experiments finished this many days ago.", min=1)
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
) -> None:
    """Free the artifact store: checkpoints nothing will resume, and old failed runs."""
    from core.artifacts import delete_files, get_artifact_store
    from core.db import session_scope
    from core.models import Status, utcnow
    from core.repositories import ArtifactRepository, ExperimentRepository

    store = get_artifact_store()
    keys: list[str] = []
    removed_experiments: list[int] = []
    freed = 0
    with session_scope() as session:
        artifacts = ArtifactRepository(session)
        if checkpoints:
            for artifact in artifacts.finished_checkpoints(CHECKPOINT):
                keys.append(artifact.key)
                freed += artifact.size
                if not dry_run:
                    artifacts.delete(artifact)
        if failed_days is not None:
            repo = ExperimentRepository(session)
            before = utcnow() - timedelta(days=failed_days)
            for experiment_id in repo.final_top_level_before(before, [Status.failed, Status.cancelled]):
                keys += artifacts.keys_of(repo.tree_ids(experiment_id))
                removed_experiments.append(experiment_id)
                if not dry_run:
                    repo.delete_tree(experiment_id)
        if not dry_run:
            session.commit()
    deleted = 0 if dry_run else delete_files(store, keys)
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"{verb} {len(removed_experiments)} experiment(s) and {len(keys)} file(s)"
        + (f" ({deleted} present in the store)" if not dry_run else "")
        + (f"; checkpoints: {freed / 1e6:.1f} MB" if checkpoints else "")
    )


def backup(
    folder: Annotated[Path, typer.Argument(help="A new folder for the backup.")],
) -> None:
    """Back up the database (every table, portable between SQLite and PostgreSQL), the files
    it refers to (artifacts, uploads) and the search studies, into a new folder."""
    from core.artifacts import get_artifact_store
    from core.backup import copy_out, dump_database, stored_keys
    from core.db import get_engine, session_scope
    from core.migrate import current_revision

    if folder.exists() and any(folder.iterdir()):
        raise typer.BadParameter(f"{folder} is not empty")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # it holds everyone's data and the tokens' hashes
    revision = current_revision(get_engine()) or "none"
    with session_scope() as session:
        counts = dump_database(session, folder, revision)
        keys = stored_keys(session)
    files = copy_out(get_artifact_store(), keys, folder)
    studies = _copy_studies(_optuna_url(), f"journal:{folder / 'studies.journal'}")
    console.print(
        f"backup in {folder}: {sum(counts.values())} rows ({counts['experiments']} experiments, "
        f"{counts['metrics']} metric rows), {files} files, {studies} search studies"
    )


def restore(
    folder: Annotated[
        Path, typer.Argument(help="A folder written by `trainlab backup`.", exists=True, file_okay=False)
    ],
) -> None:
    """Restore a backup into an empty, migrated server (the database TRAINLAB_DATABASE_URL names
    and the artifact store): rows, files and search studies."""
    from core.artifacts import get_artifact_store
    from core.backup import RestoreRefused, copy_in, load_database
    from core.db import get_engine, session_scope
    from core.migrate import current_revision

    revision = current_revision(get_engine()) or "none"
    try:
        with session_scope() as session:
            counts = load_database(session, folder, revision)
            session.commit()
    except RestoreRefused as exc:
        console.print(f"restore refused: {exc}")
        raise typer.Exit(1) from exc
    get_artifact_store.cache_clear()  # its key namespace is the restored database's now
    files = copy_in(folder, get_artifact_store())
    journal = folder / "studies.journal"
    studies = _copy_studies(f"journal:{journal}", _optuna_url()) if journal.exists() else 0
    console.print(f"restored {sum(counts.values())} rows, {files} files, {studies} search studies")


def _optuna_url() -> str:
    from core.settings import get_settings

    return get_settings().optuna_storage


def _copy_studies(source: str, target: str) -> int:
    """Copy every search study from one Optuna storage to another; returns how many."""
    import optuna

    from ml.search.study import optuna_storage

    if source.startswith("journal:") and not Path(source.removeprefix("journal:")).exists():
        return 0
    origin, destination = optuna_storage(source), optuna_storage(target)
    names = [s.study_name for s in optuna.get_all_study_summaries(origin, include_best_trial=False)]
    for name in names:
        optuna.copy_study(from_study_name=name, from_storage=origin, to_storage=destination)
    return len(names)

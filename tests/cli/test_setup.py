"""Set-up mistakes a lab admin makes, each answered with one line that names the database and the
fix (no traceback), and the help and token listings read as written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.cli.support import ROOT
from tests.services import PG_ADMIN_URL, throwaway_postgres


def trainlab(*args: str, columns: int = 80, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRAINLAB_")}
    return subprocess.run(
        [sys.executable, "-m", "trainlab.cli", *args],
        env={**clean, "COLUMNS": str(columns), **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr


def test_migrate_into_a_database_not_created_yet_says_how_to_create_it() -> None:
    with throwaway_postgres():  # PostgreSQL is up (skips outside CI when it is not)
        pass
    name = f"trainlab_missing_{uuid.uuid4().hex[:8]}"
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    error = one_line_error(trainlab("migrate", TRAINLAB_DATABASE_URL=url))
    assert "cannot open the database" in error and name in error
    assert "createdb" in error and name in error and "trainlab migrate" in error


def test_commands_on_an_unmigrated_database_say_run_migrate(tmp_path: Path) -> None:
    for args in (("users", "list"), ("tokens", "list")):
        error = one_line_error(trainlab(*args, TRAINLAB_DATA_DIR=str(tmp_path)))
        assert "at migration none" in error and "run `trainlab migrate`" in error and "trainlab.db" in error


def test_an_old_schema_is_named_with_its_revision(tmp_path: Path) -> None:
    with throwaway_postgres() as url:
        from alembic import command

        from core.migrate import alembic_config, head_revision

        command.upgrade(alembic_config(url), "0001")
        error = one_line_error(trainlab("users", "list", TRAINLAB_DATABASE_URL=url))
        assert f"at migration 0001 and this trainlab needs {head_revision()}" in error
        assert "trainlab migrate" in error


def test_tokens_list_shows_the_whole_prefix_that_revoke_takes(tmp_path: Path) -> None:
    env = {"TRAINLAB_DATA_DIR": str(tmp_path)}
    assert trainlab("migrate", **env).returncode == 0
    created = trainlab("users", "create", "a-user-with-a-rather-long-name", "--admin", **env)
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("tl_")
    listed = trainlab("tokens", "list", columns=60, **env)
    assert listed.returncode == 0 and token[:10] in listed.stdout, listed.stdout
    revoked = trainlab("tokens", "revoke", token[:10], **env)
    assert revoked.returncode == 0 and "revoked 1 token" in revoked.stdout


def test_help_shows_the_defaults_markup_would_have_eaten() -> None:
    shown = trainlab("list", "--help", columns=100)
    assert shown.returncode == 0
    assert "$TRAINLAB_URL" in shown.stdout and "$TRAINLAB_TOKEN" in shown.stdout


def test_users_create_save_writes_the_token_for_the_cli(tmp_path: Path) -> None:
    env = {"TRAINLAB_DATA_DIR": str(tmp_path / "data"), "TRAINLAB_CONFIG": str(tmp_path / "config.json")}
    assert trainlab("migrate", **env).returncode == 0
    done = trainlab("users", "create", "admin", "--admin", "--save", "--url", "http://lab:8000", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    token = next(line for line in done.stdout.splitlines() if line.startswith("tl_"))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved == {"url": "http://lab:8000", "token": token}
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o600

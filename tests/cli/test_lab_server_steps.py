"""The README's lab-server steps, run as written: the first bash block of its "Lab server"
section, line by line in one bash shell, against a throwaway PostgreSQL database (created by the
block's own `createdb`), a Redis database number of this test's own and a free port.

What the test changes in the block, and only that: the database name, the Redis database number
and the port (the environment gives TRAINLAB_API_PORT and TRAINLAB_URL; the README's defaults
are 127.0.0.1:8000); `make setup` is not run again (the suite runs inside that set-up: `make
test` made it) and `source .venv/bin/activate` activates the virtual environment running this
test; after the lines that start a server in the background (`&`) the next line waits until
/health says ok (a person pasting the lines waits for their first log lines the same way).
Skips outside CI, and fails in CI, only when PostgreSQL or Redis is unreachable.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.cli.support import ROOT
from tests.services import PG_ADMIN_URL, free_port, throwaway_redis, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def lab_server_block() -> list[str]:
    """The command lines of the README's lab-server bash block (comments and blanks dropped)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Lab server") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "no bash block in the README's lab-server section"
    lines = []
    for raw in block.group(1).splitlines():
        line = re.sub(r"\s+#.*$", "", raw).strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def test_the_lab_server_block_says_what_a_lab_admin_needs() -> None:
    lines = lab_server_block()
    joined = "\n".join(lines)
    order = ["source .venv/bin/activate", "createdb", "trainlab migrate", "users create admin --admin --save"]
    order += ["trainlab serve", "trainlab worker", "trainlab submit"]
    positions = [joined.index(step) for step in order]
    assert positions == sorted(positions), f"the steps are out of order:\n{joined}"


def postgres_reachable() -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        unavailable(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {type(exc).__name__}")
    finally:
        engine.dispose()


def drop_database(name: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


WAIT_HEALTHY = """python - <<'EOF'
import os, sys, time, httpx
url = os.environ["TRAINLAB_URL"] + "/api/v1/health"
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    try:
        if httpx.get(url, timeout=2).json().get("status") == "ok":
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.3)
sys.exit("the API and a worker were not up after 90 s")
EOF"""


def as_script(lines: list[str], database: str, redis_url: str) -> str:
    """The block as one bash script, with this test's database, Redis number and virtualenv."""
    activate = Path(sys.prefix) / "bin" / "activate"
    out = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT"]
    background = False
    for line in lines:
        if line == "make setup":
            continue  # the suite runs inside that set-up already
        if background and not line.endswith("&"):
            out.append(WAIT_HEALTHY)
            background = False
        if line == "source .venv/bin/activate":
            line = f"source {shlex.quote(str(activate))}"
        elif line.startswith("createdb "):
            assert line.endswith(" trainlab"), line
            line = line[: -len("trainlab")] + database
        elif "TRAINLAB_DATABASE_URL=" in line:
            assert line.endswith("/trainlab"), line
            line = line[: -len("trainlab")] + database
        elif "TRAINLAB_BROKER_URL=redis://" in line:
            line = line.split("=", 1)[0] + "=" + redis_url
        background = background or line.endswith("&")
        out.append(f"echo {shlex.quote('$ ' + line)}")
        out.append(line)
    return "\n".join(out) + "\n"


def test_the_lab_server_steps_work_when_pasted_in_order(tmp_path: Path) -> None:
    postgres_reachable()
    database = f"trainlab_readme_{uuid.uuid4().hex[:10]}"
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRAINLAB_")}
    env = {
        **clean,
        "TRAINLAB_DATA_DIR": str(tmp_path / "data"),
        "TRAINLAB_CONFIG": str(tmp_path / "config.json"),
        "TRAINLAB_API_PORT": str(port),
        "TRAINLAB_URL": f"http://127.0.0.1:{port}",
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "100",
    }
    with throwaway_redis() as redis_url:
        script = as_script(lab_server_block(), database, redis_url)
        (tmp_path / "steps.sh").write_text(script)
        proc = subprocess.Popen(
            ["bash", str(tmp_path / "steps.sh")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            pytest.fail(f"the steps did not finish in 240 s:\n{output[-6000:]}")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything the script's trap left behind
            drop_database(database)
    assert proc.returncode == 0, f"the README's lab-server steps failed:\n{script}\n{output[-6000:]}"
    assert "Traceback" not in output, output[-6000:]
    config = (tmp_path / "config.json").read_text()
    assert f"127.0.0.1:{port}" in config and "tl_" in config  # the admin's token, saved for the CLI
    assert "succeeded" in output, output[-3000:]

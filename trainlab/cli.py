"""The `trainlab` command: submit and follow experiments, and run the service's processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Annotated, Any

import httpx
import typer
from rich.text import Text

from trainlab import admin, commands, operations
from trainlab.render import SafeConsole

app = typer.Typer(help="trainlab: a REST training service for shared deep-learning lab servers.", no_args_is_help=True)
console = SafeConsole()

# Experiments and datasets, on the Python client (trainlab/commands.py).
app.command()(commands.submit)
app.command()(commands.watch)
app.command("list")(commands.list_experiments)
app.command()(commands.show)
app.command()(commands.status)
app.command()(commands.metrics)
app.command()(commands.artifacts)
app.command()(commands.compare)
app.command()(commands.cancel)
app.command()(commands.delete)
app.add_typer(commands.datasets, name="datasets")
# Server-side administration (trainlab/admin.py): run on the server, next to the database.
app.add_typer(admin.users_app, name="users")
app.add_typer(admin.tokens_app, name="tokens")
app.command()(operations.doctor)
app.command()(operations.gc)
app.command()(operations.backup)
app.command()(operations.restore)


@app.command()
def migrate() -> None:
    """Apply the database migrations (TRAINLAB_DATABASE_URL, default SQLite in TRAINLAB_DATA_DIR)."""
    from core.migrate import upgrade_database
    from core.settings import get_settings

    settings = get_settings()
    settings.ensure_data_dir()
    upgrade_database()
    console.print(f"database at head: {_redact(settings.resolved_database_url)}")


def _redact(url: str) -> str:
    return httpx.URL(url).copy_with(password="***").__str__() if "@" in url else url


def _serve_cmd(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "api.main:app", "--host", host, "--port", str(port)]


def _worker_cmd(concurrency: int | None, name: str) -> list[str]:
    from core.settings import get_settings

    settings = get_settings()
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "--loglevel",
        "INFO",
        "--concurrency",
        str(concurrency or settings.worker_concurrency),
        "-Q",
        settings.worker_queues,
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
    ]


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="TRAINLAB_API_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="TRAINLAB_API_PORT")] = 8000,
) -> None:
    """Run the API alone (uvicorn)."""
    os.execv(sys.executable, _serve_cmd(host, port))


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Experiments at once (default: setting).")] = None,
    name: Annotated[str, typer.Option(help="Worker name (unique per host).")] = "worker",
) -> None:
    """Run one Celery worker alone."""
    os.execv(sys.executable, _worker_cmd(concurrency, name))


@app.command()
def up(
    host: Annotated[str, typer.Option(envvar="TRAINLAB_API_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="TRAINLAB_API_PORT")] = 8000,
) -> None:
    """Migrate, then run the API and one worker together (what `make run` starts). Ctrl-C stops both."""
    migrate()
    local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if token := admin.ensure_first_admin(f"http://{local}:{port}"):
        console.print(
            f"first start: created the user admin, token {token} (saved in {admin.config_path()} "
            "for the CLI; sign in to the dashboard with it)"
        )
    procs = [subprocess.Popen(_serve_cmd(host, port)), subprocess.Popen(_worker_cmd(None, "worker"))]
    console.print(f"trainlab up: dashboard and API on http://{local}:{port} (docs at /docs), one worker; Ctrl-C stops.")

    def stop(*_: Any) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started in the background (SIGINT ignored there)
    try:
        while all(p.poll() is None for p in procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                procs[0].wait(timeout=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    console.print("trainlab stopped")


def main() -> None:
    try:
        app()
    except Exception as exc:  # set-up problems in one line with their fix; anything else as it is
        from trainlab.problems import explained

        message = explained(exc)
        if message is None:
            raise
        SafeConsole(stderr=True).print(Text.assemble(("error:", "red"), f" {message}"), soft_wrap=True, highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()

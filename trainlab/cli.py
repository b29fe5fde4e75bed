"""The `trainlab` command: submit and follow experiments, and run the service's processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trainlab.client import Client, TrainlabError

app = typer.Typer(help="trainlab: a REST training service for shared deep-learning lab servers.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

UrlOpt = Annotated[str, typer.Option("--url", envvar="TRAINLAB_URL", help="Server URL.")]
DEFAULT_URL = "http://127.0.0.1:8000"


def _client(url: str) -> Client:
    return Client(url)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _guard(func: Any, url: str, *args: Any) -> Any:
    try:
        return func(*args)
    except httpx.ConnectError:
        _fail(f"cannot reach the trainlab server at {url} (is `trainlab up` running?)", 2)
    except TrainlabError as exc:
        _fail(str(exc), 2)


def _progress_bar(client: Client, experiment: dict[str, Any]) -> dict[str, Any]:
    total = int(experiment["spec"].get("train", {}).get("epochs", 0)) or None
    with Progress(
        TextColumn("[bold]#{task.fields[id]}[/bold] {task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[losses]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("run", total=total, id=experiment["id"], status="queued", losses="")

        def update(exp: dict[str, Any], metrics: list[dict[str, Any]]) -> None:
            step = max((m["step"] for m in metrics), default=0)
            last = {(m["split"], m["name"]): m["value"] for m in metrics if m["step"] == step}
            losses = "  ".join(f"{s} {n} {v:.4g}" for (s, n), v in sorted(last.items()) if n != "lr")
            progress.update(task, completed=step, status=exp["status"], losses=losses)

        return client.wait(experiment["id"], on_update=update)


def _print_result(experiment: dict[str, Any]) -> None:
    status = experiment["status"]
    color = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(status, "white")
    console.print(f"experiment {experiment['id']} [{color}]{status}[/{color}]")
    if experiment.get("error"):
        console.print(f"  error: {experiment['error']}")
    summary = experiment.get("summary") or {}
    if summary.get("test"):
        tests = {k: v for k, v in summary["test"].items() if isinstance(v, int | float)}
        console.print("  test: " + ", ".join(f"{k} {v:.4f}" for k, v in tests.items()))


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A spec file (YAML or JSON).")],
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run with a progress bar.")] = False,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Submit an experiment spec; with --wait, follow it and exit non-zero unless it succeeds."""
    client = _client(url)
    experiment = _guard(client.submit, url, file)
    console.print(f"submitted experiment {experiment['id']} ({experiment['name']})")
    if not wait:
        return
    final = _guard(_progress_bar, url, client, experiment)
    _print_result(final)
    if final["status"] != "succeeded":
        raise typer.Exit(1)


@app.command()
def status(
    experiment_id: Annotated[int, typer.Argument(help="Experiment id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Show an experiment's status and summary."""
    experiment = _guard(_client(url).get, url, experiment_id)
    if as_json:
        console.print_json(json.dumps(experiment))
    else:
        _print_result(experiment)


@app.command()
def cancel(experiment_id: Annotated[int, typer.Argument(help="Experiment id.")], url: UrlOpt = DEFAULT_URL) -> None:
    """Cancel an experiment (queued: now; running: at its next check)."""
    experiment = _guard(_client(url).cancel, url, experiment_id)
    console.print(
        f"experiment {experiment_id}: {experiment['status']}"
        + (" (cancel requested)" if experiment["status"] == "running" else "")
    )


@app.command()
def migrate() -> None:
    """Apply the database migrations (TRAINLAB_DATABASE_URL, default SQLite in TRAINLAB_DATA_DIR)."""
    from core.migrate import upgrade_database
    from core.settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
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
    procs = [subprocess.Popen(_serve_cmd(host, port)), subprocess.Popen(_worker_cmd(None, "worker"))]
    console.print(f"trainlab up: API on http://{host}:{port} (docs at /docs), one worker. Ctrl-C stops both.")

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
    app()


if __name__ == "__main__":
    main()

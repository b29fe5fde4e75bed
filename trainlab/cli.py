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


def _detected_gpus() -> list[str]:
    """The GPU ids this host offers a worker: CUDA_VISIBLE_DEVICES when set, else every GPU torch sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [v.strip() for v in visible.split(",") if v.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _worker_resources(gpus: str | None, cpu_runs: bool | None) -> tuple[list[str], list[str]]:
    """(GPU ids, queues) of a worker: `--gpus` (or TRAINLAB_WORKER_GPUS, CUDA_VISIBLE_DEVICES,
    the GPUs torch sees), and the queues of its resource class unless TRAINLAB_WORKER_QUEUES names them."""
    from core.resources import parse_queues, worker_queues
    from core.settings import get_settings

    settings = get_settings()
    chosen = gpus if gpus is not None else settings.worker_gpus
    if chosen is not None:
        ids = [] if chosen.strip().lower() in ("", "none", "cpu") else parse_queues(chosen)
    else:
        ids = _detected_gpus()
    cpu = cpu_runs if cpu_runs is not None else settings.worker_cpu_runs
    return ids, parse_queues(settings.worker_queues) or worker_queues(len(ids), cpu)


def _worker_cmd(concurrency: int | None, name: str, gpus: str | None = None, cpu_runs: bool | None = None) -> list[str]:
    """The Celery command line of a worker; its GPUs go to its environment (CUDA_VISIBLE_DEVICES:
    the runs see only these; none: the CPU), inherited by the command."""
    from core.settings import get_settings

    settings = get_settings()
    ids, queues = _worker_resources(gpus, cpu_runs)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
    os.environ["TRAINLAB_WORKER_GPUS"] = ",".join(ids)
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
        ",".join(queues),
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
    gpus: Annotated[
        str | None,
        typer.Option(
            help="GPU ids this worker uses, e.g. 0,1 ('none': CPU only); default: CUDA_VISIBLE_DEVICES, "
            "else every GPU torch sees. It takes runs asking for up to that many GPUs (queues gpu1..gpuN)."
        ),
    ] = None,
    cpu_runs: Annotated[
        bool | None,
        typer.Option(
            "--cpu-runs/--no-cpu-runs",
            help="Also take resources.cpu_only runs (queue cpu); default: only a worker without GPUs does.",
        ),
    ] = None,
) -> None:
    """Run one Celery worker alone (one per GPU, or one for several GPUs: see README, GPU server)."""
    os.execv(sys.executable, _worker_cmd(concurrency, name, gpus, cpu_runs))


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
    procs = [subprocess.Popen(_serve_cmd(host, port)), subprocess.Popen(_worker_cmd(None, "worker", cpu_runs=True))]
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

"""Metric histories and submissions: trainlab's API against an MLflow tracking server, same
machine, both on SQLite, both over HTTP, both started by this script and up at once, measured in
--rounds rounds in turn (a busy moment of a shared machine falls on both); each side decodes its
answers (MlflowClient builds its Metric objects, trainlab's side parses the JSON).

- one metric's 10,000-point history: trainlab `GET /metrics/series?split=validation&name=loss`
  against MLflow's `get_metric_history` (the REST `metrics/get-history` the UI uses);
- submission: trainlab `POST /experiments` (validate, store, queue) against MLflow `runs/create`.

Runs only where `mlflow` is importable (`pip install .[mlflow]`, an optional extra: trainlab never
imports it); otherwise it says so and exits 0. Last line: the ratios (goal: history >= 5x faster,
POST >= 1x MLflow's rate).

    .venv/bin/python benchmarks/vs_mlflow.py [--rounds 5] [--repeats 5] [--points 10000]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SPEC = {"name": "vs-mlflow", "data": {"source": "builtin/iris"}, "train": {"epochs": 3}}


def timed_ms(call: Callable[[], object], repeats: int) -> list[float]:
    call()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def wait_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop a server and every process it started (MLflow's uvicorn and job runners): the whole
    process group, which start_new_session made its own."""
    for sig in (signal.SIGTERM, signal.SIGKILL):  # the second one only finds what lingers
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(0.5)


def free_port() -> int:
    from tests.services import free_port as port

    return port()


@contextmanager
def trainlab_side(folder: Path, points: int) -> Iterator[dict[str, Callable[[], object]]]:
    """A trainlab API (embedded default) holding one run's history; yields the timed calls."""
    env = {
        **os.environ,
        "TRAINLAB_DATA_DIR": str(folder / "trainlab"),
        "TRAINLAB_SUBMIT_RATE_PER_MINUTE": "1000000",
        "TRAINLAB_MAX_QUEUED_PER_USER": "0",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("TRAINLAB_")})
    subprocess.run(
        [sys.executable, "-m", "trainlab.cli", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    from core.db import session_scope
    from core.repositories import ExperimentRepository, MetricRepository
    from trainlab.admin import create_user

    token = create_user("bench", False)
    with session_scope() as session:
        from core.models import User

        owner = session.query(User).one().id
        run = ExperimentRepository(session).create(name="history", kind="train", spec=SPEC, owner_id=owner)
        rows = [(s, split, "loss", 1.0 / s) for s in range(1, points + 1) for split in ("train", "validation")]
        MetricRepository(session).add_many(run.id, rows)
        session.commit()
        run_id = run.id
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "trainlab.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_up(f"http://127.0.0.1:{port}/api/v1/health")
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers={"Authorization": f"Bearer {token}"})
        params = {"split": "validation", "name": "loss"}
        answer = http.get(f"/experiments/{run_id}/metrics/series", params=params).json()
        assert len(answer["series"][0]["steps"]) == points
        # Both sides decode the answer, as MlflowClient does.
        yield {
            "history": lambda: http.get(f"/experiments/{run_id}/metrics/series", params=params).json(),
            "submit": lambda: http.post("/experiments", json=SPEC).json(),
        }
        http.close()
    finally:
        stop(server)


@contextmanager
def mlflow_side(folder: Path, points: int) -> Iterator[dict[str, Callable[[], object]]]:
    """An MLflow tracking server (SQLite) holding one run's history; yields the timed calls."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--default-artifact-root",
            str(folder / "mlruns"),
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_up(f"http://127.0.0.1:{port}/health")
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        experiment = client.create_experiment("bench")
        run = client.create_run(experiment).info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric("val_loss", 1.0 / s, now, s) for s in range(1, points + 1)]
        for start in range(0, points, 1000):  # log-batch takes 1,000 metrics a call
            client.log_batch(run, metrics=metrics[start : start + 1000])
        assert len(client.get_metric_history(run, "val_loss")) == points
        yield {
            "history": lambda: client.get_metric_history(run, "val_loss"),
            "submit": lambda: client.create_run(experiment),
        }
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds over both servers, interleaved")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of each request per round")
    parser.add_argument("--points", type=int, default=10_000)
    args = parser.parse_args()
    if importlib.util.find_spec("mlflow") is None:
        print("mlflow is not installed (pip install .[mlflow]): nothing to compare against; skipped")
        return
    samples: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        sides = {
            "trainlab": stack.enter_context(trainlab_side(Path(tmp), args.points)),
            "MLflow": stack.enter_context(mlflow_side(Path(tmp), args.points)),
        }
        # Both servers up at once, measured in turn: a busy moment of a shared machine falls on both.
        for _ in range(args.rounds):
            for side, calls in sides.items():
                for what, call in calls.items():
                    samples.setdefault((side, what), []).extend(timed_ms(call, args.repeats))
    ours = {what: statistics.median(samples[("trainlab", what)]) for what in ("history", "submit")}
    theirs = {what: statistics.median(samples[("MLflow", what)]) for what in ("history", "submit")}
    print(f"median of {args.rounds} interleaved rounds x {args.repeats} calls (ms) | trainlab | MLflow")
    print(f"one metric, {args.points:,} points | {ours['history']:.1f} | {theirs['history']:.1f}")
    print(f"submit one (POST /experiments vs runs/create) | {ours['submit']:.1f} | {theirs['submit']:.1f}")
    print(
        f"history_speedup={theirs['history'] / ours['history']:.2f}x (goal >= 5) "
        f"submit_rate_ratio={theirs['submit'] / ours['submit']:.2f}x (goal >= 1)"
    )


if __name__ == "__main__":
    main()

"""Real services for integration tests: a throwaway PostgreSQL database, a Redis database number
of the test run's own, and the API plus worker processes started as a user would start them.

Outside CI an unreachable PostgreSQL or Redis skips the test with the reason; in CI (CI=true)
it fails, so the integration suite can never silently not run there.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("TRAINLAB_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TRAINLAB_TEST_REDIS", "redis://127.0.0.1:6379")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip outside CI, fail in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: integration tests must run)")
    pytest.skip(reason)


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it afterwards."""
    from sqlalchemy import create_engine, text

    name = f"trainlab_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        unavailable(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {type(exc).__name__}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def throwaway_redis() -> Iterator[str]:
    """A Redis database number of this test's own: one that is empty, claimed with a marker key
    (SET NX), so no other job's database is ever flushed; emptied after, if still ours."""
    import redis

    claim = f"trainlab-test-claim-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        redis.Redis.from_url(f"{REDIS_URL}/0").ping()
    except Exception as exc:
        unavailable(f"Redis unreachable at {REDIS_URL}: {type(exc).__name__}")
    for k in range(15):
        number = 1 + (os.getpid() + k) % 15
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        if client.dbsize() == 0 and client.set("trainlab-test-claim", claim, nx=True, ex=6 * 3600):
            if client.dbsize() == 1:  # nobody else wrote in between: it is ours
                break
            client.delete("trainlab-test-claim")
        client.close()
    else:
        raise RuntimeError("no empty Redis database number for this test")
    try:
        yield f"{REDIS_URL}/{number}"
    finally:
        if client.get("trainlab-test-claim") in (claim.encode(), None):  # ours (or flushed by our own test)
            client.flushdb()
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """The API and N worker processes, started with the `trainlab` command like a user would."""

    def __init__(self, env: dict[str, str], data_dir: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.env = {**os.environ, **env, "TRAINLAB_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.token = ""
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.worker_names: list[str] = []
        self.n_workers = workers

    def _spawn(self, args: list[str], log_name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.logs / log_name, "ab")  # noqa: SIM115 (lives as long as the process)
        return subprocess.Popen(
            [sys.executable, "-m", "trainlab.cli", *args],
            cwd=ROOT,
            env=env or self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )

    def start(self) -> Service:
        subprocess.run(
            [sys.executable, "-m", "trainlab.cli", "migrate"], cwd=ROOT, env=self.env, check=True, capture_output=True
        )
        self.token = self.create_user("tester", admin=False)
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.api = self._spawn(["serve", "--port", str(self.port)], "api.log")
        for i in range(self.n_workers):
            self.start_worker(f"w{i}")
        self.wait_healthy()
        return self

    def restart_api(self, sig: int = signal.SIGKILL) -> None:
        """Kill the API process and start it again on the same port."""
        assert self.api is not None
        os.killpg(self.api.pid, sig)
        self.api.wait()
        self.api = self._spawn(["serve", "--port", str(self.port)], "api.log")
        self.wait_healthy()

    def worker_running(self, experiment: dict) -> subprocess.Popen[bytes]:
        """The worker process (group) that holds an experiment, from its `worker` identity."""
        name = str(experiment["worker"]).split("@", 1)[0]
        for proc, worker_name in zip(self.workers, self.worker_names, strict=True):
            if worker_name == name:
                return proc
        raise AssertionError(f"no worker named {name}")

    def kill_worker(self, proc: subprocess.Popen[bytes], sig: int) -> None:
        """Send a signal to a worker's whole process group (main process and pool children)."""
        os.killpg(proc.pid, sig)
        if sig == signal.SIGKILL:
            proc.wait()

    def create_user(self, name: str, admin: bool = False) -> str:
        """A user of this server; returns its token."""
        code = f"from trainlab.admin import create_user; print(create_user({name!r}, {admin!r}))"
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=self.env, check=True, capture_output=True, text=True
        )
        return out.stdout.strip().splitlines()[-1]

    def start_worker(
        self, name: str, data_dir: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a worker; with `data_dir`, in a working directory of its own (another host);
        with `env`, with an environment of its own."""
        unique = f"{name}-{uuid.uuid4().hex[:6]}"
        env = env or ({**self.env, "TRAINLAB_DATA_DIR": str(data_dir)} if data_dir else None)
        proc = self._spawn(["worker", "--name", unique], f"worker-{name}.log", env)
        self.workers.append(proc)
        self.worker_names.append(unique)
        return proc

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"API did not become healthy; log:\n{self.log('api.log')}")

    def log(self, name: str) -> str:
        path = self.logs / name
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def stop(self) -> None:
        self.http.close()
        for proc in [*self.workers, self.api]:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.workers, self.api]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def wait_for(self, experiment_id: int, statuses: tuple[str, ...], timeout: float = 120) -> dict:
        """Poll until the experiment is in one of `statuses`; fail with the logs otherwise."""
        deadline = time.monotonic() + timeout
        experiment: dict = {}
        while time.monotonic() < deadline:
            experiment = self.http.get(f"/api/v1/experiments/{experiment_id}").json()
            if experiment["status"] in statuses:
                return experiment
            time.sleep(0.2)
        worker_logs = "\n".join(self.log(p.name) for p in self.logs.glob("worker-*.log"))
        raise AssertionError(f"experiment {experiment_id} is {experiment.get('status')}; worker logs:\n{worker_logs}")


@contextmanager
def running_service(env: dict[str, str], data_dir: Path, workers: int = 1) -> Iterator[Service]:
    service = Service(env, data_dir, workers)
    try:
        yield service.start()
    finally:
        service.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

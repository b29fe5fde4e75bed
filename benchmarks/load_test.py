"""Load test: many tiny experiments through two workers, none lost or run twice, with the
queue-to-start latency measured against a bare Celery task round trip in the same run.

1. Starts the service as a user would (`trainlab serve` + 2 `trainlab worker`, TORCH_THREADS=1):
   `--backend lab` (default) on a throwaway PostgreSQL database and a Redis database number of
   its own; `--backend embedded` on SQLite and the filesystem broker in a temporary data dir.
2. Warm-up: a few experiments until both workers have run one (not timed).
3. Submits N tiny analytic experiments (milliseconds of work each) from 8 client threads over
   HTTP, each request with its own Idempotency-Key (retried with the same key), and waits until
   all are final (bounded by --timeout).
4. Verifies through the API: every accepted id exists and succeeded, attempts == 1 for each
   (none run twice), no row that no submission created (none duplicated), none lost.
   Queue-to-start latency = started_at - created_at of each experiment.
5. Idle probes: a few experiments one at a time (nothing else queued): the unloaded latency.
6. Stops the service, then the baseline on the same kind of broker (Redis database of its own,
   or a filesystem broker folder of its own): a trivial `ping` task on a Celery app built by
   `core.celery_app.make_celery` (so late acks, prefetch 1, reject-on-worker-lost, transport
   options and worker_max_tasks_per_child are ours), 2 bare `celery worker` processes,
   `--pool prefork --concurrency 1`. The pings are sent with the same arrival times as the
   experiments' created_at (`--baseline-arrivals replay`; `burst` sends them all at once), each
   ping records its start time (Redis list, or a file on the embedded backend);
   send -> start latency. Then the same idle probes.

Usage:
    .venv/bin/python benchmarks/load_test.py [--backend lab|embedded] [--n 500] [--threads 8]
        [--workers 2] [--timeout 900] [--idle-probes 10] [--baseline-arrivals replay|burst]
        [--max-tasks-per-child K]   # overrides TRAINLAB_WORKER_MAX_TASKS_PER_CHILD on both sides

With tiny experiments the workers' child recycling dominates: every worker_max_tasks_per_child
(20) tasks Celery's prefork pool replaces the child, and the worker runs nothing for ~5 s (bare
Celery too); `--max-tasks-per-child 100000` shows the latency without it.

The last line reads ``trainlab_p50=...s trainlab_p95=...s celery_p50=...s celery_p95=...s
ratio_p50=... lost=0 duplicated=0 run_twice=0``; the exit status is 1 when an experiment was
lost, duplicated, run twice or did not succeed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PING_TASK = "loadtest.ping"
PING_QUEUE = "loadtest"
PING_KEY = "loadtest:starts"
FINAL = ("succeeded", "failed", "cancelled")


# ---------------------------------------------------------------------------------------------
# The baseline's Celery app. The bare worker processes import this module
# (`celery -A benchmarks.load_test:bench_app worker`); the app is built on first access from
# TRAINLAB_* variables, so importing the module has no side effect.
# ---------------------------------------------------------------------------------------------


def make_bench_app(settings: Any) -> Any:
    """Our Celery configuration (`make_celery`) with one trivial task that records its start."""
    from core.celery_app import make_celery

    app = make_celery(settings)
    app.conf.task_default_queue = PING_QUEUE
    app.conf.worker_max_tasks_per_child = settings.worker_max_tasks_per_child  # as workers/app.py
    sink = os.environ.get("LOADTEST_SINK", "")
    state: dict[str, Any] = {}

    def record(line: str) -> None:
        if sink.startswith("redis"):
            if state.get("pid") != os.getpid():  # one connection per (forked) process
                import redis

                state.update(pid=os.getpid(), client=redis.Redis.from_url(sink))
            state["client"].rpush(PING_KEY, line)
        else:
            with open(sink, "a") as out:  # one small O_APPEND write per line: atomic
                out.write(line + "\n")

    @app.task(name=PING_TASK, bind=True)
    def ping(self: Any, index: int, sent_at: float) -> float:
        started = time.time()
        record(json.dumps([index, sent_at, started, str(self.request.hostname)]))
        return started

    return app


_bench_app: Any = None


def __getattr__(name: str) -> Any:
    global _bench_app
    if name == "bench_app":
        if _bench_app is None:
            from core.settings import Settings

            _bench_app = make_bench_app(Settings())
        return _bench_app
    raise AttributeError(name)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def analytic_spec(name: str, i: int) -> dict[str, Any]:
    return {"kind": "analytic", "name": name, "function": "quadratic", "h1": 0.5 + (i % 7) * 0.1, "h2": 1.5}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_redis_db(base_url: str, avoid: set[int]) -> str:
    """A Redis database number nobody uses right now (empty), other than `avoid`."""
    import redis

    start = os.getpid()
    for k in range(15):
        number = 1 + (start + 7 + k) % 15
        if number in avoid:
            continue
        client = redis.Redis.from_url(f"{base_url}/{number}")
        try:
            if client.dbsize() == 0:
                return f"{base_url}/{number}"
        finally:
            client.close()
    raise RuntimeError("no empty Redis database number for the baseline")


@dataclass
class Submitted:
    key: str
    index: int
    id: int | None = None
    http_status: int | None = None
    tries: int = 0
    error: str = ""


@dataclass
class Phase:
    """Latencies (seconds) and timings of one side (trainlab or the Celery baseline)."""

    latencies: list[float] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)
    submit_wall: float = float("nan")
    wall: float = float("nan")
    done: int = 0


# ---------------------------------------------------------------------------------------------
# The trainlab side
# ---------------------------------------------------------------------------------------------


class TrainlabRun:
    def __init__(self, service: Any, threads: int) -> None:
        import httpx

        self.service = service
        self.url = service.url + "/api/v1"
        self.headers = {"Authorization": f"Bearer {service.token}"}
        self.threads = threads
        self.local = threading.local()
        self.http = httpx.Client(base_url=self.url, headers=self.headers, timeout=60)
        self._httpx = httpx

    def _client(self) -> Any:
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = self._httpx.Client(base_url=self.url, headers=self.headers, timeout=60)
        return client

    def submit_one(self, item: Submitted, name: str) -> Submitted:
        """POST with an Idempotency-Key; connection errors, 429 and 5xx retried with the same key."""
        spec = analytic_spec(name, item.index)
        for attempt in range(8):
            item.tries = attempt + 1
            try:
                r = self._client().post("/experiments", json=spec, headers={"Idempotency-Key": item.key})
            except self._httpx.TransportError as exc:
                item.error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.2 * 2**attempt)
                continue
            item.http_status = r.status_code
            if r.status_code in (200, 201):
                item.id = int(r.json()["id"])
                item.error = ""
                return item
            item.error = f"{r.status_code}: {r.text[:200]}"
            if r.status_code == 429 or r.status_code >= 500:
                time.sleep(0.2 * 2**attempt)
                continue
            return item
        return item

    def submit(self, prefix: str, indices: list[int]) -> list[Submitted]:
        items = [Submitted(key=f"{prefix}-{uuid.uuid4().hex}", index=i) for i in indices]
        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(lambda it: self.submit_one(it, f"{prefix}-{it.index}"), items))
        return items

    def count(self, status: str) -> int:
        return int(self.http.get("/experiments", params={"status": status, "limit": 1}).json()["total"])

    def wait_all_final(self, deadline: float, progress_every: float = 15.0) -> bool:
        last = 0.0
        while True:
            queued, running = self.count("queued"), self.count("running")
            now = time.monotonic()
            if queued + running == 0:
                return True
            if now - last >= progress_every:
                log(f"  waiting: {queued} queued, {running} running, {self.count('succeeded')} succeeded")
                last = now
            if now > deadline:
                return False
            time.sleep(0.5)

    def all_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.http.get("/experiments", params={"limit": 500, "offset": offset}).json()
            rows.extend(page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return rows

    def details(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        def one(experiment_id: int) -> tuple[int, dict[str, Any]]:
            for attempt in range(5):
                try:
                    r = self._client().get(f"/experiments/{experiment_id}")
                    return experiment_id, (r.json() if r.status_code == 200 else {"http_status": r.status_code})
                except self._httpx.TransportError:
                    time.sleep(0.2 * 2**attempt)
            return experiment_id, {"http_status": None}

        with ThreadPoolExecutor(self.threads) as pool:
            return dict(pool.map(one, ids))

    def warm_up(self, workers: int, timeout: float = 120) -> list[int]:
        """Experiments in small batches until every worker has run one."""
        ids: list[int] = []
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        batch = 0
        while len(seen) < workers and time.monotonic() < deadline:
            items = self.submit(f"warmup{batch}", list(range(2 * workers)))
            batch += 1
            new = [it.id for it in items if it.id is not None]
            ids += new
            for experiment_id in new:
                while time.monotonic() < deadline:
                    e = self.http.get(f"/experiments/{experiment_id}").json()
                    if e["status"] in FINAL:
                        seen.add(str(e.get("worker") or "").split("@", 1)[0])
                        break
                    time.sleep(0.1)
        if len(seen) < workers:
            log(f"  warning: only {len(seen)} of {workers} workers ran a warm-up experiment")
        return ids

    def idle_probes(self, count: int, timeout: float = 60) -> tuple[list[int], list[float]]:
        ids, latencies = [], []
        for i in range(count):
            item = self.submit_one(Submitted(key=f"idle-{uuid.uuid4().hex}", index=i), f"idle-{i}")
            if item.id is None:
                continue
            ids.append(item.id)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                e = self.http.get(f"/experiments/{item.id}").json()
                if e["status"] in FINAL:
                    if e.get("started_at"):
                        latencies.append(parse_time(e["started_at"]) - parse_time(e["created_at"]))
                    break
                time.sleep(0.05)
            time.sleep(0.2)  # the worker is back to waiting on the broker
        return ids, latencies

    def close(self) -> None:
        self.http.close()


def worker_log_counts(logs: Path) -> dict[str, int]:
    """From the worker logs: task messages received, deliveries not claimed (the row was no longer
    queued: a duplicate message, harmless), re-queues by the reconciler, tracebacks."""
    counts: Counter[str] = Counter()
    for path in logs.glob("worker-*.log"):
        text = path.read_text(errors="replace")
        counts["received"] += len(re.findall(r"Task trainlab\.run_experiment\[[^\]]+\] received", text))
        counts["not_claimed"] += len(re.findall(r"'skipped: ", text))
        counts["requeued"] += len(re.findall(r"re-queued|lost its worker|sent again|redispatch", text))
        counts["tracebacks"] += text.count("Traceback")
    return dict(counts)


# ---------------------------------------------------------------------------------------------
# The baseline side
# ---------------------------------------------------------------------------------------------


class Baseline:
    """2 bare `celery worker` processes for the ping app, on a broker of their own."""

    def __init__(self, workers: int, env: dict[str, str], data_dir: Path, sink: str) -> None:
        from core.settings import Settings

        self.dir = data_dir
        self.sink = sink
        self.env = {
            **os.environ,
            **env,
            "TRAINLAB_DATA_DIR": str(data_dir),
            "LOADTEST_SINK": sink,
            "PYTHONUNBUFFERED": "1",
        }
        settings = Settings(
            data_dir=data_dir, broker_url=env.get("TRAINLAB_BROKER_URL") or None, database_url="sqlite://"
        )
        self.app = make_bench_app(settings)  # sends only: the sink matters in the workers
        self.workers = workers
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()

    def start(self) -> None:
        for i in range(self.workers):
            name = f"ping{i}-{uuid.uuid4().hex[:6]}"
            out = open(self.logs / f"ping{i}.log", "ab")  # noqa: SIM115 (lives as long as the process)
            cmd = [sys.executable, "-m", "celery", "-A", "benchmarks.load_test:bench_app", "worker"]
            cmd += ["--loglevel", "INFO", "--pool", "prefork", "--concurrency", "1", "-Q", PING_QUEUE]
            cmd += ["-n", f"{name}@%h", "--without-gossip", "--without-mingle"]
            proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True)
            self.procs.append(proc)
            self.names.append(name)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def send(self, index: int) -> None:
        with self.app.producer_or_acquire() as producer:
            sent_at = time.time()
            self.app.send_task(PING_TASK, args=[index, sent_at], queue=PING_QUEUE, priority=5, producer=producer)

    def records(self) -> list[list[Any]]:
        if self.sink.startswith("redis"):
            import redis

            client = redis.Redis.from_url(self.sink)
            try:
                raw = client.lrange(PING_KEY, 0, -1)
            finally:
                client.close()
            return [json.loads(x) for x in raw]
        path = Path(self.sink)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def wait_for(self, indices: set[int], deadline: float) -> dict[int, list[list[Any]]]:
        while True:
            by_index: dict[int, list[list[Any]]] = {}
            for rec in self.records():
                by_index.setdefault(int(rec[0]), []).append(rec)
            if indices <= by_index.keys() or time.monotonic() > deadline:
                return by_index
            time.sleep(0.2)

    def warm_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        index = -1
        while len(seen) < self.workers and time.monotonic() < deadline:
            batch = list(range(index, index - 2 * self.workers, -1))
            index -= 2 * self.workers
            for i in batch:
                self.send(i)
            got = self.wait_for(set(batch), deadline)
            seen |= {str(r[3]).split("@", 1)[0] for recs in got.values() for r in recs}
        if len(seen) < self.workers:
            log(f"  warning: only {len(seen)} of {self.workers} ping workers answered the warm-up")

    def run(self, offsets: list[float], threads: int) -> float:
        """Send ping i at t0 + offsets[i] (replay) and return the sending wall time."""
        t0 = time.monotonic()
        if all(o == 0 for o in offsets):
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(self.send, range(len(offsets))))
        else:
            for i, offset in enumerate(offsets):
                delay = t0 + offset - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.send(i)
        return time.monotonic() - t0

    def idle_probes(self, count: int, timeout: float = 60) -> list[float]:
        latencies = []
        for k in range(count):
            index = 1_000_000 + k
            self.send(index)
            got = self.wait_for({index}, time.monotonic() + timeout)
            if index in got:
                _, sent_at, started, _ = got[index][0]
                latencies.append(started - sent_at)
            time.sleep(0.2)
        return latencies


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


@contextmanager
def backend_env(backend: str) -> Iterator[dict[str, str]]:
    """The service's environment: throwaway PostgreSQL + Redis (lab) or nothing (embedded)."""
    if backend == "embedded":
        yield {}
        return
    from tests.services import throwaway_postgres, throwaway_redis

    with throwaway_postgres() as db_url, throwaway_redis() as redis_url:
        yield {"TRAINLAB_DATABASE_URL": db_url, "TRAINLAB_BROKER_URL": redis_url}


@contextmanager
def baseline_broker(backend: str, trainlab_env: dict[str, str], bench_dir: Path) -> Iterator[tuple[dict, str]]:
    """(env, sink) of the baseline: a Redis database number of its own (flushed before and
    after) on the lab backend; a filesystem broker folder of its own on the embedded one."""
    if backend == "embedded":
        yield {}, str(bench_dir / "starts.jsonl")
        return
    import redis

    base, used = trainlab_env["TRAINLAB_BROKER_URL"].rsplit("/", 1)
    url = free_redis_db(base, {int(used)})
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield {"TRAINLAB_BROKER_URL": url}, url
    finally:
        client.flushdb()
        client.close()


def fmt(value: float, unit: str = "s") -> str:
    if value != value:  # nan
        return "-"
    if unit == "n":
        return str(int(value))
    return f"{value:.3f}{unit}" if unit else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["lab", "embedded"], default="lab")
    parser.add_argument("--n", type=int, default=500, help="experiments (and pings)")
    parser.add_argument("--threads", type=int, default=8, help="client threads submitting")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (each concurrency 1)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for all to be final")
    parser.add_argument("--idle-probes", type=int, default=10, help="one-at-a-time probes (0: none)")
    parser.add_argument("--baseline-arrivals", choices=["replay", "burst"], default="replay")
    parser.add_argument(
        "--max-tasks-per-child",
        type=int,
        default=None,
        help="override TRAINLAB_WORKER_MAX_TASKS_PER_CHILD on both sides (default: the setting)",
    )
    args = parser.parse_args()

    base_env = {
        "TRAINLAB_TORCH_THREADS": "1",
        "TRAINLAB_WORKER_CONCURRENCY": "1",
        "TRAINLAB_SUBMIT_RATE_PER_MINUTE": "100000",
    }
    if args.max_tasks_per_child:
        base_env["TRAINLAB_WORKER_MAX_TASKS_PER_CHILD"] = str(args.max_tasks_per_child)
    from core.settings import Settings

    max_tasks_per_child = args.max_tasks_per_child or Settings().worker_max_tasks_per_child
    ours, celery_side = Phase(), Phase()
    verdict: dict[str, Any] = {}
    started_all = time.monotonic()
    with ExitStack() as stack:
        trainlab_env = {**base_env, **stack.enter_context(backend_env(args.backend))}
        from tests.services import running_service

        data_dir = Path(tempfile.mkdtemp(prefix="trainlab-load-"))
        bench_dir = Path(tempfile.mkdtemp(prefix="trainlab-load-ping-"))
        stack.callback(shutil.rmtree, bench_dir, True)
        log(f"backend {args.backend}: starting the API and {args.workers} workers ({data_dir})")

        # ---- trainlab -----------------------------------------------------------------------
        with running_service(trainlab_env, data_dir, workers=args.workers) as service:
            run = TrainlabRun(service, args.threads)
            try:
                warm_ids = run.warm_up(args.workers)
                log(f"warm-up: {len(warm_ids)} experiments; submitting {args.n} from {args.threads} threads")
                t0 = time.monotonic()
                items = run.submit("load", list(range(args.n)))
                ours.submit_wall = time.monotonic() - t0
                accepted = [it for it in items if it.id is not None]
                refused = [it for it in items if it.id is None]
                log(f"submitted in {ours.submit_wall:.1f} s: {len(accepted)} accepted, {len(refused)} refused")
                for it in refused[:5]:
                    log(f"  refused #{it.index} after {it.tries} tries: {it.error}")
                all_final = run.wait_all_final(t0 + args.timeout)
                ours.wall = time.monotonic() - t0
                log(f"all final: {all_final} after {ours.wall:.1f} s")
                idle_ids, ours.idle = run.idle_probes(args.idle_probes) if all_final else ([], [])

                # ---- verification from the database, through the API ------------------------
                rows = run.all_rows()
                listed = Counter(int(r["id"]) for r in rows)
                expected_ids = [it.id for it in accepted] + warm_ids + idle_ids
                id_keys = Counter(it.id for it in accepted)
                load_ids = sorted(id_keys)
                details = run.details(load_ids)
                missing = sorted(set(expected_ids) - set(listed))
                extra = sorted(set(listed) - set(expected_ids))
                repeated_rows = sorted(i for i, c in listed.items() if c > 1)
                shared_ids = sorted(i for i, c in id_keys.items() if c > 1)  # two keys -> one id
                statuses = Counter(str(d.get("status")) for d in details.values())
                attempts = Counter(int(d.get("attempts") or 0) for d in details.values())
                run_twice = sorted(i for i, d in details.items() if int(d.get("attempts") or 0) > 1)
                stuck = sorted(i for i, d in details.items() if d.get("status") not in FINAL)
                not_succeeded = sorted(i for i, d in details.items() if d.get("status") != "succeeded")
                names = Counter(r["name"] for r in rows)
                dup_names = sorted(n for n, c in names.items() if c > 1)
                for d in details.values():
                    if d.get("started_at") and d.get("created_at"):
                        ours.latencies.append(parse_time(d["started_at"]) - parse_time(d["created_at"]))
                finished = [parse_time(d["finished_at"]) for d in details.values() if d.get("finished_at")]
                created = [parse_time(d["created_at"]) for d in details.values() if d.get("created_at")]
                ours.done = statuses.get("succeeded", 0)
                span = (max(finished) - min(created)) if finished and created else float("nan")
                offsets = sorted(c - min(created) for c in created) if created else []
                logs = worker_log_counts(service.logs)
                verdict = {
                    "submitted": len(items),
                    "accepted": len(accepted),
                    "refused": len(refused),
                    "rows listed": len(rows),
                    "expected rows (load + warm-up + idle)": len(expected_ids),
                    "missing (accepted, no row)": len(missing),
                    "stuck (not final at timeout)": len(stuck),
                    "extra rows (no submission made them)": len(extra),
                    "repeated ids in the listing": len(repeated_rows),
                    "ids returned for two keys": len(shared_ids),
                    "duplicate names": len(dup_names),
                    "statuses": dict(statuses),
                    "attempts": dict(sorted(attempts.items())),
                    "worker log: messages received": logs.get("received", 0),
                    "worker log: deliveries not claimed": logs.get("not_claimed", 0),
                    "worker log: re-queue/redispatch lines": logs.get("requeued", 0),
                    "worker log: tracebacks": logs.get("tracebacks", 0),
                }
                ours.wall = ours.wall if all_final else float("nan")
                throughput_ours = ours.done / span if span == span and span > 0 else float("nan")
                for label, ids in (
                    ("missing", missing),
                    ("stuck", stuck),
                    ("extra", extra),
                    ("run twice", run_twice),
                    ("not succeeded", not_succeeded),
                    ("ids for two keys", shared_ids),
                ):
                    for experiment_id in ids[:10]:
                        d = details.get(experiment_id) or next((r for r in rows if r["id"] == experiment_id), {})
                        log(
                            f"  {label}: id {experiment_id} status={d.get('status')} attempts={d.get('attempts')} "
                            f"worker={d.get('worker')} error={d.get('error')!r} name={d.get('name')}"
                        )
                if stuck or not_succeeded or run_twice or logs.get("tracebacks"):
                    for path in sorted(service.logs.glob("*.log")):
                        tail = path.read_text(errors="replace")[-3000:]
                        print(f"----- {path.name} (tail) -----\n{tail}", flush=True)
            finally:
                run.close()
        log("service stopped")

        # ---- the bare Celery baseline -------------------------------------------------------
        broker_env, sink = stack.enter_context(baseline_broker(args.backend, trainlab_env, bench_dir))
        ping_env = {**base_env, **broker_env}
        if args.backend == "lab":
            ping_env["TRAINLAB_BROKER_URL"] = broker_env["TRAINLAB_BROKER_URL"]
        baseline = Baseline(args.workers, ping_env, bench_dir, sink)
        baseline.start()
        try:
            where = f"Redis {sink}" if args.backend == "lab" else "the filesystem broker"
            log(f"baseline: {args.workers} bare celery workers on {where}")
            baseline.warm_up()
            # replay: the same arrival times as the experiments (as many pings as accepted)
            replay = args.baseline_arrivals == "replay" and offsets
            ping_offsets = offsets if replay else [0.0] * (len(offsets) or args.n)
            n_pings = len(ping_offsets)
            t0 = time.monotonic()
            celery_side.submit_wall = baseline.run(ping_offsets, args.threads)
            got = baseline.wait_for(set(range(n_pings)), t0 + args.timeout)
            celery_side.wall = time.monotonic() - t0
            celery_side.done = sum(1 for i in range(n_pings) if i in got)
            ping_twice = sum(1 for i in range(n_pings) if len(got.get(i, [])) > 1)
            starts = []
            for i in range(n_pings):
                if i in got:
                    _, sent_at, start, _ = got[i][0]
                    celery_side.latencies.append(start - sent_at)
                    starts.append((sent_at, start))
            celery_span = (max(s for _, s in starts) - min(t for t, _ in starts)) if starts else float("nan")
            throughput_celery = celery_side.done / celery_span if celery_span > 0 else float("nan")
            log(f"baseline: {celery_side.done}/{n_pings} pings ran ({ping_twice} twice) in {celery_side.wall:.1f} s")
            celery_side.idle = baseline.idle_probes(args.idle_probes)
        finally:
            baseline.stop()

    total_wall = time.monotonic() - started_all
    lost = verdict["missing (accepted, no row)"] + verdict["stuck (not final at timeout)"]
    duplicated = (
        verdict["extra rows (no submission made them)"]
        + verdict["repeated ids in the listing"]
        + verdict["ids returned for two keys"]
    )
    twice = len(run_twice)

    # ---- report -------------------------------------------------------------------------------
    print()
    print(
        f"backend={args.backend} n={args.n} workers={args.workers} threads={args.threads} "
        f"baseline_arrivals={args.baseline_arrivals} max_tasks_per_child={max_tasks_per_child} "
        f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}"
    )
    print("\nverification (from the API):")
    for key, value in verdict.items():
        print(f"  {key:<42} {value}")
    w = 30
    print(f"\n| {'':<{w}} | {'trainlab':>12} | {'bare celery':>12} | {'ratio':>7} |")
    print(f"|{'-' * (w + 2)}|{'-' * 14}|{'-' * 14}|{'-' * 9}|")

    def row(label: str, a: float, b: float, unit: str = "s") -> None:
        ratio = a / b if b and b == b and a == a else float("nan")
        print(f"| {label:<{w}} | {fmt(a, unit):>12} | {fmt(b, unit):>12} | {fmt(ratio, ''):>7} |")

    row("completed", ours.done, celery_side.done, "n")
    row("submit/send wall", ours.submit_wall, celery_side.submit_wall)
    row("wall (first submit->all done)", ours.wall, celery_side.wall)
    row("throughput (per s)", throughput_ours, throughput_celery, "")
    for q in (50, 95):
        row(f"queue->start p{q}", percentile(ours.latencies, q), percentile(celery_side.latencies, q))
    row("queue->start max", max(ours.latencies, default=float("nan")), max(celery_side.latencies, default=float("nan")))
    row("idle queue->start p50", percentile(ours.idle, 50), percentile(celery_side.idle, 50))
    row("idle queue->start max", max(ours.idle, default=float("nan")), max(celery_side.idle, default=float("nan")))
    print(f"\ntotal wall time of the benchmark: {total_wall:.1f} s")
    t50, t95 = percentile(ours.latencies, 50), percentile(ours.latencies, 95)
    c50, c95 = percentile(celery_side.latencies, 50), percentile(celery_side.latencies, 95)
    ratio = t50 / c50 if c50 > 0 else float("nan")
    print(
        f"trainlab_p50={t50:.3f}s trainlab_p95={t95:.3f}s celery_p50={c50:.3f}s celery_p95={c95:.3f}s "
        f"ratio_p50={ratio:.2f} lost={lost} duplicated={duplicated} run_twice={twice}",
        flush=True,
    )
    return 1 if lost or duplicated or twice or verdict["statuses"].keys() - {"succeeded"} else 0


if __name__ == "__main__":
    sys.exit(main())

"""Request paths against the size of the database: do they stay constant-time?

For each size N it makes a fresh database (embedded SQLite by default, or a throwaway PostgreSQL
database with --postgres) and seeds N experiments over 20 users (the first owns half), submitted
over the last year: 98 % finished, 8 running (a lab's worker slots do not grow with its
database), the rest queued; and 10 metric rows per experiment, through the project's own models
in bulk (multi-row INSERTs of 5,000 experiments and their 50,000 metric rows, one transaction
each; the database's counter triggers fire as for any write), plus one run with a 10,000-step
history (5 series, 50,000 rows). Then, in process (FastAPI's TestClient, no network), it times
each request path in --rounds rounds over every size in turn, in alternating order (a few
seconds each, so a busy moment of a shared machine falls on all sizes alike), --repeats calls a
round after warm-up calls (the 50,000 rows: one), and takes the median of all of them:

  POST /experiments, GET /experiments (a page of 50), GET /experiments/{id}, GET /metrics
  (Prometheus, after a first scrape has folded the seeding), and one 10,000-point history
  (`/metrics/series?split=validation&name=loss`) and the same run's 50,000 rows in the row form.

Last line: the slope of each path (median time at the largest N over the smallest); goal <= 1.5.

    .venv/bin/python benchmarks/scale.py [--sizes 1000,10000,100000] [--rounds 10] [--repeats 3] [--postgres]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SPEC = {"name": "scale", "data": {"source": "builtin/iris"}, "train": {"epochs": 3}}
USERS = 20
HISTORY_STEPS = 10_000


BATCH = 5_000  # experiments per transaction while seeding (their metric rows go with them)
RUNNING = 8  # experiments running at any time: the lab's worker slots
FINALS = ("succeeded", "succeeded", "succeeded", "failed", "cancelled")
HISTORY_SERIES = (
    ("train", "loss"),
    ("train", "accuracy"),
    ("validation", "loss"),
    ("validation", "accuracy"),
    ("train", "lr"),
)


def experiment_row(i: int, n: int, owner: int, now: datetime) -> dict[str, object]:
    """Experiment number i of n as the run state machine leaves it: submitted over the last
    year, oldest first; 98 % finished (1 in 5 failed or cancelled), RUNNING running (as many as
    the lab's workers run at once, whatever N), the rest of the 2 % queued."""
    created = now - timedelta(days=365) * (n - i) / n - timedelta(minutes=2)
    row: dict[str, object] = {
        "name": f"exp-{i}",
        "kind": "train",
        "spec": SPEC,
        "owner_id": owner,
        "status": "queued",
        "priority": "normal",
        "created_at": created,
        "dispatched_at": created,
    }
    running = i % 100 == 0 and i < 100 * RUNNING
    if i % 50 != 0 or running:  # claimed: running, or finished
        started = created + timedelta(seconds=1 + i % 7)
        worker = f"bench/{i // 100}/1"
        row.update(status="running", started_at=started, heartbeat_at=started, worker=worker, attempts=1)
        if i % 50 != 0:
            status = FINALS[i % len(FINALS)]
            row.update(status=status, finished_at=started + timedelta(seconds=20 + i % 600), worker=None)
            if status != "succeeded":
                row.update(error=status, error_reason="error" if status == "failed" else "cancelled")
    return row


def seed(n: int) -> tuple[str, int]:
    """N experiments and their metric rows through the project's models, in bulk: one
    multi-row INSERT of experiments per batch of 5,000 (RETURNING their ids), then their
    10 metric rows each, one transaction per batch; the database's triggers log the counters'
    changes as for any other write. Returns (a token of the first user, the id of the run with
    the long history)."""
    from sqlalchemy import insert, select

    from core.db import session_scope
    from core.models import Experiment, Metric, User, utcnow
    from trainlab.admin import create_user

    tokens = [create_user(f"user{i}", False) for i in range(USERS)]
    with session_scope() as session:
        user_ids = list(session.scalars(select(User.id).order_by(User.id)))
    now = utcnow()
    add_experiments = insert(Experiment).returning(Experiment.id, sort_by_parameter_order=True)
    for first in range(0, n, BATCH):
        rows = [
            experiment_row(i, n, user_ids[0] if i % 2 == 0 else user_ids[1 + i % (USERS - 1)], now)
            for i in range(first, min(n, first + BATCH))
        ]
        with session_scope() as session:
            ids = list(session.scalars(add_experiments, rows))
            session.execute(
                insert(Metric),
                [
                    {"experiment_id": e, "step": step, "split": split, "name": "loss", "value": 1.0 / step}
                    for e in ids
                    for step in range(1, 6)
                    for split in ("train", "validation")
                ],
            )
            session.commit()
    with session_scope() as session:
        history = session.scalars(
            add_experiments,
            [{"name": "long-run", "kind": "train", "spec": SPEC, "owner_id": user_ids[0], "status": "queued"}],
        ).one()
        session.execute(
            insert(Metric),
            [
                {"experiment_id": history, "step": step, "split": split, "name": name, "value": 1.0 / step}
                for step in range(1, HISTORY_STEPS + 1)
                for split, name in HISTORY_SERIES
            ],
        )
        session.commit()
    return tokens[0], history


def timed_ms(call: Callable[[], object], repeats: int, warm: int = 2) -> list[float]:
    for _ in range(warm):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


@contextmanager
def database(postgres: bool, folder: Path) -> Iterator[str]:
    if postgres:
        from tests.services import throwaway_postgres

        with throwaway_postgres() as url:
            yield url
    else:
        yield f"sqlite:///{folder / 'trainlab.db'}"


class Size:
    """One seeded database of N experiments; `use()` points the process's settings at it."""

    def __init__(self, n: int, folder: Path, url: str) -> None:
        self.n, self.folder, self.url = n, folder, url
        self.token, self.history_id, self.seconds = "", 0, 0.0
        self.samples: dict[str, list[float]] = {}

    def use(self) -> None:
        from tests.conftest import reset_caches

        reset_caches()
        os.environ.update(
            TRAINLAB_DATA_DIR=str(self.folder / "data"),
            TRAINLAB_DATABASE_URL=self.url,
            TRAINLAB_SUBMIT_RATE_PER_MINUTE="1000000",
            TRAINLAB_MAX_QUEUED_PER_USER="0",
        )

    def seed(self, postgres: bool) -> None:
        from core.migrate import upgrade_database

        self.use()
        upgrade_database(self.url)
        started = time.perf_counter()
        self.token, self.history_id = seed(self.n)
        self.seconds = time.perf_counter() - started
        if postgres:
            # What the first scrape or reconciler pass and then autovacuum do on a live server:
            # fold the seeding's logged changes into the counters, then reclaim the deleted change
            # rows (readers of experiment_changes would walk them until then) and gather statistics.
            from core.db import get_engine, session_scope
            from core.repositories import MonitoringRepository

            with session_scope() as session:
                MonitoringRepository(session).fold_changes()
                session.commit()
            with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        print(f"N={self.n:>7,}: seeded in {self.seconds:.0f} s", flush=True)

    def measure(self, repeats: int) -> None:
        """One round of every request path, `repeats` timed calls each (after warm-up calls)."""
        from fastapi.testclient import TestClient

        from api.main import create_app

        self.use()
        with TestClient(create_app()) as client:
            client.headers["Authorization"] = f"Bearer {self.token}"
            client.get("/metrics")  # the first scrape folds the seeding's changes (the reconciler would)
            one = client.get("/api/v1/experiments", params={"limit": 1}).json()["items"][0]["id"]
            history = f"/api/v1/experiments/{self.history_id}/metrics"
            params = {"split": "validation", "name": "loss"}
            points = client.get(f"{history}/series", params=params).json()
            assert len(points["series"][0]["steps"]) == HISTORY_STEPS
            calls: dict[str, tuple[Callable[[], object], int]] = {
                "POST": (lambda: client.post("/api/v1/experiments", json=SPEC), repeats),
                "list": (lambda: client.get("/api/v1/experiments"), repeats),
                "get": (lambda: client.get(f"/api/v1/experiments/{one}"), repeats),
                "/metrics": (lambda: client.get("/metrics"), repeats),
                "history 10k": (lambda: client.get(f"{history}/series", params=params), repeats),
                "rows 50k": (lambda: client.get(history), max(1, repeats // 3)),
            }
            for path, (call, times) in calls.items():
                self.samples.setdefault(path, []).extend(timed_ms(call, times, warm=1 if times < repeats else 2))

    def medians(self) -> dict[str, float]:
        return {path: statistics.median(times) for path, times in self.samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated numbers of experiments")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each path per round")
    parser.add_argument("--rounds", type=int, default=10, help="rounds over every size, interleaved")
    parser.add_argument(
        "--postgres", action="store_true", help="a throwaway PostgreSQL database (TRAINLAB_TEST_PG_ADMIN)"
    )
    args = parser.parse_args()
    numbers = sorted(int(s) for s in args.sizes.split(","))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    backend = "PostgreSQL" if args.postgres else "SQLite (embedded default)"
    print(
        f"{backend}; {USERS} users; 10 metric rows per experiment; one {HISTORY_STEPS:,}-step run; "
        f"median of {args.rounds} interleaved rounds x {args.repeats} calls (ms)"
    )
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        sizes = []
        for n in numbers:
            folder = Path(tmp) / str(n)
            folder.mkdir()
            sizes.append(Size(n, folder, stack.enter_context(database(args.postgres, folder))))
        for size in sizes:
            size.seed(args.postgres)
        # Rounds over every size in turn: a slow moment of the shared machine hits all sizes alike.
        for round_ in range(args.rounds):
            for size in sizes if round_ % 2 == 0 else reversed(sizes):  # each size first as often
                size.measure(args.repeats)
        from tests.conftest import reset_caches

        reset_caches()
        table = {size.n: size.medians() for size in sizes}
    paths = list(table[numbers[0]])
    print("| path | " + " | ".join(f"N={n:,}" for n in numbers) + " | slope |")
    print("| --- | " + " | ".join("---" for _ in numbers) + " | --- |")
    slopes = {p: table[numbers[-1]][p] / table[numbers[0]][p] for p in paths}
    for p in paths:
        print(f"| {p} | " + " | ".join(f"{table[n][p]:.1f}" for n in numbers) + f" | {slopes[p]:.2f} |")
    print(
        f"slope N={numbers[-1]:,}/N={numbers[0]:,}: "
        + " ".join(f"{p}={s:.2f}" for p, s in slopes.items())
        + f" worst={max(slopes.values()):.2f} (goal <= 1.5)"
    )


if __name__ == "__main__":
    main()

"""Request paths against the size of the database: do they stay constant-time?

For each size N it makes a fresh database (embedded SQLite by default, or a throwaway PostgreSQL
database with --postgres), seeds N experiments (98 % finished, the rest queued or running, over
20 users; the first user owns half) and 10 metric rows per experiment through the project's own
repositories, plus one run with a 10,000-step history (5 series, 50,000 rows). Then, in process
(FastAPI's TestClient, no network), it times the median of --repeats calls of each request path:

  POST /experiments, GET /experiments (a page of 50), GET /experiments/{id}, GET /metrics
  (Prometheus, after a first scrape has folded the seeding), and one 10,000-point history
  (`/metrics/series?split=validation&name=loss`) and the same run's 50,000 rows in the row form.

Last line: the slope of each path (median time at the largest N over the smallest); goal <= 1.5.

    .venv/bin/python benchmarks/scale.py [--sizes 1000,10000,100000] [--repeats 15] [--postgres]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SPEC = {"name": "scale", "data": {"source": "builtin/iris"}, "train": {"epochs": 3}}
USERS = 20
HISTORY_STEPS = 10_000


def seed(n: int) -> tuple[str, int]:
    """N experiments and their metric rows through the repositories; returns (a token of the
    first user, the id of the run with the long history)."""
    from core.db import session_scope
    from core.models import Status
    from core.repositories import ExperimentRepository, MetricRepository, RunRepository
    from trainlab.admin import create_user

    tokens = [create_user(f"user{i}", False) for i in range(USERS)]
    with session_scope() as session:
        from core.models import User

        user_ids = [u.id for u in session.query(User).order_by(User.id)]
        repo, runs, metrics = ExperimentRepository(session), RunRepository(session), MetricRepository(session)
        finals = (Status.succeeded, Status.succeeded, Status.succeeded, Status.failed, Status.cancelled)
        for i in range(n):
            owner = user_ids[0] if i % 2 == 0 else user_ids[1 + i % (USERS - 1)]
            experiment = repo.create(name=f"exp-{i}", kind="train", spec=SPEC, owner_id=owner)
            if i % 50 != 0:  # 98 % finished
                runs.claim(experiment.id, "bench/1/1")
                runs.finish(experiment.id, finals[i % len(finals)])
            elif i % 100 == 0:
                runs.claim(experiment.id, "bench/1/1")
            metrics.add_many(
                experiment.id,
                [(step, split, "loss", 1.0 / step) for step in range(1, 6) for split in ("train", "validation")],
            )
            if i % 5000 == 4999:
                session.commit()
        history = repo.create(name="long-run", kind="train", spec=SPEC, owner_id=user_ids[0])
        rows = [
            (step, split, name, 1.0 / step)
            for step in range(1, HISTORY_STEPS + 1)
            for split, name in (
                ("train", "loss"),
                ("train", "accuracy"),
                ("validation", "loss"),
                ("validation", "accuracy"),
                ("train", "lr"),
            )
        ]
        for start in range(0, len(rows), 5000):
            metrics.add_many(history.id, rows[start : start + 5000])
        session.commit()
    return tokens[0], history.id


def median_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


@contextmanager
def database(postgres: bool, folder: Path) -> Iterator[str]:
    if postgres:
        from tests.services import throwaway_postgres

        with throwaway_postgres() as url:
            yield url
    else:
        yield f"sqlite:///{folder / 'trainlab.db'}"


def measure(n: int, repeats: int, postgres: bool) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from core.migrate import upgrade_database
    from tests.conftest import reset_caches

    with tempfile.TemporaryDirectory() as tmp, database(postgres, Path(tmp)) as url:
        os.environ.update(
            TRAINLAB_DATA_DIR=str(Path(tmp) / "data"),
            TRAINLAB_DATABASE_URL=url,
            TRAINLAB_SUBMIT_RATE_PER_MINUTE="1000000",
            TRAINLAB_MAX_QUEUED_PER_USER="0",
        )
        reset_caches()
        upgrade_database(url)
        started = time.perf_counter()
        token, history_id = seed(n)
        seeded = time.perf_counter() - started
        if postgres:
            from core.db import get_engine

            with get_engine().connect() as conn:  # statistics, as autovacuum keeps them
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
        from api.main import create_app

        with TestClient(create_app()) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            client.get("/metrics")  # the first scrape folds the seeding's changes (the reconciler would)
            one = client.get("/api/v1/experiments", params={"limit": 1}).json()["items"][0]["id"]
            history = f"/api/v1/experiments/{history_id}/metrics"
            points = client.get(f"{history}/series", params={"split": "validation", "name": "loss"}).json()
            assert len(points["series"][0]["steps"]) == HISTORY_STEPS
            results = {
                "POST": median_ms(lambda: client.post("/api/v1/experiments", json=SPEC), repeats),
                "list": median_ms(lambda: client.get("/api/v1/experiments"), repeats),
                "get": median_ms(lambda: client.get(f"/api/v1/experiments/{one}"), repeats),
                "/metrics": median_ms(lambda: client.get("/metrics"), repeats),
                "history 10k": median_ms(
                    lambda: client.get(f"{history}/series", params={"split": "validation", "name": "loss"}), repeats
                ),
                "rows 50k": median_ms(lambda: client.get(history), max(3, repeats // 3)),
            }
        reset_caches()
    print(f"N={n:>7,}: seeded in {seeded:.0f} s; " + "  ".join(f"{k} {v:.1f} ms" for k, v in results.items()))
    sys.stdout.flush()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated numbers of experiments")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--postgres", action="store_true", help="a throwaway PostgreSQL database (TRAINLAB_TEST_PG_ADMIN)"
    )
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    backend = "PostgreSQL" if args.postgres else "SQLite (embedded default)"
    print(
        f"{backend}; {USERS} users; 10 metric rows per experiment; one {HISTORY_STEPS:,}-step run; "
        f"median of {args.repeats} (ms)"
    )
    table = {n: measure(n, args.repeats, args.postgres) for n in sizes}
    paths = list(table[sizes[0]])
    print("| path | " + " | ".join(f"N={n:,}" for n in sizes) + " | slope |")
    print("| --- | " + " | ".join("---" for _ in sizes) + " | --- |")
    slopes = {p: table[sizes[-1]][p] / table[sizes[0]][p] for p in paths}
    for p in paths:
        print(f"| {p} | " + " | ".join(f"{table[n][p]:.1f}" for n in sizes) + f" | {slopes[p]:.2f} |")
    print(
        f"slope N={sizes[-1]:,}/N={sizes[0]:,}: "
        + " ".join(f"{p}={s:.2f}" for p, s in slopes.items())
        + f" worst={max(slopes.values()):.2f} (goal <= 1.5)"
    )


if __name__ == "__main__":
    main()

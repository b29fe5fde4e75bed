"""A bounded fault-injection soak of the lab-server set-up: nothing lost, stuck, duplicated or
failed by the infrastructure.

Starts PostgreSQL-backed trainlab (a throwaway database, a Redis database number of its own,
the API and 2 workers, fast lease/reconcile settings as in the fault tests), submits a mix of
experiments (train runs, k-fold, a search, long runs), and for `--seconds` injects one fault
every few seconds, drawn with `--seed` from a shuffled deck that holds every kind: SIGKILL of a
worker (a replacement starts), SIGTERM of a worker (graceful: it re-queues its runs; a
replacement starts), a flushed Redis database, every database connection killed, an API restart.
Then it waits (bounded by `--timeout`) for every experiment to be final and checks through the
API:

- lost: accepted submissions missing from the database;
- stuck: not final at the deadline;
- duplicated: a (step, split, name) metric row stored twice, or a run that trained twice at once;
- failed by infrastructure: failed for a reason that is not the user's (`error`, `worker_lost`).

Last line: ``lost=0 stuck=0 duplicated=0 failed_by_infrastructure=0 experiments=N faults=...``;
exit status 1 unless the four counts are 0.

Usage:
    .venv/bin/python benchmarks/soak.py [--experiments 30] [--seconds 90] [--timeout 600] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.db import make_engine  # noqa: E402
from tests.services import Service, running_service, throwaway_postgres, throwaway_redis  # noqa: E402

FAST = {
    "TRAINLAB_LEASE_SECONDS": "4",
    "TRAINLAB_HEARTBEAT_SECONDS": "1",
    "TRAINLAB_RECONCILE_SECONDS": "1",
    "TRAINLAB_REDISPATCH_AFTER_SECONDS": "3",
    "TRAINLAB_TORCH_THREADS": "1",
    "TRAINLAB_MAX_ATTEMPTS": "6",
    "TRAINLAB_SUBMIT_RATE_PER_MINUTE": "1000",
}
FINAL = ("succeeded", "failed", "cancelled", "pruned")
INFRASTRUCTURE_REASONS = ("error", "worker_lost")
DECK = ["sigkill"] * 4 + ["sigterm"] * 2 + ["connection_kill"] * 2 + ["redis_flush", "api_restart"]


def specs(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """A lab's mix: mostly short runs, some long ones, k-folds and a search."""
    moons = {"source": "synthetic/moons", "options": {"n_samples": 2000, "noise": 0.3}}
    out: list[dict[str, Any]] = [
        {
            "kind": "search",
            "name": "soak-search",
            "base": {"kind": "analytic", "function": "rosenbrock"},
            "space": {"h1": {"type": "float", "low": -2, "high": 2}, "h2": {"type": "float", "low": -1, "high": 3}},
            "method": "tpe",
            "trials": 8,
            "parallel": 2,
        },
        {"name": "soak-kfold", "data": {**moons, "split": {"folds": 3}}, "train": {"epochs": 6}},
    ]
    while len(out) < n:
        epochs = rng.choice([5, 8, 12, 30])
        out.append({"name": f"soak-{len(out)}", "seed": len(out), "data": moons, "train": {"epochs": epochs}})
    return out


class Faults:
    """The faults the soak injects, counted."""

    def __init__(self, service: Service, redis_url: str, database_url: str, rng: random.Random) -> None:
        self.service, self.redis_url, self.database_url, self.rng = service, redis_url, database_url, rng
        self.counts: Counter[str] = Counter()
        self.deck: list[str] = []

    def _live_worker(self) -> Any:
        live = [p for p in self.service.workers if p.poll() is None]
        return self.rng.choice(live) if live else None

    def sigkill(self) -> None:
        if (proc := self._live_worker()) is not None:
            self.service.kill_worker(proc, signal.SIGKILL)
            self.service.start_worker(f"after-kill-{self.counts['sigkill']}")

    def sigterm(self) -> None:
        if (proc := self._live_worker()) is not None:
            self.service.kill_worker(proc, signal.SIGTERM)
            self.service.start_worker(f"after-term-{self.counts['sigterm']}")

    def redis_flush(self) -> None:
        redis.Redis.from_url(self.redis_url).flushdb()

    def connection_kill(self) -> None:
        engine = make_engine(self.database_url)
        try:
            with engine.connect() as connection:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
        finally:
            engine.dispose()

    def api_restart(self) -> None:
        self.service.restart_api()

    def inject(self) -> str:
        """The next fault from a shuffled deck holding every kind (SIGKILLs the most often), so
        even a short soak injects each kind at least once."""
        if not self.deck:
            self.deck = [*DECK]
            self.rng.shuffle(self.deck)
        name = self.deck.pop()
        getattr(self, name)()
        self.counts[name] += 1
        return name


def verify(service: Service, ids: list[int], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    rows: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for experiment_id in ids:
            if rows.get(experiment_id, {}).get("status") in FINAL:
                continue
            response = service.http.get(f"/api/v1/experiments/{experiment_id}")
            if response.status_code == 200:
                rows[experiment_id] = response.json()
        if all(rows.get(i, {}).get("status") in FINAL for i in ids):
            break
        time.sleep(1)
    lost = sum(1 for i in ids if i not in rows)
    stuck = sum(1 for i in ids if i in rows and rows[i]["status"] not in FINAL)
    duplicated = 0
    infrastructure = 0
    everything = [*rows.values()]
    for row in rows.values():
        everything += [service.http.get(f"/api/v1/experiments/{c['id']}").json() for c in row["children"]]
    for row in everything:
        metrics = service.http.get(f"/api/v1/experiments/{row['id']}/metrics").json()
        keys = [(m["step"], m["split"], m["name"]) for m in metrics]
        duplicated += len(keys) - len(set(keys))
        if row["status"] == "failed" and row.get("error_reason") in INFRASTRUCTURE_REASONS:
            infrastructure += 1
            print(f"  #{row['id']} failed ({row['error_reason']}): {row['error']}")
    statuses = Counter(r["status"] for r in rows.values())
    print(f"top-level: {dict(statuses)}; with children: {len(everything)} experiments checked")
    return {"lost": lost, "stuck": stuck, "duplicated": duplicated, "failed_by_infrastructure": infrastructure}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=90, help="How long faults are injected.")
    parser.add_argument("--every", type=float, default=5, help="Seconds between two faults.")
    parser.add_argument("--timeout", type=float, default=600, help="Wait for the end after the faults.")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with throwaway_postgres() as pg, throwaway_redis() as redis_url:
        env = {"TRAINLAB_DATABASE_URL": pg, "TRAINLAB_BROKER_URL": redis_url, **FAST}
        with running_service(env, Path(tempfile.mkdtemp(prefix="trainlab-soak-")), workers=2) as service:
            ids = []
            for spec in specs(args.experiments, rng):
                response = service.http.post("/api/v1/experiments", json=spec)
                assert response.status_code == 201, response.text
                ids.append(response.json()["id"])
            faults = Faults(service, redis_url, pg, rng)
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                time.sleep(args.every)
                print(f"fault: {faults.inject()}", flush=True)
            result = verify(service, ids, args.timeout)
    summary = " ".join(f"{k}={v}" for k, v in result.items())
    injected = ",".join(f"{k}:{v}" for k, v in sorted(faults.counts.items()))
    print(f"{summary} experiments={len(ids)} faults={injected}")
    return 0 if not any(result.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

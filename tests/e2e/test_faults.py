"""Fault injection with real processes (loopback only, bounded): nothing is lost or run twice,
and every experiment ends in the right final state."""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.services import Service, running_service, throwaway_postgres, throwaway_redis

pytestmark = pytest.mark.e2e

FAST_RECOVERY = {
    "TRAINLAB_LEASE_SECONDS": "4",
    "TRAINLAB_HEARTBEAT_SECONDS": "1",
    "TRAINLAB_RECONCILE_SECONDS": "1",
    "TRAINLAB_REDISPATCH_AFTER_SECONDS": "2",
    "TRAINLAB_TORCH_THREADS": "1",
    "TRAINLAB_FANOUT_WINDOW": "2",
}

LONG = {
    "name": "long",
    "seed": 11,
    "data": {"source": "synthetic/moons", "options": {"n_samples": 6000, "noise": 0.3}},
    "model": {"hidden": [64, 64], "dropout": 0.1},
    "train": {"epochs": 40, "batch_size": 32},
}
TINY = {"name": "tiny", "data": {"source": "builtin/iris"}, "train": {"epochs": 3}}


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Service, str]]:
    with throwaway_postgres() as pg, throwaway_redis() as redis_url:
        env = {"TRAINLAB_DATABASE_URL": pg, "TRAINLAB_BROKER_URL": redis_url, **FAST_RECOVERY}
        with running_service(env, Path(tempfile.mkdtemp(prefix="trainlab-faults-")), workers=2) as service:
            yield service, redis_url


def wait_epochs(service: Service, experiment_id: int, epochs: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = service.http.get(f"/api/v1/experiments/{experiment_id}/metrics", params={"name": "loss"}).json()
        if len({r["step"] for r in rows}) >= epochs:
            return service.http.get(f"/api/v1/experiments/{experiment_id}").json()
        time.sleep(0.2)
    raise AssertionError(f"experiment {experiment_id} did not reach epoch {epochs}")


def assert_unique_metrics(service: Service, experiment_id: int, epochs: int) -> None:
    rows = service.http.get(f"/api/v1/experiments/{experiment_id}/metrics").json()
    keys = [(r["step"], r["split"], r["name"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert sorted({r["step"] for r in rows}) == list(range(1, epochs + 1))


def test_sigkill_mid_run_resumes_on_another_worker_with_the_same_result(lab) -> None:
    service, _ = lab
    reference = service.http.post("/api/v1/experiments", json=LONG).json()
    reference = service.wait_for(reference["id"], ("succeeded", "failed"), timeout=240)
    victim = service.http.post("/api/v1/experiments", json=LONG).json()
    running = wait_epochs(service, victim["id"], 5)
    dead = service.worker_running(running)
    service.kill_worker(dead, signal.SIGKILL)
    service.start_worker("replacement")  # keep two workers for the rest of the module
    final = service.wait_for(victim["id"], ("succeeded", "failed", "cancelled"), timeout=240)
    assert final["status"] == "succeeded", final["error"]
    assert final["attempts"] == 2 and final["worker"] != running["worker"]
    assert final["summary"]["resumed_from_epoch"] >= 4  # from its checkpoint, not from scratch
    assert_unique_metrics(service, victim["id"], final["summary"]["epochs_run"])
    assert final["summary"]["test"] == reference["summary"]["test"]
    assert final["summary"]["final"] == reference["summary"]["final"]


def test_sigterm_requeues_and_the_run_completes(lab) -> None:
    service, _ = lab
    created = service.http.post("/api/v1/experiments", json={**LONG, "seed": 12}).json()
    running = wait_epochs(service, created["id"], 3)
    worker = service.worker_running(running)
    service.kill_worker(worker, signal.SIGTERM)
    worker.wait(timeout=60)
    service.start_worker("after-sigterm")
    final = service.wait_for(created["id"], ("succeeded", "failed", "cancelled"), timeout=240)
    assert final["status"] == "succeeded", final["error"]
    logs = "\n".join(service.log(p.name) for p in service.logs.glob("worker-*.log"))
    assert final["attempts"] == 2 and final["losses"] == 0 and final["error"] is None, logs
    assert final["summary"]["resumed_from_epoch"] >= 3
    assert_unique_metrics(service, created["id"], final["summary"]["epochs_run"])


def test_queued_experiments_survive_a_flushed_redis(lab) -> None:
    service, redis_url = lab
    # Stop consuming: pause every worker by filling them with long runs, then flush the queue.
    blockers = [service.http.post("/api/v1/experiments", json={**LONG, "seed": 20 + i}).json() for i in range(2)]
    for blocker in blockers:
        service.wait_for(blocker["id"], ("running",), timeout=60)
    queued = [service.http.post("/api/v1/experiments", json={**TINY, "seed": i}).json() for i in range(3)]
    redis.Redis.from_url(redis_url).flushdb()  # Redis restarted without persistence
    for blocker in blockers:
        service.http.post(f"/api/v1/experiments/{blocker['id']}/cancel")
    for experiment in queued:
        final = service.wait_for(experiment["id"], ("succeeded", "failed", "cancelled"), timeout=120)
        assert final["status"] == "succeeded" and final["attempts"] == 1


def test_api_restart_during_a_burst_loses_no_201(lab) -> None:
    service, _ = lab
    accepted: list[int] = []
    stop = threading.Event()

    def submit() -> None:
        with httpx.Client(base_url=service.url, headers=service.http.headers, timeout=10) as client:
            for i in range(40):
                if stop.is_set():
                    return
                try:
                    response = client.post("/api/v1/experiments", json={**TINY, "seed": 100 + i})
                except httpx.HTTPError:
                    time.sleep(0.2)
                    continue
                if response.status_code == 201:
                    accepted.append(response.json()["id"])

    thread = threading.Thread(target=submit)
    thread.start()
    time.sleep(1.0)
    service.restart_api()
    thread.join(timeout=120)
    stop.set()
    assert len(accepted) >= 5
    for experiment_id in accepted:
        final = service.wait_for(experiment_id, ("succeeded", "failed", "cancelled"), timeout=180)
        assert final["status"] == "succeeded" and final["attempts"] == 1, final


def test_time_limit_fails_with_reason_timeout(lab) -> None:
    service, _ = lab
    created = service.http.post(
        "/api/v1/experiments", json={**LONG, "seed": 30, "time_limit_seconds": 2, "train": {"epochs": 2000}}
    ).json()
    final = service.wait_for(created["id"], ("succeeded", "failed", "cancelled"), timeout=60)
    assert final["status"] == "failed" and final["error_reason"] == "timeout"
    assert "time limit of 2 s" in final["error"]


def test_one_users_big_fanout_does_not_starve_anothers_run(lab) -> None:
    service, _ = lab
    big = {
        "kind": "compare",
        "name": "many-variants",
        "base": {"data": {"source": "synthetic/moons", "options": {"n_samples": 3000}}, "train": {"epochs": 8}},
        "variants": [{"label": f"lr{i}", "set": {"train.optimizer.lr": 0.001 * (i + 1)}} for i in range(12)],
    }
    search = service.http.post("/api/v1/experiments", json=big).json()
    service.wait_for(search["id"], ("running",), timeout=60)
    time.sleep(2)  # its first children are in the queue and running
    other = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {service.create_user('bob')}"})
    single = other.post("/api/v1/experiments", json={**TINY, "name": "bobs-run"}).json()
    deadline = time.monotonic() + 120
    while (mine := other.get(f"/api/v1/experiments/{single['id']}").json())["status"] != "succeeded":
        assert time.monotonic() < deadline, mine
        time.sleep(0.3)
    parent = service.http.get(f"/api/v1/experiments/{search['id']}").json()
    assert parent["status"] == "running"  # bob's run started and finished while the big one went on
    queued_children = [c for c in parent["children"] if c["status"] == "queued"]
    assert queued_children  # ... with most of its children still waiting their turn
    service.http.post(f"/api/v1/experiments/{search['id']}/cancel")
    final = service.wait_for(search["id"], ("cancelled", "succeeded", "failed"), timeout=120)
    assert final["status"] == "cancelled"


SEARCH = {
    "kind": "search",
    "name": "orphan-search",
    "base": {"kind": "analytic", "function": "quadratic"},
    "space": {"h1": {"type": "float", "low": -2, "high": 2}, "h2": {"type": "float", "low": -2, "high": 4}},
    "method": "random",
    "trials": 4,
    "parallel": 2,
}


def ghost_claim(service: Service, spec: dict) -> int:
    """A row as a worker killed while planning it leaves it: running, no children, a lease
    nobody renews (written straight into the service's database, as that worker had)."""
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from core.db import make_engine
    from core.models import User, utcnow
    from core.repositories import ExperimentRepository, RunRepository
    from ml.spec import experiment_kind, parse_spec

    engine = make_engine(service.env["TRAINLAB_DATABASE_URL"])
    try:
        with Session(engine) as session:
            repo = ExperimentRepository(session)
            owner = session.query(User).filter_by(name="tester").one()
            parsed = parse_spec(spec)
            row = repo.create(
                name=spec["name"], kind=experiment_kind(parsed), spec=parsed.model_dump(mode="json"), owner_id=owner.id
            )
            session.flush()
            assert RunRepository(session).claim(row.id, "ghost@gone/1/dead")
            row.heartbeat_at = utcnow() - timedelta(seconds=60)
            session.commit()
            return row.id
    finally:
        engine.dispose()


def test_a_parent_whose_worker_died_while_planning_is_planned_again(lab) -> None:
    service, _ = lab
    experiment_id = ghost_claim(service, SEARCH)
    final = service.wait_for(experiment_id, ("succeeded", "failed", "cancelled"), timeout=120)
    assert final["status"] == "succeeded", final["error"]
    assert final["losses"] == 1 and len(final["children"]) == 4


def test_cancel_ends_a_parent_whose_planning_worker_died(lab) -> None:
    service, _ = lab
    experiment_id = ghost_claim(service, {**SEARCH, "name": "orphan-cancelled"})
    answer = service.http.post(f"/api/v1/experiments/{experiment_id}/cancel").json()
    final = service.wait_for(experiment_id, ("cancelled",), timeout=60)
    if answer["status"] == "cancelled":  # at once: nobody holds it any more
        assert final["children"] == []
    else:
        # On a slow machine the live worker's reconciler can hand the orphan to that worker
        # before the cancel arrives; then the cancel is a request the worker carries out, and
        # whatever it planned meanwhile is cancelled with it.
        assert answer["status"] == "running" and answer["cancel_requested"]
        children = [service.http.get(f"/api/v1/experiments/{c['id']}").json() for c in final["children"]]
        assert all(c["status"] == "cancelled" for c in children)


def test_cancel_of_a_run_whose_worker_was_killed_ends_it(lab) -> None:
    service, _ = lab
    created = service.http.post("/api/v1/experiments", json={**LONG, "seed": 41}).json()
    running = wait_epochs(service, created["id"], 2)
    service.kill_worker(service.worker_running(running), signal.SIGKILL)
    service.start_worker("after-cancel-kill")
    assert service.http.post(f"/api/v1/experiments/{created['id']}/cancel").status_code == 200
    final = service.wait_for(created["id"], ("succeeded", "failed", "cancelled"), timeout=30)
    assert final["status"] == "cancelled" and final["error_reason"] == "cancelled"


def test_a_dropped_database_connection_requeues_the_run(lab) -> None:
    """Every connection to the database is killed mid-run (PostgreSQL restarted, a proxy
    dropped them): the run goes back to the queue and finishes; it is not failed."""
    from sqlalchemy import text

    from core.db import make_engine

    service, _ = lab
    created = service.http.post("/api/v1/experiments", json={**LONG, "seed": 42}).json()
    wait_epochs(service, created["id"], 3)
    engine = make_engine(service.env["TRAINLAB_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar()
    finally:
        engine.dispose()
    assert killed >= 1
    final = service.wait_for(created["id"], ("succeeded", "failed", "cancelled"), timeout=240)
    assert final["status"] == "succeeded", (final["error_reason"], final["error"])
    assert_unique_metrics(service, created["id"], final["summary"]["epochs_run"])


def test_a_worker_that_cannot_reach_the_database_does_not_start(lab) -> None:
    """It would otherwise take messages it can never run (healthy workers idle meanwhile)."""
    service, _ = lab
    broken = {**service.env, "TRAINLAB_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/no_such_db"}
    proc = service.start_worker("broken-db", env=broken)
    assert proc.wait(timeout=60) != 0
    assert "cannot work on the database" in service.log("worker-broken-db.log")
    done = service.wait_for(service.http.post("/api/v1/experiments", json=TINY).json()["id"], ("succeeded",), 60)
    assert done["attempts"] == 1

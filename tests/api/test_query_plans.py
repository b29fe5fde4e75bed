"""Request paths cost O(answer), not O(table): every statement a request runs is explained by the
database itself, and none may read the experiments or metrics tables whole. PostgreSQL is told
sequential scans are off, so it picks an index whenever one can serve the statement and falls
back to a sequential scan only when none can (tiny test tables would otherwise be scanned); its
EXPLAIN ANALYZE (run in a transaction that is rolled back) also counts the rows each statement
reads from those tables, index or not, which must stay within the answer's size while the
owner has hundreds of older experiments."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

QUICKSTART = {"name": "plan", "data": {"source": "builtin/iris"}, "train": {"epochs": 3}}
# A whole-table read: PostgreSQL's Seq Scan, SQLite's SCAN (SEARCH uses an index key).
FULL_SCAN = {
    "postgresql": re.compile(r"Seq Scan on (experiments|metrics)\b"),
    "sqlite": re.compile(r"\bSCAN (experiments|metrics)\b"),
}


@contextmanager
def recorded_statements() -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT, UPDATE and DELETE the engine runs meanwhile, with its parameters."""
    from sqlalchemy import event

    from core.db import get_engine

    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")) and not many:
            seen.append((statement, parameters))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def rows_read(plan: dict[str, Any]) -> int:
    """Rows a PostgreSQL plan (EXPLAIN ANALYZE, JSON) read from experiments or metrics."""
    read = 0
    if plan.get("Relation Name") in ("experiments", "metrics"):
        kept = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
        read += (kept + plan.get("Rows Removed by Index Recheck", 0)) * plan.get("Actual Loops", 1)
    return read + sum(rows_read(child) for child in plan.get("Plans", []))


def full_scans(statements: list[tuple[str, Any]], most_rows: int = 60) -> list[str]:
    """The statements whose plan reads experiments or metrics whole (or, on PostgreSQL, reads
    more than `most_rows` of their rows), with that plan."""
    from core.db import get_engine

    engine = get_engine()
    dialect = engine.dialect.name
    bad = []
    with engine.connect() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in statements:
            prefix = "EXPLAIN " if dialect == "postgresql" else "EXPLAIN QUERY PLAN "
            rows = conn.exec_driver_sql(prefix + statement, parameters).all()
            plan = "\n".join(" ".join(str(c) for c in row) for row in rows)
            if FULL_SCAN[dialect].search(plan):
                bad.append(f"{statement}\n{plan}")
            if dialect == "postgresql":
                analyzed = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).scalar()
                read = rows_read(analyzed[0]["Plan"])
                if read > most_rows:
                    bad.append(f"{statement}\nreads {read} rows of experiments/metrics:\n{plan}")
        conn.rollback()
    return bad


def seed(client: Any) -> int:
    """An hour of history (300 finished experiments of the client's user and of three others:
    a lab, not one person), a few queued and running ones, and one with metric rows."""
    from datetime import timedelta

    from sqlalchemy import update

    from core.db import session_scope
    from core.models import Experiment, Status, User, utcnow
    from core.repositories import ExperimentRepository, MetricRepository, RunRepository
    from tests.conftest import make_user

    other = make_user("other")
    make_user("third")
    make_user("fourth")
    with session_scope() as session:
        repo, earlier = ExperimentRepository(session), utcnow() - timedelta(hours=1)
        for user in session.query(User).all():
            old = [repo.create(name="old", kind="train", spec={}, owner_id=user.id).id for _ in range(300)]
            session.execute(
                update(Experiment)
                .where(Experiment.id.in_(old))
                .values(status=Status.succeeded, created_at=earlier, started_at=earlier, finished_at=earlier)
            )
        session.commit()
    for _ in range(3):
        client.post("/api/v1/experiments", json=QUICKSTART, headers={"Authorization": f"Bearer {other}"})
    ids = [client.post("/api/v1/experiments", json=QUICKSTART).json()["id"] for _ in range(4)]
    with session_scope() as session:
        runs = RunRepository(session)
        for experiment_id in ids[:2]:
            runs.claim(experiment_id, "w1/1/1")
        runs.finish(ids[0], Status.succeeded)
        MetricRepository(session).add_many(
            ids[1], [(step, split, "loss", 1.0 / step) for step in range(1, 50) for split in ("train", "validation")]
        )
        session.commit()
        if session.get_bind().dialect.name == "postgresql":  # statistics, as autovacuum keeps them
            session.connection().exec_driver_sql("ANALYZE")
            session.commit()
    return ids[1]


def test_request_paths_use_indexes(client: Any) -> None:
    experiment_id = seed(client)
    client.get("/metrics")  # the first scrape folds the seeding's changes into the counters
    paths = [  # (method, path, most rows of experiments/metrics one statement may read)
        ("POST", "/api/v1/experiments", 60),
        ("GET", "/api/v1/experiments", 60),
        ("GET", "/api/v1/experiments?status=running", 60),
        ("GET", "/api/v1/experiments?kind=train&status=queued", 60),
        ("GET", "/api/v1/experiments?status=succeeded&offset=100&limit=10", 120),
        ("GET", f"/api/v1/experiments/{experiment_id}", 60),
        ("GET", f"/api/v1/experiments/{experiment_id}/metrics", 98),  # the answer: 98 rows
        ("GET", f"/api/v1/experiments/{experiment_id}/metrics?after_step=45", 8),  # only the new rows
        ("GET", f"/api/v1/experiments/{experiment_id}/metrics/series?after_step=47", 4),
        ("GET", f"/api/v1/experiments/{experiment_id}/metrics/series?split=train&max_points=10", 98),
        ("POST", f"/api/v1/experiments/{experiment_id}/cancel", 60),
        ("GET", "/metrics", 60),
    ]
    for method, path, most_rows in paths:
        with recorded_statements() as statements:
            response = client.post(path, json=QUICKSTART) if method == "POST" else client.get(path)
        assert response.status_code in (200, 201), (path, response.text)
        assert statements, path
        assert full_scans(statements, most_rows) == [], f"{method} {path} reads a whole table"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_missing_index_is_caught(client: Any) -> None:
    """The check can fail: a filter no index serves is reported."""
    seed(client)
    assert full_scans([("SELECT id FROM experiments WHERE error LIKE %(e)s", {"e": "x%"})])

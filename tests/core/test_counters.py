"""The counters behind /metrics and list totals (kept by database triggers, folded on read) agree
with counting the experiments table itself, through every kind of write: inserts, claims, bulk
updates, cancels, deletes of trees, an owner's deletion, before and after a fold."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, func, select, update


def counted(session) -> dict[tuple[int, str, str], int]:  # type: ignore[no-untyped-def]
    from core.models import Experiment

    rows = session.execute(
        select(Experiment.owner_id, Experiment.kind, Experiment.status, func.count()).group_by(
            Experiment.owner_id, Experiment.kind, Experiment.status
        )
    )
    return {(o or 0, k, s): n for o, k, s, n in rows}


def assert_counts_agree(session) -> None:  # type: ignore[no-untyped-def]
    from core.repositories import MonitoringRepository

    truth = counted(session)
    monitoring = MonitoringRepository(session)
    owners = {o for o, _, _ in truth} | {0}
    for owner in owners:
        for status in ("queued", "running", "succeeded", "cancelled", None):
            for kind in ("train", "kfold", None):
                expected = sum(
                    n
                    for (o, k, s), n in truth.items()
                    if o == owner and (status is None or s == status) and (kind is None or k == kind)
                )
                assert monitoring.count(owner_id=owner, status=status, kind=kind) == expected
    by_status: dict[str, int] = {}
    for (_, _, s), n in truth.items():
        by_status[s] = by_status.get(s, 0) + n
    assert monitoring.counts_by_status() == by_status


def test_counters_follow_every_write(api_env: Path) -> None:
    from core.db import session_scope
    from core.models import Experiment, Status, User, utcnow
    from core.repositories import ExperimentRepository, MonitoringRepository, RunRepository
    from tests.conftest import make_user

    make_user("ada")
    make_user("bob")
    with session_scope() as session:
        ada, bob = (session.scalar(select(User.id).where(User.name == n)) for n in ("ada", "bob"))
        repo, runs, monitoring = ExperimentRepository(session), RunRepository(session), MonitoringRepository(session)
        ids = [repo.create(name=f"e{i}", kind="train", spec={}, owner_id=ada if i % 3 else bob).id for i in range(12)]
        parent = repo.create(name="p", kind="kfold", spec={}, owner_id=ada)
        children = [repo.create(name="c", kind="train", spec={}, owner_id=ada, parent_id=parent.id) for _ in range(3)]
        session.commit()
        assert_counts_agree(session)  # nothing folded yet: read from the change log
        assert monitoring.fold_changes() > 0
        session.commit()
        assert_counts_agree(session)
        for experiment_id in ids[:6]:
            runs.claim(experiment_id, "w/1/1")
        runs.finish(ids[0], Status.succeeded)
        runs.requeue(ids[1], lost=True)
        runs.request_cancel(session.get(Experiment, ids[7]))
        session.execute(update(Experiment).where(Experiment.id.in_(ids[8:10])).values(kind="kfold"))
        session.commit()
        assert_counts_agree(session)
        monitoring.fold_changes()
        session.commit()
        session.execute(
            update(Experiment).where(Experiment.id == ids[0]).values(finished_at=utcnow())
        )  # a timing change alone moves no count
        runs.cancel_tree(parent, utcnow())
        session.commit()
        assert all(session.get(Experiment, c.id).status == Status.cancelled for c in children)
        repo.delete_tree(parent.id)
        session.execute(delete(User).where(User.id == bob))  # owner_id SET NULL by the foreign key
        session.commit()
        assert_counts_agree(session)
        monitoring.fold_changes()
        session.commit()
        assert_counts_agree(session)
        assert monitoring.count(owner_id=0) == 4 and monitoring.count(owner_id=ada, kind="kfold") == 1


def test_histograms_count_stored_durations(api_env: Path) -> None:
    from datetime import timedelta

    from core.db import session_scope
    from core.models import Experiment, Status
    from core.repositories import ExperimentRepository, MonitoringRepository, RunRepository

    with session_scope() as session:
        repo, runs, monitoring = ExperimentRepository(session), RunRepository(session), MonitoringRepository(session)
        first, second = (repo.create(name="t", kind="train", spec={}) for _ in range(2))
        for row, ran in ((first, 7), (second, 4000)):
            runs.claim(row.id, "w/1/1")
            runs.finish(row.id, Status.succeeded)
            session.flush()
            session.refresh(row)
            row.finished_at = row.started_at + timedelta(seconds=ran)
        session.commit()
        monitoring.fold_changes()
        run = monitoring.histograms()["run"]["train"]
        assert run.sum_seconds == 4007
        assert dict(run.cumulative())[5.0] == 0 and dict(run.cumulative())[15.0] == 1
        assert dict(run.cumulative())[3600.0] == 1 and dict(run.cumulative())[3 * 3600.0] == 2
        repo.delete_tree(second.id)  # a deleted experiment leaves the histogram
        session.commit()
        monitoring.fold_changes()
        assert monitoring.histograms()["run"]["train"].sum_seconds == 7
        assert session.get(Experiment, first.id) is not None

"""The experiment state machine in the repository, on SQLite and PostgreSQL: claim, lease,
re-queue, finish, cancel and the reconciler's repairs, each a conditional update."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_user


class Repositories:
    """The repositories the state machine spans, on one session."""

    def __init__(self, session: Any) -> None:
        from core.repositories import ExperimentRepository, RecoveryRepository, RunRepository

        self.session = session
        self.experiments = ExperimentRepository(session)
        self.runs = RunRepository(session)
        self.recovery = RecoveryRepository(session)


@pytest.fixture
def repo(api_env: Path) -> Any:
    from core.db import session_scope

    make_user("ada")
    with session_scope() as session:
        yield Repositories(session)


def owner_id(repo: Any) -> int:
    from core.models import User

    return repo.session.query(User).filter_by(name="ada").one().id


def new(repo: Any, parent_id: int | None = None, **fields: Any) -> int:
    experiment = repo.experiments.create(
        name="e", kind="train", spec={}, owner_id=owner_id(repo), parent_id=parent_id, **fields
    )
    repo.session.commit()
    return experiment.id


def state(repo: Any, experiment_id: int) -> Any:
    repo.session.expire_all()
    return repo.experiments.get(experiment_id)


def test_claim_is_exclusive_and_counts_attempts(repo: Any) -> None:
    from core.models import Status

    e = new(repo)
    assert repo.runs.claim(e, "w1") and not repo.runs.claim(e, "w2")
    repo.session.commit()
    row = state(repo, e)
    assert row.status == Status.running and row.worker == "w1" and row.attempts == 1
    assert repo.runs.renew_lease(e, "w1") and not repo.runs.renew_lease(e, "w2")
    assert not repo.runs.finish(e, Status.succeeded, worker="w2") and repo.runs.finish(e, Status.succeeded, worker="w1")
    repo.session.commit()
    assert state(repo, e).status == Status.succeeded and not repo.runs.requeue(e)


def test_graceful_hand_overs_are_not_losses(repo: Any) -> None:
    from core.models import Status

    e = new(repo)
    for attempt in range(1, 4):
        assert repo.runs.claim(e, f"w{attempt}")
        assert repo.runs.requeue(e, worker=f"w{attempt}", lost=attempt == 3)
        repo.session.commit()
    row = state(repo, e)
    assert row.status == Status.queued and row.attempts == 3 and row.losses == 1


def test_a_cancelled_run_is_finished_not_requeued(repo: Any) -> None:
    from core.models import Status

    e = new(repo)
    assert repo.runs.claim(e, "w1")
    repo.runs.request_cancel(state(repo, e))
    assert not repo.runs.requeue(e, lost=True)  # its worker died after the cancel
    repo.session.commit()
    row = state(repo, e)
    assert row.status == Status.cancelled and row.error_reason == "cancelled" and row.finished_at is not None


def test_cancel_of_a_run_whose_worker_is_gone_ends_it_now(repo: Any) -> None:
    from core.models import Status, utcnow

    e = new(repo)
    assert repo.runs.claim(e, "w1")
    repo.session.commit()
    assert not repo.runs.cancel_abandoned(e, utcnow() - timedelta(seconds=60))  # its lease is fresh
    assert repo.runs.cancel_abandoned(e, utcnow() + timedelta(seconds=1))
    repo.session.commit()
    assert state(repo, e).status == Status.cancelled


def test_queued_rows_left_with_a_cancel_are_finished(repo: Any) -> None:
    from core.models import Experiment, Status

    e = new(repo)
    repo.session.query(Experiment).filter_by(id=e).update({"cancel_requested": True})  # a row of an older release
    assert repo.runs.cancel_waiting() == 1 and not repo.runs.claim(e, "w1")
    repo.session.commit()
    assert state(repo, e).status == Status.cancelled


def test_the_running_limit_is_checked_with_the_claim(repo: Any) -> None:
    from core.db import session_scope
    from core.repositories import RunRepository

    ids = [new(repo) for _ in range(4)]
    barrier = threading.Barrier(len(ids))
    won: list[int] = []

    def claim(experiment_id: int) -> None:
        with session_scope() as session:
            barrier.wait()
            if RunRepository(session).claim(experiment_id, f"w{experiment_id}", running_limit=2):
                won.append(experiment_id)
            session.commit()

    threads = [threading.Thread(target=claim, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 2  # never more than the limit, however the claims interleave
    assert repo.experiments.running_single_runs(owner_id(repo)) == 2


def test_a_message_overtaken_by_a_later_one_is_lost(repo: Any) -> None:
    from core.models import Experiment, utcnow

    first, second = new(repo), new(repo)
    now = utcnow()
    for experiment_id, sent in ((first, now - timedelta(seconds=90)), (second, now - timedelta(seconds=30))):
        repo.session.query(Experiment).filter_by(id=experiment_id).update({"dispatched_at": sent})
    repo.session.commit()
    assert not repo.recovery.overtaken(state(repo, first))  # nothing sent later has started
    assert repo.runs.claim(second, "w1")
    repo.session.commit()
    assert repo.recovery.overtaken(state(repo, first))  # the later message was delivered: the first is gone
    repo.session.query(Experiment).filter_by(id=second).update({"priority": "high"})
    repo.session.commit()
    assert not repo.recovery.overtaken(state(repo, first))  # a higher priority may legitimately overtake


def test_delete_a_tree_and_finished_checkpoints(repo: Any) -> None:
    from core.models import Status
    from core.repositories import ArtifactRepository, MetricRepository

    parent = new(repo)
    child = new(repo, parent_id=parent)
    artifacts = ArtifactRepository(repo.session)
    artifacts.put(child, "checkpoint.pt", "ns/experiments/2/checkpoint.pt", 10, "application/octet-stream")
    MetricRepository(repo.session).add_many(child, [(1, "train", "loss", 0.5)])
    repo.session.commit()
    assert repo.experiments.tree_ids(parent) == [parent, child]
    assert not artifacts.finished_checkpoints("checkpoint.pt")  # still queued: it may resume
    assert repo.runs.claim(child, "w") and repo.runs.finish(child, Status.failed, error="x")
    repo.session.commit()
    assert [a.experiment_id for a in artifacts.finished_checkpoints("checkpoint.pt")] == [child]
    assert artifacts.keys_of(repo.experiments.tree_ids(parent)) == ["ns/experiments/2/checkpoint.pt"]
    repo.experiments.delete_tree(parent)
    repo.session.commit()
    assert state(repo, parent) is None and state(repo, child) is None
    assert not MetricRepository(repo.session).series(child)

"""The reconciler re-sends a queued experiment's message only when it is lost: with one queue
per resource class, a message waiting in `gpu1` (its workers busy or absent) is not sent again
because runs of other queues started after it; once its own queue is empty, it is."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from core.celery_app import queued_message_count, send_run_experiment
from core.db import session_scope
from core.models import Experiment, Status, utcnow
from core.repositories import ExperimentRepository
from workers.reconcile import redispatch_lost_messages

SPEC = {"name": "r", "data": {"source": "builtin/iris"}}


def _experiment(spec: dict, sent_ago: float, started: bool = False) -> int:
    with session_scope() as session:
        experiment = ExperimentRepository(session).create(name="r", kind="train", spec=spec)
        session.flush()
        sent = utcnow() - timedelta(seconds=sent_ago)
        values: dict = {"dispatched_at": sent}
        if started:
            values |= {"status": Status.running, "started_at": sent + timedelta(seconds=1), "heartbeat_at": utcnow()}
        session.execute(update(Experiment).where(Experiment.id == experiment.id).values(**values))
        session.commit()
        return experiment.id


def _clear_broker(data_dir: Path) -> None:
    for message in (data_dir / "broker" / "queue").iterdir():
        message.unlink()


def test_a_message_waiting_in_a_resource_queue_is_not_sent_again(api_env: Path) -> None:
    waiting = _experiment({**SPEC, "resources": {"gpus": 1}}, sent_ago=600)
    send_run_experiment(waiting, "normal", "gpu1")
    _experiment(SPEC, sent_ago=300, started=True)  # sent after it, in another queue, already started
    assert redispatch_lost_messages() == []
    assert queued_message_count("gpu1") == 1

    _clear_broker(api_env)  # the broker lost it; the default queue still holds something else
    send_run_experiment(10**6, "normal", "trainlab")
    assert redispatch_lost_messages() == [waiting]
    assert queued_message_count("gpu1") == 1 and queued_message_count("trainlab") == 1

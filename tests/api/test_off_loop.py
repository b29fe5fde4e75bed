"""No blocking call on the API's event loop: every database statement a submission makes, and
its message to the broker, runs in a worker thread, so one slow submission stalls no one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


def on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_submission_blocks_not_the_event_loop(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event

    import api.routes.experiments as routes
    from core.db import get_engine

    statements: list[bool] = []
    sends: list[bool] = []

    def record(*_: Any) -> None:
        statements.append(on_event_loop())

    send = routes.send_run_experiment

    def recording_send(*args: Any) -> None:
        sends.append(on_event_loop())
        send(*args)

    monkeypatch.setattr(routes, "send_run_experiment", recording_send)
    event.listen(get_engine(), "before_cursor_execute", record)
    try:
        response = client.post("/api/v1/experiments", json={"name": "x", "data": {"source": "builtin/iris"}})
    finally:
        event.remove(get_engine(), "before_cursor_execute", record)
    assert response.status_code == 201, response.text
    assert statements and not any(statements), "a database statement ran on the event loop"
    assert sends == [False], "the broker was called on the event loop"

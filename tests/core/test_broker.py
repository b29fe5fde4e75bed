"""The embedded broker never shows a worker a message that is still being written."""

from __future__ import annotations

import json
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection

from core.settings import Settings


def channel(folder: Path) -> Any:
    from core.celery_app import make_celery

    app = make_celery(Settings(data_dir=folder, broker_url="filesystem://"))
    connection = Connection(app.conf.broker_url, transport_options=app.conf.broker_transport_options)
    return connection.default_channel


class ReadsWhileWritten:
    """A payload value that, while the message is being serialized (after kombu's own channel has
    already created the message file), polls the queue as a worker would."""

    def __init__(self, reader: Any, queue: str) -> None:
        self.reader, self.queue = reader, queue
        self.seen: list[str] = []

    def __json__(self) -> str:
        try:
            self.seen.append(json.dumps(self.reader._get(self.queue)))
        except Empty:
            self.seen.append("empty")
        return "value"


def test_a_message_is_invisible_until_complete_then_read_whole(tmp_path: Path) -> None:
    writer, reader = channel(tmp_path), channel(tmp_path)
    probe = ReadsWhileWritten(reader, "trainlab")
    writer._put("trainlab", {"body": probe})  # kombu's channel: the reader got "" -> JSONDecodeError
    assert probe.seen == ["empty"]
    assert reader._get("trainlab") == {"body": "value"}
    with pytest.raises(Empty):
        reader._get("trainlab")
    assert not list((tmp_path / "broker" / "queue").iterdir())  # no partial file left behind

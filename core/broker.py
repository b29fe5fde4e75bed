"""The embedded default's broker: kombu's filesystem transport, with messages published atomically.

kombu's filesystem channel creates a message file, then writes it. A worker that polls the queue
in between moves the empty file away and reads nothing: `loads("")` raises JSONDecodeError, which
Celery treats as unrecoverable, so the embedded worker died and the queued run waited forever (seen
under load in CI; kombu issue #1551). Here a message is written under a name the reader skips and
renamed into place when complete: a rename in one folder is atomic, so a reader sees a whole
message or none.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# The suffix of a message being written: the reader takes only names ending in ".<queue>.msg".
PARTIAL = ".part"


class AtomicChannel(filesystem.Channel):
    """A filesystem channel whose `_put` publishes by rename."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # as kombu's filesystem channel
        # The same name kombu gives (the reader orders messages by its time prefix).
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))  # type: ignore[no-untyped-call]
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class AtomicFilesystemTransport(filesystem.Transport):
    """`filesystem://` with `AtomicChannel`."""

    Channel = AtomicChannel


# `filesystem://` broker URLs resolve to this transport in every process that imports the
# Celery app (the API publishes, workers consume and publish children).
TRANSPORT_ALIASES["filesystem"] = f"{__name__}:AtomicFilesystemTransport"

"""Request-body size limit, enforced while the body streams in (never held whole first)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Answer 413 when Content-Length or the streamed body exceeds `max_bytes`, or the limit
    `routes` gives its (method, path) (a data-set upload may be larger than any other body)."""

    def __init__(self, app: ASGIApp, max_bytes: int, routes: dict[tuple[str, str], int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.routes = dict(routes or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get((scope.get("method", ""), scope.get("path", "")), self.max_bytes)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send, limit)

    async def _reject(self, send: Send, limit: int) -> None:
        body: dict[str, Any] = {"detail": f"request body larger than the limit of {limit} bytes"}
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, detail=f"the body is larger than the limit of {limit} bytes")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, detail=f"the body is larger than the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


class AttemptWindow:
    """Per-user attempts in the last minute, in this process (thread-safe; memory bounded by
    the limit per active user)."""

    def __init__(self, window_seconds: float = 60.0) -> None:
        self.window = window_seconds
        self._seen: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, user_id: int, limit: int) -> bool:
        """Count one attempt; False when the user already made `limit` in the window."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(user_id, deque())
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) >= limit:
                return False
            seen.append(now)
            if len(self._seen) > 10_000:  # forget idle users
                self._seen = {u: d for u, d in self._seen.items() if d and d[-1] > now - self.window}
            return True

"""A small Python client for the trainlab API (httpx)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

FINAL = ("succeeded", "failed", "cancelled")


class TrainlabError(Exception):
    """The server refused a request; the message carries its explanation."""

    def __init__(self, status_code: int, detail: Any) -> None:
        self.status_code, self.detail = status_code, detail
        super().__init__(f"{status_code}: {format_detail(detail)}")


def format_detail(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:]) or 'body'}: {d.get('msg')}"
            if isinstance(d, dict)
            else str(d)
            for d in detail
        )
    return str(detail)


class Client:
    """Talks to one trainlab server."""

    def __init__(self, url: str = "http://127.0.0.1:8000", timeout: float = 30.0) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/") + "/api/v1", timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise TrainlabError(response.status_code, detail)
        ctype = response.headers.get("content-type", "")
        return response.json() if "json" in ctype else response.content

    def submit(self, spec: dict[str, Any] | str | Path) -> dict[str, Any]:
        """Submit a spec given as a dict, a YAML string or a file path."""
        if isinstance(spec, Path) or (isinstance(spec, str) and Path(spec).is_file()):
            spec = Path(spec).read_text()
        if isinstance(spec, str):
            spec = yaml.safe_load(spec)
        return self._call("POST", "/experiments", json=spec)

    def get(self, experiment_id: int) -> dict[str, Any]:
        return self._call("GET", f"/experiments/{experiment_id}")

    def list(self, **filters: Any) -> dict[str, Any]:
        return self._call("GET", "/experiments", params={k: v for k, v in filters.items() if v is not None})

    def metrics(self, experiment_id: int, **filters: Any) -> list[dict[str, Any]]:
        return self._call("GET", f"/experiments/{experiment_id}/metrics", params=filters)

    def cancel(self, experiment_id: int) -> dict[str, Any]:
        return self._call("POST", f"/experiments/{experiment_id}/cancel")

    def artifacts(self, experiment_id: int) -> list[dict[str, Any]]:
        return self._call("GET", f"/experiments/{experiment_id}/artifacts")

    def download(self, experiment_id: int, name: str) -> bytes:
        return self._call("GET", f"/experiments/{experiment_id}/artifacts/{name}")

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def wait(
        self,
        experiment_id: int,
        on_update: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None,
        poll: float = 0.5,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Poll until the experiment reaches a final state; `on_update(experiment, metrics)`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            experiment = self.get(experiment_id)
            if on_update is not None:
                on_update(experiment, self.metrics(experiment_id))
            if experiment["status"] in FINAL:
                return experiment
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"experiment {experiment_id} still {experiment['status']}")
            time.sleep(poll)

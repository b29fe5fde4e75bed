"""A Python client for the trainlab API (httpx), with typed results.

```python
from trainlab.client import Client
client = Client()                      # URL and token from env or ~/.config/trainlab/config.json
exp = client.submit("examples/quickstart.yaml", overrides=["train.epochs=5"])
exp = client.wait(exp.id, on_update=lambda e, m: print(e.status, m.last_step))
print(exp.test_metrics, exp.diagnosis.verdict)         # exp.results: the typed summary of its kind
rows = client.metrics(exp.id).as_dicts()
client.download_all(exp.id, "out/")
```

Connection errors are retried; a retried submission carries the same `Idempotency-Key`, so the
server returns the experiment the first attempt created instead of creating a second one.
"""

from __future__ import annotations

import builtins
import contextlib
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import yaml

from trainlab.config import resolve_connection
from trainlab.models import (
    FINAL_STATUSES,
    Artifact,
    Dataset,
    Experiment,
    ExperimentBrief,
    ExperimentPage,
    Metric,
    MetricRows,
)
from trainlab.overrides import apply_overrides
from trainlab.packing import pack_folder

__all__ = [
    "FINAL_STATUSES",
    "Artifact",
    "AuthError",
    "Client",
    "Dataset",
    "Experiment",
    "ExperimentBrief",
    "ExperimentPage",
    "Metric",
    "MetricRows",
    "TrainlabError",
    "load_spec",
]

# Errors after which the request may not have reached the server, or its answer was lost.
RETRYABLE = (httpx.TransportError,)
UPLOAD_READ_SECONDS = 3600.0  # the answer to an upload waits for the server's check of every file
UpdateCallback = Callable[[Experiment, MetricRows], None]


class TrainlabError(Exception):
    """The server refused a request; the message carries its explanation."""

    def __init__(self, status_code: int, detail: Any, url: str | None = None) -> None:
        self.status_code, self.detail, self.url = status_code, detail, url
        super().__init__(f"{status_code}: {format_detail(detail)}")


class AuthError(TrainlabError):
    """401/403: the server wants a token, or refused the one given."""


def format_detail(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:]) or 'body'}: {d.get('msg')}"
            if isinstance(d, dict)
            else str(d)
            for d in detail
        )
    return str(detail)


def load_spec(spec: dict[str, Any] | str | Path) -> dict[str, Any]:
    """A spec given as a dict, a YAML/JSON string or a file path, as a dict."""
    if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec and Path(spec).is_file()):
        spec = Path(spec).read_text()
    if isinstance(spec, str):
        spec = yaml.safe_load(spec)
    if not isinstance(spec, dict):
        raise ValueError(f"a spec is a mapping, not {type(spec).__name__}")
    return spec


class Client:
    """Talks to one trainlab server.

    Args:
        url: server URL; default `TRAINLAB_URL`, the config file, then http://127.0.0.1:8000.
        token: API token (`tl_...`); default `TRAINLAB_TOKEN`, then the config file.
        retries: extra attempts after a connection error (with backoff).
        transport: an httpx transport (tests, proxies).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        connection = resolve_connection(url, token)
        self.url, self.token = connection.url, connection.token
        self.retries, self.backoff = retries, backoff
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.http = httpx.Client(base_url=self.url + "/api/v1", timeout=timeout, headers=headers, transport=transport)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send, retrying connection errors; raise TrainlabError for an error status."""
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(method, path, **kwargs)
                break
            except RETRYABLE:
                if attempt == self.retries:
                    raise
                time.sleep(self.backoff * 2**attempt)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except (ValueError, AttributeError):
                detail = response.text
            error = AuthError if response.status_code in (401, 403) else TrainlabError
            raise error(response.status_code, detail, str(response.request.url))
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # experiments -----------------------------------------------------------------------------

    def submit(
        self,
        spec: dict[str, Any] | str | Path,
        overrides: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> Experiment:
        """Submit a spec (dict, YAML string or file path), with optional `path=value` overrides."""
        document = apply_overrides(load_spec(spec), overrides)
        key = idempotency_key or uuid.uuid4().hex  # one key for every attempt of this submission
        data = self._json("POST", "/experiments", json=document, headers={"Idempotency-Key": key})
        return Experiment.from_dict(data)

    def get(self, experiment_id: int) -> Experiment:
        return Experiment.from_dict(self._json("GET", f"/experiments/{experiment_id}"))

    def list(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        parent_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ExperimentPage:
        """Experiments newest first, filtered; `.items` and `.total`."""
        params = {"status": status, "kind": kind, "name": name, "parent_id": parent_id, "limit": limit}
        params["offset"] = offset
        data = self._json("GET", "/experiments", params={k: v for k, v in params.items() if v is not None})
        return ExperimentPage.from_dict(data)

    def metrics(
        self,
        experiment_id: int,
        *,
        split: str | None = None,
        name: str | None = None,
        after_step: int | None = None,
    ) -> MetricRows:
        """The per-epoch rows (only the steps after `after_step` when given); `.as_dicts()` gives
        `[{step, split, name, value}]`."""
        params: dict[str, Any] = {k: v for k, v in (("split", split), ("name", name)) if v}
        if after_step is not None:
            params["after_step"] = after_step
        rows = self._json("GET", f"/experiments/{experiment_id}/metrics", params=params)
        return MetricRows(
            Metric(int(r["step"]), r["split"], r["name"], float("nan") if r["value"] is None else float(r["value"]))
            for r in rows
        )

    def series(
        self,
        experiment_id: int,
        *,
        split: str | None = None,
        name: str | None = None,
        after_step: int | None = None,
        max_points: int | None = None,
    ) -> dict[str, Any]:
        """The histories in columns: `{experiment_id, last_step, series: [{split, name, steps,
        values}]}`; `max_points` down-samples each series keeping its shape."""
        options = (("split", split), ("name", name), ("after_step", after_step), ("max_points", max_points))
        params = {k: v for k, v in options if v is not None}
        return dict(self._json("GET", f"/experiments/{experiment_id}/metrics/series", params=params))

    def cancel(self, experiment_id: int) -> Experiment:
        """Queued: cancelled now. Running: stops at its next check."""
        return Experiment.from_dict(self._json("POST", f"/experiments/{experiment_id}/cancel"))

    def delete(self, experiment_id: int) -> None:
        """Delete a finished experiment with its children, metrics and artifacts."""
        self._request("DELETE", f"/experiments/{experiment_id}")

    def artifacts(self, experiment_id: int) -> builtins.list[Artifact]:
        return [Artifact.from_dict(a) for a in self._json("GET", f"/experiments/{experiment_id}/artifacts")]

    def download(self, experiment_id: int, name: str, dest: str | Path | None = None) -> bytes:
        """An artifact's bytes; also written to `dest` (a file, or a directory to put it in)."""
        content = self._request("GET", f"/experiments/{experiment_id}/artifacts/{name}").content
        if dest is not None:
            target = Path(dest)
            target = target / name if target.is_dir() else target
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return content

    def download_all(self, experiment_id: int, directory: str | Path) -> builtins.list[Path]:
        """Every artifact of an experiment into `directory`; the paths written."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for artifact in self.artifacts(experiment_id):
            self.download(experiment_id, artifact.name, folder / artifact.name)
            paths.append(folder / artifact.name)
        return paths

    def wait(
        self,
        experiment_id: int,
        on_update: UpdateCallback | None = None,
        poll: float = 1.0,
        timeout: float | None = None,
    ) -> Experiment:
        """Poll until the experiment is final; `on_update(experiment, metrics)` after each poll,
        with every row so far. Each poll downloads only the rows logged since the last one (and
        none when the experiment's latest step has not moved), so following a long run costs the
        server O(new points) per poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        rows, last_step = MetricRows(), None
        while True:
            experiment = self.get(experiment_id)
            if on_update is not None:
                if experiment.latest_step is not None and experiment.latest_step != last_step:
                    new = self.metrics(experiment_id, after_step=last_step)
                    rows.extend(new)
                    last_step = max((m.step for m in new), default=last_step)
                on_update(experiment, rows)
            if experiment.done:
                return experiment
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"experiment {experiment_id} still {experiment.status}")
            time.sleep(poll)

    # system and datasets ---------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The server's health; a 503 (degraded) is returned, not raised."""
        for attempt in range(self.retries + 1):
            try:
                return self.http.get("/health").json()
            except RETRYABLE:
                if attempt == self.retries:
                    raise
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def spec_schema(self) -> dict[str, Any]:
        return self._json("GET", "/spec/schema")

    def upload_dataset(self, path: str | Path, target: str | None = None, name: str | None = None) -> Dataset:
        """Upload a CSV or NPZ file (`target` names the label column of a CSV), or a folder data
        set: a .zip/.tar(.gz) of class folders, or a directory of them, packed on the fly into
        a temporary .zip (stored, not compressed). The file is streamed, never read whole."""
        file = Path(path)
        data = {k: v for k, v in (("target", target), ("name", name)) if v}
        key = uuid.uuid4().hex
        timeout = self.http.timeout  # the server checks a folder set's every file before it answers
        patient = httpx.Timeout(
            connect=timeout.connect, read=UPLOAD_READ_SECONDS, write=timeout.write, pool=timeout.pool
        )
        with contextlib.ExitStack() as stack:
            if file.is_dir():
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="trainlab-upload-"))
                file = pack_folder(file, Path(folder) / f"{file.resolve().name or 'dataset'}.zip")
            handle = stack.enter_context(file.open("rb"))  # rewound by httpx on a retry
            files = {"file": (file.name, handle, _file_type(file))}
            answer = self._json(
                "POST", "/datasets", files=files, data=data, headers={"Idempotency-Key": key}, timeout=patient
            )
        return Dataset.from_dict(answer)

    def dataset(self, dataset_id: int) -> Dataset:
        return Dataset.from_dict(self._json("GET", f"/datasets/{dataset_id}"))

    def delete_dataset(self, dataset_id: int) -> None:
        """Delete a data set no experiment uses (the server refuses one in use: 409)."""
        self._request("DELETE", f"/datasets/{dataset_id}")

    def datasets(self) -> builtins.list[Dataset]:
        data = self._json("GET", "/datasets")
        items = data.get("items", []) if isinstance(data, dict) else data
        return [Dataset.from_dict(d) for d in items]


def _file_type(file: Path) -> str:
    types = {".csv": "text/csv", ".zip": "application/zip", ".tar": "application/x-tar"}
    types |= {".gz": "application/gzip", ".tgz": "application/gzip"}
    return types.get(file.suffix.lower(), "application/octet-stream")

"""What the CLI, client and dashboard tests share: a live service with a token, fast specs."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.services import Service, running_service

ROOT = Path(__file__).resolve().parents[2]


def fast_spec(name: str, epochs: int = 3, **train: Any) -> dict[str, Any]:
    """A run that takes a few seconds on a CPU."""
    return {
        "name": name,
        "seed": 1,
        "data": {"source": "synthetic/moons", "options": {"n_samples": 400}},
        "model": {"type": "mlp", "hidden": [16]},
        "train": {"epochs": epochs, "batch_size": 32, **train},
    }


def long_spec(name: str) -> dict[str, Any]:
    """A run that goes on until cancelled (one epoch every fraction of a second)."""
    return {
        "name": name,
        "data": {"source": "synthetic/moons", "options": {"n_samples": 4000}},
        "model": {"hidden": [64, 64]},
        "train": {"epochs": 2000, "batch_size": 32},
    }


def token_for(service: Service) -> str | None:
    """The service's token once the server has authentication; None before that."""
    token = getattr(service, "token", None)
    if not token and hasattr(service, "create_user"):
        token = service.create_user(f"tester-{uuid.uuid4().hex[:6]}", True)
    return token or None


def auth_enforced(service: Service) -> bool:
    return httpx.get(f"{service.url}/api/v1/experiments", timeout=10).status_code == 401


@contextmanager
def live_service() -> Iterator[tuple[Service, str | None, Path]]:
    """The embedded default (SQLite + filesystem broker) with one worker; its token; a config
    path of its own (so nobody's ~/.config/trainlab is read)."""
    folder = Path(tempfile.mkdtemp(prefix="trainlab-ui-"))
    config = folder / "client-config.json"
    try:
        with running_service({"TRAINLAB_CONFIG": str(config)}, folder / "data") as service:
            yield service, token_for(service), config
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def analytic_search(name: str, trials: int = 6) -> dict[str, Any]:
    """A hyperparameter search over the data-free analytic objective: seconds, no training."""
    return {
        "name": name,
        "kind": "search",
        "base": {"kind": "analytic", "function": "quadratic"},
        "space": {"h1": {"type": "float", "low": -3, "high": 3}, "h2": {"type": "float", "low": -3, "high": 5}},
        "method": "random",
        "trials": trials,
        "parallel": 2,
    }

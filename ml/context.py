"""What the host (a Celery worker, or `ml.local.LocalHost` in a notebook) tells a run about
where it lives. Plain data: `ml` never reads the environment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class RunContext:
    """What the host tells `ml` about where a run lives (never read from the environment)."""

    experiment_id: int | None = None
    # An Optuna storage for search studies: an SQLAlchemy URL (PostgreSQL in the lab set-up) or
    # "journal:<path>" for a file journal (the embedded default; safe for parallel trials).
    optuna_storage: str | None = None
    # Transfer learning: the bytes of a finished experiment's model.pt, by its id or name.
    load_weights: Callable[[str], bytes | None] | None = None

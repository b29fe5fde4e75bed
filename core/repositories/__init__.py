"""All queries live here, one module per concern. Repositories query and flush; routes and tasks
commit.

- `experiments`: experiments as records (create, look up, list, count, delete).
- `runs`: a run's state machine (claim and lease, flags, finish, re-queue, cancel).
- `recovery`: what the reconciler looks for (expired leases, lost messages, parents to advance).
- `monitoring`: counts and timings for `/metrics`.
- `results`: per-epoch metrics and artifact rows.
- `accounts`, `datasets`: users and tokens, uploaded data sets.
"""

from core.repositories.accounts import TokenRepository, UserRepository
from core.repositories.datasets import DatasetRepository
from core.repositories.experiments import MAX_ROW_ID, PRIORITY_RANK, ExperimentRepository, durations
from core.repositories.monitoring import MonitoringRepository
from core.repositories.recovery import RecoveryRepository
from core.repositories.results import ArtifactRepository, MetricRepository
from core.repositories.runs import CANCELLED, RunRepository

__all__ = [
    "CANCELLED",
    "MAX_ROW_ID",
    "PRIORITY_RANK",
    "ArtifactRepository",
    "DatasetRepository",
    "ExperimentRepository",
    "MetricRepository",
    "MonitoringRepository",
    "RecoveryRepository",
    "RunRepository",
    "TokenRepository",
    "UserRepository",
    "durations",
]

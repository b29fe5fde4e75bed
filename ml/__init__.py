"""trainlab's machine-learning library: spec -> data -> preprocessing -> model -> training ->
evaluation -> result. It knows nothing of HTTP, SQL, Celery or environment variables and can be
used alone, e.g. in a notebook:

    import ml
    summary = ml.run_experiment({"name": "q", "data": {"source": "builtin/iris"}}, ml.PrintingReporter("out"))
    host = ml.LocalHost(); experiment = host.run(spec)          # fan-out kinds too

Sub-packages by capability: `spec` (the typed contract; never imports torch), `data`,
`preprocessing`, `training`, `evaluation`, `fanout`, `search`, `pinn`; `planners` (which planner
a fan-out spec gets), `run` (one experiment), `local` (any experiment, in this process) and
`torchrun` (a train spec on processes torchrun starts, one host or several). The only environment
it reads is a launcher's: torchrun's RANK, WORLD_SIZE... in the processes of data-parallel runs.
Importing `ml` imports nothing heavy: the names below load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "parse_spec": "ml.spec",
    "spec_json_schema": "ml.spec",
    "run_experiment": "ml.run",
    "LocalHost": "ml.local",
    "Reporter": "ml.reporter",
    "PrintingReporter": "ml.reporter",
    "RunContext": "ml.context",
    "Dataset": "ml.data.sources",
    "load_dataset": "ml.data.sources",
    "split_dataset": "ml.data.sources",
    "fit_preprocessing": "ml.preprocessing",
    "fit": "ml.training.loop",
    "planner_for": "ml.planners",
    "run_pinn": "ml.pinn.trainer",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ml' has no attribute {name!r}")

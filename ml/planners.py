"""Which planner a fan-out spec gets (k-fold, search, ensemble, compare): the registry, above
both `ml.fanout` and `ml.search`, so neither package imports the other's planners."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ml.context import RunContext
from ml.fanout.base import Planner
from ml.fanout.compare import ComparePlanner
from ml.fanout.ensemble import EnsemblePlanner
from ml.fanout.kfold import KFoldPlanner
from ml.search.planner import SearchPlanner
from ml.spec import parse_spec


# Decides whether a spec fans out, and with which planner; adding a kind is one entry.
def _kfold(spec: Any, context: RunContext) -> Planner | None:
    if getattr(spec, "kind", None) == "train" and spec.data.split.folds and spec.data.split.fold is None:
        return KFoldPlanner()
    return None


def _search(spec: Any, context: RunContext) -> Planner | None:
    if getattr(spec, "kind", None) == "search":
        return SearchPlanner(context)
    return None


def _ensemble(spec: Any, context: RunContext) -> Planner | None:
    if getattr(spec, "kind", None) == "ensemble":
        return EnsemblePlanner()
    return None


def _compare(spec: Any, context: RunContext) -> Planner | None:
    if getattr(spec, "kind", None) == "compare":
        return ComparePlanner()
    return None


PLANNER_FINDERS: list[Callable[[Any, RunContext], Planner | None]] = [_kfold, _search, _ensemble, _compare]


def planner_for(spec: Any, context: RunContext | None = None) -> Planner | None:
    """The planner of a fan-out spec (a model or a dict), or None for a single run."""
    if isinstance(spec, dict):
        spec = parse_spec(spec)
    for find in PLANNER_FINDERS:
        planner = find(spec, context or RunContext())
        if planner is not None:
            return planner
    return None

"""Optuna plumbing of a search: storages, studies, samplers and pruners by name, and the encoding
of a search space into Optuna distributions.

Storages: an SQLAlchemy URL (PostgreSQL in the lab set-up: Optuna's tables go to a schema of
their own, ``optuna``, which must exist (`trainlab migrate` creates it), unless the URL sets a
search_path in its ``options``), ``journal:<path>``
for a file journal (the embedded default: safe for several processes, unlike SQLite), or None
for one in-memory storage shared by everything in this process (unit tests, notebooks).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from ml.spec.search import CategoricalParam, FloatParam, IntParam, SearchExperimentSpec
from ml.spec.trial import PrunerSpec

_IN_PROCESS = InMemoryStorage()
OPTUNA_SCHEMA = "optuna"
# Optuna's INFO lines (one per trial) would repeat what the experiments' own records say.
optuna.logging.set_verbosity(optuna.logging.WARNING)
PRIMITIVE = (type(None), bool, int, float, str)


def optuna_storage(url: str | None) -> BaseStorage:
    """The storage a `RunContext.optuna_storage` names (cached per process).

    Args:
        url: an SQLAlchemy URL, ``journal:<path>``, or None for this process's in-memory storage.

    Returns:
        An Optuna storage.
    """
    return _IN_PROCESS if url is None else _cached_storage(url)


@lru_cache(maxsize=8)
def _cached_storage(url: str) -> BaseStorage:
    if url.startswith("journal:"):
        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql") and "options=" not in url:
        # Optuna keeps its schema version in `alembic_version`, the table where the service's
        # own migrations keep theirs: its tables live in a PostgreSQL schema of their own, which
        # the host creates (trainlab's migrations do; ml runs no DDL).
        engine_kwargs["connect_args"] = {"options": f"-csearch_path={OPTUNA_SCHEMA}"}
    return RDBStorage(url, engine_kwargs=engine_kwargs)


def load_trial(study_name: str, number: int, url: str | None, pruner: optuna.pruners.BasePruner) -> optuna.Trial:
    """A live handle on trial `number` of a stored study, to report to and ask about pruning.

    Raises:
        KeyError: no such study or trial in that storage.
    """
    storage = optuna_storage(url)
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)
    return optuna.trial.Trial(study, trial_id)


# --- the space --------------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """A categorical choice as Optuna stores it: primitives as they are, lists/objects as JSON."""
    return value if isinstance(value, PRIMITIVE) else json.dumps(value, sort_keys=True)


def decode(param: Any, stored: Any) -> Any:
    """The spec value of a stored parameter value."""
    if isinstance(param, CategoricalParam):
        for choice in param.choices:
            if encode(choice) == stored:
                return choice
        raise ValueError(f"{stored!r} is not one of the choices {param.choices}")
    return int(stored) if isinstance(param, IntParam) else float(stored)


def distributions(spec: SearchExperimentSpec) -> dict[str, BaseDistribution]:
    """One Optuna distribution per dotted path of the space."""
    out: dict[str, BaseDistribution] = {}
    for path, p in spec.space.items():
        if isinstance(p, FloatParam):
            out[path] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, IntParam):
            out[path] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
        else:
            out[path] = CategoricalDistribution([encode(c) for c in p.choices])
    return out


def grid_values(spec: SearchExperimentSpec) -> dict[str, list[Any]]:
    """The points of method grid: `grid` (or an even share of the budget) points per number."""
    sizes = [len(p.choices) for p in spec.space.values() if isinstance(p, CategoricalParam)]
    numeric = len(spec.space) - len(sizes)
    auto = max(2, math.floor((spec.trials / max(1, math.prod(sizes))) ** (1 / max(1, numeric)) + 1e-9))
    out: dict[str, list[Any]] = {}
    for path, p in spec.space.items():
        if isinstance(p, CategoricalParam):
            out[path] = [encode(c) for c in p.choices]
            continue
        k = p.grid or auto
        points = np.geomspace(p.low, p.high, k) if p.log else np.linspace(p.low, p.high, k)
        if p.step is not None:
            points = p.low + np.round((points - p.low) / p.step) * p.step
        if isinstance(p, IntParam):
            out[path] = sorted({int(round(v)) for v in points})
        else:
            out[path] = sorted({float(min(max(v, p.low), p.high)) for v in points})
    return out


def budget(spec: SearchExperimentSpec) -> int:
    """How many trials the search runs (a grid smaller than `trials` runs once over)."""
    if spec.method == "grid":
        return min(spec.trials, math.prod(len(v) for v in grid_values(spec).values()))
    return spec.trials


# --- samplers and pruners by name -------------------------------------------------------------


def _startup(spec: SearchExperimentSpec, default: int) -> int:
    return spec.startup_trials if spec.startup_trials is not None else default


SAMPLERS: dict[str, Callable[[SearchExperimentSpec, int], optuna.samplers.BaseSampler]] = {
    # The grid's order is shuffled by its seed once: it must be the same at every step.
    "grid": lambda s, seed: optuna.samplers.GridSampler(grid_values(s), seed=s.seed),
    "random": lambda s, seed: optuna.samplers.RandomSampler(seed=seed),
    "hypergradient": lambda s, seed: optuna.samplers.RandomSampler(seed=seed),
    "tpe": lambda s, seed: optuna.samplers.TPESampler(
        n_startup_trials=_startup(s, min(10, max(2, s.trials // 5))),
        multivariate=True,
        constant_liar=s.parallel > 1,
        seed=seed,
    ),
    "cmaes": lambda s, seed: optuna.samplers.CmaEsSampler(
        n_startup_trials=_startup(s, 0),
        independent_sampler=optuna.samplers.RandomSampler(seed=seed),
        warn_independent_sampling=False,
        seed=seed,
    ),
    "nsga2": lambda s, seed: optuna.samplers.NSGAIISampler(population_size=max(4, min(50, s.trials // 5)), seed=seed),
}


def build_sampler(spec: SearchExperimentSpec, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler of the spec's method, seeded.

    The host builds a new planner for every step of a search, so the caller varies `seed` with
    the number of trials asked so far: the same seed each time would draw the same points.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return SAMPLERS[spec.method](spec, seed % 2**31)


PRUNERS: dict[str, Callable[[PrunerSpec, int | None], optuna.pruners.BasePruner]] = {
    "none": lambda p, epochs: optuna.pruners.NopPruner(),
    # Epochs count from 1: the first `warmup_epochs` are never pruned.
    "median": lambda p, epochs: optuna.pruners.MedianPruner(
        n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs + 1
    ),
    "successive_halving": lambda p, epochs: optuna.pruners.SuccessiveHalvingPruner(
        min_resource=p.min_epochs, reduction_factor=p.reduction_factor
    ),
    "hyperband": lambda p, epochs: optuna.pruners.HyperbandPruner(
        min_resource=p.min_epochs, max_resource=epochs or "auto", reduction_factor=p.reduction_factor
    ),
}


def build_pruner(spec: PrunerSpec, max_epochs: int | None = None) -> optuna.pruners.BasePruner:
    """The pruner a spec names; `max_epochs` is Hyperband's largest resource."""
    return PRUNERS[spec.name](spec, max_epochs)

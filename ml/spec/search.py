"""Hyperparameter search specs: a base spec, a space over its fields, an objective, a method and
a budget; and the data-free analytic objective for comparing methods in seconds.

Pydantic only: importing this never imports torch or optuna.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from ml.spec.base import ExperimentHeader, StrictModel, base_with_defaults
from ml.spec.experiments import TrainExperimentSpec
from ml.spec.trial import OBJECTIVE_PATTERN, HypergradientSpec, PrunerSpec, TrialSpec

MAX_TRIALS = 500
MAX_PARALLEL = 32
MAX_GRID_POINTS = 100
PATH_PATTERN = r"^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*$"
# Fields of the base that a search may not vary: the server sets them, or they name the run.
FIXED_FIELDS = ("kind", "name", "trial", "description")
# Paths that name another object: searched over listed choices only, never over a numeric range
# (a range of ids would name every experiment in it).
REFERENCE_PATHS = ("data", "data.source", "init", "init.from_experiment")
# Spec validations a search's space may cost at submission (each choice is a whole base spec).
MAX_SPACE_VALUES = 512
MAXIMIZED: tuple[str, ...] = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "fbeta")
MAXIMIZED += ("roc_auc", "pr_auc", "iou", "r2")

AnalyticFunction = Literal["quadratic", "rosenbrock", "himmelblau"]


class DescentSpec(StrictModel):
    """Gradient descent on (h1, h2) from the spec's point, the step size adapted by hypergradient."""

    steps: int = Field(default=10, ge=1, le=10_000)
    lr: float = Field(default=0.01, gt=0.0, le=100.0, description="Initial step size.")
    hypergradient: HypergradientSpec | None = Field(default_factory=HypergradientSpec)


class AnalyticExperimentSpec(ExperimentHeader):
    """A cheap, data-free objective of two "hyperparameters" h1 and h2 (the course's HPO exercise).

    quadratic: (h1 - 1)^2 + (h2 - 2)^2; rosenbrock: (1 - h1)^2 + 100 (h2 - h1^2)^2; himmelblau:
    (h1^2 + h2 - 11)^2 + (h1 + h2^2 - 7)^2. The summary's `value` is f(h1, h2) (or, with
    `descent`, f at the end of a gradient descent started there). Every minimum is 0.
    """

    kind: Literal["analytic"] = "analytic"
    function: AnalyticFunction = "quadratic"
    h1: float = Field(default=0.0, ge=-1000.0, le=1000.0)
    h2: float = Field(default=0.0, ge=-1000.0, le=1000.0)
    descent: DescentSpec | None = None
    trial: TrialSpec | None = Field(default=None, description="Set by the server on a search trial.")


class FloatParam(StrictModel):
    """A real value in [low, high], on a log scale with `log`, on multiples of `step` with `step`."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0.0)
    grid: int | None = Field(default=None, ge=2, le=MAX_GRID_POINTS, description="Points for method grid.")

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"low ({self.low}) must be a number not above high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined")
        return self


class IntParam(StrictModel):
    """An integer in [low, high] (both included), every `step`, on a log scale with `log`."""

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(default=1, ge=1)
    log: bool = False
    grid: int | None = Field(default=None, ge=2, le=MAX_GRID_POINTS, description="Points for method grid.")

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not be above high ({self.high})")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("a log-scale integer range needs low >= 1 and step 1")
        return self


class CategoricalParam(StrictModel):
    """One of `choices`: numbers, strings, booleans, null, lists or objects (e.g. [64] or [128, 64])."""

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1, max_length=100)

    @field_validator("choices")
    @classmethod
    def _distinct(cls, choices: list[Any]) -> list[Any]:
        keys = [json.dumps(c, sort_keys=True) for c in choices]
        if len(set(keys)) != len(keys):
            raise ValueError("choices must be distinct")
        return choices


ParamSpec = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]
BaseSpec = Annotated[TrainExperimentSpec | AnalyticExperimentSpec, Field(discriminator="kind")]


class ObjectiveSpec(StrictModel):
    """What a trial is scored by: a validation metric (never the sealed test split) and a direction."""

    metric: str | None = Field(
        default=None,
        pattern=OBJECTIVE_PATTERN,
        description="validation.<metric> (loss, accuracy, f1, rmse, ...), or value for the analytic objective. "
        "Default: validation.loss (value for analytic).",
    )
    direction: Literal["minimize", "maximize"] | None = Field(
        default=None, description="Default: maximize for accuracy-like metrics, else minimize."
    )


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path (``train.optimizer.lr``, ``model.hidden.0``) in a spec dict, in place.

    Raises:
        ValueError: a part of the path runs through something that is not an object or list.
    """
    *parents, last = path.split(".")
    node: Any = spec
    for part in parents:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            if node.get(part) is None:  # absent or null: the field's defaults are filled in later
                node[part] = {}
            node = node[part]
        else:
            raise ValueError(f"{path}: cannot go into {part!r}")
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ValueError(f"{path}: cannot set {last!r}")


def sample_values(param: FloatParam | IntParam | CategoricalParam) -> list[Any]:
    """Values that validate the parameter's path against the base spec: the ends or every choice."""
    return list(param.choices) if isinstance(param, CategoricalParam) else [param.low, param.high]


def in_space(param: FloatParam | IntParam | CategoricalParam, value: Any) -> bool:
    """Whether a point's value is one the space allows: a listed choice, or a number in range.
    Every such value already made a valid base spec when the space was checked (its ends or its
    choices), so an enqueued point costs no spec validation of its own."""
    if isinstance(param, CategoricalParam):
        key = json.dumps(value, sort_keys=True)
        return any(json.dumps(c, sort_keys=True) == key for c in param.choices)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(param, IntParam) and not float(value).is_integer():
        return False
    return param.low <= value <= param.high


class SearchExperimentSpec(ExperimentHeader):
    """Find the hyperparameters of `base` that optimize a validation metric.

    Each trial is a child experiment (the base with the trial's values set at the space's dotted
    paths), run as its own worker task; at most `parallel` run at once. Methods: grid, random,
    tpe (Bayesian), cmaes (evolution strategy), nsga2 (genetic algorithm), hypergradient
    (random starting points, then the learning rate, or (h1, h2) on the analytic objective,
    adapted by gradient descent during each trial).
    """

    kind: Literal["search"] = "search"
    base: BaseSpec
    space: dict[Annotated[str, Field(pattern=PATH_PATTERN)], ParamSpec] = Field(min_length=1, max_length=32)
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    method: Literal["grid", "random", "tpe", "cmaes", "nsga2", "hypergradient"] = "tpe"
    trials: int = Field(default=20, ge=1, le=MAX_TRIALS, description="The trial budget.")
    parallel: int = Field(default=1, ge=1, le=MAX_PARALLEL, description="Trials queued or running at once.")
    max_failed: int | None = Field(
        default=None, ge=1, le=MAX_TRIALS, description="Stop the search (failed) after this many failed trials."
    )
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    startup_trials: int | None = Field(
        default=None, ge=0, le=MAX_TRIALS, description="tpe/cmaes: random trials before the model-based ones."
    )
    enqueue: list[dict[str, Any]] = Field(
        default_factory=list, max_length=MAX_TRIALS, description="Points tried first, in order (manual search)."
    )
    hypergradient: HypergradientSpec = Field(default_factory=HypergradientSpec)

    @field_validator("base", mode="before")
    @classmethod
    def _base_defaults(cls, value: Any, info: Any) -> Any:
        return base_with_defaults(value, info)

    @property
    def metric(self) -> str:
        """The objective's metric path (default by the base's kind)."""
        return self.objective.metric or ("value" if self.base.kind == "analytic" else "validation.loss")

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        """minimize or maximize."""
        return self.objective.direction or ("maximize" if self.metric.split(".")[-1] in MAXIMIZED else "minimize")

    def base_dict(self) -> dict[str, Any]:
        """The base spec as the user wrote it (unset defaults left out), with its kind."""
        return {"kind": self.base.kind, **self.base.model_dump(mode="json", exclude_unset=True)}

    @model_validator(mode="after")
    def _consistent(self) -> SearchExperimentSpec:
        base = self.base
        if base.trial is not None:
            raise ValueError("base.trial is set by the server on each trial; leave it out")
        if isinstance(base, TrainExperimentSpec) and base.data.split.folds:
            raise ValueError("a search trial cannot itself fan out: remove base.data.split.folds")
        if (self.metric == "value") != (base.kind == "analytic"):
            raise ValueError("objective.metric: use value for the analytic objective, validation.<metric> otherwise")
        hypergradient_train = self.method == "hypergradient" and isinstance(base, TrainExperimentSpec)
        if hypergradient_train and base.train.schedule.name != "constant":  # type: ignore[union-attr]
            raise ValueError("method hypergradient adapts the learning rate itself: use the constant schedule")
        if sum(len(sample_values(p)) for p in self.space.values()) > MAX_SPACE_VALUES:
            raise ValueError(f"space: at most {MAX_SPACE_VALUES} choices and range ends in all")
        for path, param in self.space.items():
            if not isinstance(param, CategoricalParam) and path in REFERENCE_PATHS:
                raise ValueError(f"space.{path}: a reference can only be searched over listed choices")
            self._check_path(path, sample_values(param))
        if self.enqueue and self.method == "grid":
            raise ValueError("enqueue does not combine with method grid (the grid fixes every point)")
        for i, point in enumerate(self.enqueue):
            unknown = set(point) - set(self.space)
            if unknown:
                raise ValueError(f"enqueue: {sorted(unknown)} not in the space")
            for path, value in point.items():
                if not in_space(self.space[path], value):
                    raise ValueError(f"enqueue.{i}: {path} = {value!r} is outside the space")
        return self

    def _check_path(self, path: str, values: list[Any]) -> None:
        if path.split(".")[0] in FIXED_FIELDS:
            raise ValueError(f"space.{path}: {path.split('.')[0]} cannot be searched")
        model = type(self.base)
        base = self.base_dict()
        for value in values:
            child = copy.deepcopy(base)
            try:
                set_path(child, path, value)
                validated = model.model_validate(child)
                if isinstance(validated, TrainExperimentSpec) and validated.data.split.folds:
                    raise ValueError("a search trial cannot itself fan out (data.split.folds)")
            except (ValueError, ValidationError) as exc:
                detail = exc.errors()[0] if isinstance(exc, ValidationError) else {"msg": str(exc)}
                where = ".".join(str(p) for p in detail.get("loc", ()))
                raise ValueError(
                    f"space.{path} = {value!r} does not make a valid base spec: {detail['msg']}"
                    + (f" (at {where})" if where else "")
                ) from None

"""What a search trial carries: which study and trial it is, how it may be pruned, and the
hypergradient settings of the gradient-based method. The server sets it on each trial of a
`search`; nobody writes it by hand. Pydantic only: importing this never imports torch or optuna.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ml.spec.base import MAX_EPOCHS, StrictModel

PrunerName = Literal["none", "median", "successive_halving", "hyperband"]
OBJECTIVE_PATTERN = r"^(value|validation\.[a-z][a-z0-9_]*)$"


class PrunerSpec(StrictModel):
    """Stops poor trials early from their per-epoch validation metric (Optuna's pruners).

    - ``median``: prune a trial whose value at an epoch is worse than the median of earlier
      trials at that epoch (after `startup_trials` complete trials and `warmup_epochs` epochs).
    - ``successive_halving``: keep the best 1/`reduction_factor` of trials at each rung
      (`min_epochs`, x `reduction_factor`, ...).
    - ``hyperband``: several successive-halving brackets with different `min_epochs`.
    """

    name: PrunerName = "none"
    startup_trials: int = Field(default=3, ge=0, le=500, description="median: complete trials before pruning.")
    warmup_epochs: int = Field(
        default=2, ge=0, le=MAX_EPOCHS, description="median: epochs before a trial can be pruned."
    )
    min_epochs: int = Field(default=1, ge=1, le=MAX_EPOCHS, description="successive_halving/hyperband: first rung.")
    reduction_factor: int = Field(
        default=3, ge=2, le=10, description="successive_halving/hyperband: 1/n kept per rung."
    )

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class HypergradientSpec(StrictModel):
    """Hypergradient descent on the learning rate (Baydin et al. 2018), after every step.

    additive: lr <- lr + beta * g_t . d_{t-1}; multiplicative: lr <- lr * (1 + beta * cos(g_t,
    d_{t-1})), where g_t is the new gradient and d_{t-1} the previous update's direction per unit
    of learning rate (-g for plain SGD). The multiplicative rule is scale-free, hence the default.
    """

    beta: float = Field(default=0.02, gt=0.0, le=1.0, description="Hypergradient learning rate.")
    rule: Literal["multiplicative", "additive"] = "multiplicative"
    steps: int = Field(
        default=10, ge=1, le=10_000, description="Analytic objective only: gradient steps of each trial."
    )
    lr: float = Field(
        default=0.01, gt=0.0, le=100.0, description="Analytic objective only: the initial step size of each trial."
    )


class TrialSpec(StrictModel):
    """Set by the server on a trial of a search: the Optuna study and trial it reports to."""

    study: str = Field(min_length=1, max_length=200, description="The Optuna study's name.")
    number: int = Field(ge=0, le=100_000, description="The trial's number in the study.")
    metric: str = Field(
        default="validation.loss", pattern=OBJECTIVE_PATTERN, description="Reported to the study after each epoch."
    )
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    max_epochs: int | None = Field(default=None, ge=1, le=MAX_EPOCHS, description="The pruners' largest resource.")
    hypergradient: HypergradientSpec | None = Field(
        default=None, description="Adapt the learning rate by hypergradient descent during training."
    )

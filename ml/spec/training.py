"""How to train: epochs, batches, optimizer, learning-rate schedule, regularization, early stopping.

Pydantic only (no torch). Every optional hyperparameter left out (None) means "the default of
that optimizer or schedule", so a spec stays valid when only its `name` is changed (a search
or a comparison over optimizers edits just the name).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ml.spec.base import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_GPUS, StrictModel

# --- optimizers -------------------------------------------------------------------------------

# name -> the keyword arguments it takes and their defaults (torch's own defaults, except where
# a name implies a value: `momentum` and `nesterov` are SGD with momentum 0.9). The torch side
# (`ml.training.optimizers.OPTIMIZERS`) has one entry per name; adding an optimizer is one entry in each.
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 1e-3, "momentum": 0.0, "weight_decay": 0.0},
    "momentum": {"lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0},
    "nesterov": {"lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0},
    "adagrad": {"lr": 1e-2, "lr_decay": 0.0, "eps": 1e-10, "weight_decay": 0.0},
    "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0},
    "rmsprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False, "weight_decay": 0.0},
    "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False, "weight_decay": 0.0},
    "adamw": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False, "weight_decay": 1e-2},
}
OptimizerName = Literal["sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw"]


def _applies_to(param: str) -> str:
    return ", ".join(name for name, defaults in OPTIMIZER_DEFAULTS.items() if param in defaults)


class OptimizerSpec(StrictModel):
    """An optimizer from the registry (`ml.training.optimizers`) with its hyperparameters.

    Names: sgd, momentum (SGD with momentum), nesterov (NAG), adagrad, adadelta, rmsprop, adam,
    adamw. A hyperparameter that does not apply to the named optimizer is an error.
    """

    name: OptimizerName = "adam"
    lr: float | None = Field(
        default=None,
        gt=0.0,
        le=100.0,
        description="Learning rate (the peak rate under a warm-up). Default: 0.001 for sgd, "
        "momentum, nesterov, adam, adamw; 0.01 for adagrad and rmsprop; 1.0 for adadelta.",
    )
    momentum: float | None = Field(
        default=None, ge=0.0, lt=1.0, description=f"Inertia of the update. Applies to: {_applies_to('momentum')}."
    )
    betas: tuple[float, float] | None = Field(
        default=None, description=f"Decay rates of the moment estimates. Applies to: {_applies_to('betas')}."
    )
    eps: float | None = Field(
        default=None, gt=0.0, le=1.0, description=f"Denominator guard. Applies to: {_applies_to('eps')}."
    )
    rho: float | None = Field(
        default=None, gt=0.0, lt=1.0, description=f"Decay of the squared averages. Applies to: {_applies_to('rho')}."
    )
    alpha: float | None = Field(
        default=None, gt=0.0, lt=1.0, description=f"Smoothing constant. Applies to: {_applies_to('alpha')}."
    )
    centered: bool | None = Field(default=None, description=f"Applies to: {_applies_to('centered')}.")
    amsgrad: bool | None = Field(default=None, description=f"Applies to: {_applies_to('amsgrad')}.")
    lr_decay: float | None = Field(default=None, ge=0.0, le=1.0, description=f"Applies to: {_applies_to('lr_decay')}.")
    weight_decay: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="L2 weight decay inside the optimizer (decoupled for adamw). Default 0, 0.01 for adamw.",
    )

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float] | None) -> tuple[float, float] | None:
        if betas is not None and not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError("betas must both be in [0, 1)")
        return betas

    @model_validator(mode="after")
    def _parameters_apply(self) -> OptimizerSpec:
        allowed = OPTIMIZER_DEFAULTS[self.name]
        for param in type(self).model_fields:
            if param != "name" and getattr(self, param) is not None and param not in allowed:
                raise ValueError(
                    f"optimizer {self.name!r} takes no {param!r} (it takes {', '.join(allowed)}); "
                    f"{param!r} applies to: {_applies_to(param)}"
                )
        if self.name == "nesterov" and self.momentum == 0.0:
            raise ValueError("nesterov needs a momentum > 0")
        return self

    def params(self) -> dict[str, Any]:
        """The optimizer's keyword arguments: its defaults, overridden by what the spec sets.

        Returns:
            e.g. ``{"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, ...}`` for adam.
        """
        defaults = OPTIMIZER_DEFAULTS[self.name]
        return {k: v if (v := getattr(self, k)) is not None else default for k, default in defaults.items()}

    @property
    def initial_lr(self) -> float:
        """The learning rate the spec asks for (or the optimizer's default)."""
        return float(self.params()["lr"])


# --- learning-rate schedules ------------------------------------------------------------------
# Every schedule but one_cycle changes the rate once per epoch (after it); one_cycle after every
# batch. Epochs are counted from 1; the rate logged for an epoch is the rate it trained at (for
# one_cycle: the rate of its first batch).


class ConstantSchedule(StrictModel):
    """The optimizer's learning rate throughout."""

    name: Literal["constant"] = "constant"


class StepSchedule(StrictModel):
    """Multiply the rate by `gamma` every `step_size` epochs."""

    name: Literal["step"]
    step_size: int = Field(ge=1, le=MAX_EPOCHS, description="Epochs between two decays.")
    gamma: float = Field(default=0.1, gt=0.0, le=1.0)


class ExponentialSchedule(StrictModel):
    """Multiply the rate by `gamma` after every epoch."""

    name: Literal["exponential"]
    gamma: float = Field(default=0.95, gt=0.0, le=1.0)


class CosineSchedule(StrictModel):
    """Cosine decay from the optimizer's rate (epoch 1) to `min_lr` (the last epoch)."""

    name: Literal["cosine"]
    min_lr: float = Field(default=0.0, ge=0.0)


class WarmupSchedule(StrictModel):
    """Linear warm-up, then a decay.

    Epoch 1 trains at `warmup_start_factor` x lr; the rate rises linearly during the
    `warmup_epochs` warm-up epochs, and epoch `warmup_epochs + 1` is the first at the peak (the
    optimizer's lr). From there it decays to `min_lr` at the last epoch (linear, cosine), or by
    `gamma` per epoch (exponential), or stays (none).
    """

    name: Literal["warmup"]
    warmup_epochs: int = Field(ge=1, le=MAX_EPOCHS, description="Epochs below the peak rate.")
    warmup_start_factor: float = Field(default=0.1, gt=0.0, le=1.0, description="First epoch's rate / peak rate.")
    decay: Literal["none", "linear", "cosine", "exponential"] = "cosine"
    min_lr: float | None = Field(default=None, ge=0.0, description="Final rate of linear/cosine decay (default 0).")
    gamma: float | None = Field(default=None, gt=0.0, le=1.0, description="Exponential decay per epoch (0.95).")

    @model_validator(mode="after")
    def _decay_parameters(self) -> WarmupSchedule:
        if self.gamma is not None and self.decay != "exponential":
            raise ValueError(f"gamma applies to decay 'exponential' only, not {self.decay!r}")
        if self.min_lr is not None and self.decay not in ("linear", "cosine"):
            raise ValueError(f"min_lr applies to decay 'linear' or 'cosine' only, not {self.decay!r}")
        return self


class ReduceOnPlateauSchedule(StrictModel):
    """Multiply the rate by `factor` when the validation loss has not improved for `patience` epochs."""

    name: Literal["reduce_on_plateau"]
    factor: float = Field(default=0.1, gt=0.0, lt=1.0)
    patience: int = Field(default=5, ge=0, le=MAX_EPOCHS)
    min_lr: float = Field(default=0.0, ge=0.0)


class OneCycleSchedule(StrictModel):
    """Smith's one-cycle policy, stepped after every batch: up to `max_lr`, then far below.

    Starts at max_lr / div_factor, reaches max_lr after `pct_start` of all batches, and anneals
    (cosine) to max_lr / (div_factor * final_div_factor). Momentum (or Adam's beta1) cycles
    inversely when the optimizer has one.
    """

    name: Literal["one_cycle"]
    max_lr: float | None = Field(default=None, gt=0.0, le=100.0, description="Peak rate (default: optimizer lr).")
    pct_start: float = Field(default=0.3, gt=0.0, lt=1.0)
    div_factor: float = Field(default=25.0, ge=1.0)
    final_div_factor: float = Field(default=1e4, ge=1.0)


ScheduleSpec = Annotated[
    ConstantSchedule
    | StepSchedule
    | ExponentialSchedule
    | CosineSchedule
    | WarmupSchedule
    | ReduceOnPlateauSchedule
    | OneCycleSchedule,
    Field(discriminator="name"),
]
SCHEDULE_NAMES = ("constant", "step", "exponential", "cosine", "warmup", "reduce_on_plateau", "one_cycle")

# --- regularization ---------------------------------------------------------------------------


class ElasticNetSpec(StrictModel):
    """alpha x (l1_ratio x sum|w| + (1 - l1_ratio) / 2 x sum w^2), scikit-learn's convention."""

    alpha: float = Field(gt=0.0, le=10.0)
    l1_ratio: float = Field(default=0.5, ge=0.0, le=1.0)


class MaxNormSpec(StrictModel):
    """After each optimizer step, scale weights down so that their L2 norm is at most `value`."""

    value: float = Field(gt=0.0, le=1e4)
    per: Literal["neuron", "layer"] = Field(
        default="neuron",
        description="neuron: each unit's incoming weights (a row, or a conv filter); layer: a layer's whole weight.",
    )


class RegularizationSpec(StrictModel):
    """Penalties added to the training loss, constraints applied after each step, noise on the inputs.

    Penalties cover weight matrices and convolution kernels; biases and batch-norm parameters
    only with `include_bias`. The reported training loss is the data loss; the penalty is
    reported apart (`train/penalty`). Dropout is in the model; weight decay in the optimizer.
    """

    l1: float = Field(default=0.0, ge=0.0, le=10.0, description="l1 x sum|w| (LASSO).")
    l2: float = Field(default=0.0, ge=0.0, le=10.0, description="l2 x sum w^2 (ridge).")
    elastic_net: ElasticNetSpec | None = None
    include_bias: bool = Field(default=False, description="Penalize biases and batch-norm parameters too.")
    max_norm: MaxNormSpec | None = Field(default=None, description="A number is shorthand for {value: n}.")
    input_dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Fraction of input values hidden (zeroed) in training batches."
    )
    clip_grad_norm: float | None = Field(
        default=None, gt=0.0, description="Rescale gradients whose global L2 norm exceeds this."
    )

    @field_validator("max_norm", mode="before")
    @classmethod
    def _max_norm_shorthand(cls, value: Any) -> Any:
        return {"value": value} if isinstance(value, int | float) and not isinstance(value, bool) else value

    @property
    def penalty_coefficients(self) -> tuple[float, float]:
        """The total (L1, L2) coefficients, elastic net included."""
        l1, l2 = self.l1, self.l2
        if self.elastic_net is not None:
            l1 += self.elastic_net.alpha * self.elastic_net.l1_ratio
            l2 += self.elastic_net.alpha * (1.0 - self.elastic_net.l1_ratio) / 2.0
        return l1, l2


# --- the rest ---------------------------------------------------------------------------------


# What early stopping can watch, and whether larger is better. Each is measured on the
# validation split after every epoch; `val_loss` is weighted like the training loss.
MONITORS: dict[str, bool] = {
    "val_loss": False,
    "val_accuracy": True,
    "val_balanced_accuracy": True,
    "val_roc_auc": True,
    "val_pr_auc": True,
    "val_f1": True,
    "val_rmse": False,
    "val_mae": False,
    "val_r2": True,
}
CLASSIFICATION_MONITORS = ("val_accuracy", "val_balanced_accuracy", "val_roc_auc", "val_pr_auc", "val_f1")
REGRESSION_MONITORS = ("val_rmse", "val_mae", "val_r2")
Monitor = Literal[
    "val_loss",
    "val_accuracy",
    "val_balanced_accuracy",
    "val_roc_auc",
    "val_pr_auc",
    "val_f1",
    "val_rmse",
    "val_mae",
    "val_r2",
]


class EarlyStoppingSpec(StrictModel):
    """Stop when the monitored validation value has not improved for `patience` epochs.

    ``val_loss`` is the validation loss weighted like the training loss (under class balancing,
    the validation rows count with the training part's class mix). Any other monitor is a
    validation metric computed every epoch: classification ``val_accuracy``,
    ``val_balanced_accuracy``, ``val_roc_auc``, ``val_pr_auc``, ``val_f1`` (binary:
    ROC-AUC, average precision and F1 of the positive class; multiclass: macro one-vs-rest
    ROC-AUC and average precision, macro F1); regression ``val_rmse``, ``val_mae``, ``val_r2``.
    The direction (lower or higher is better) follows the metric.
    """

    monitor: Monitor = Field(default="val_loss", description="val_loss or a validation metric (see above).")
    patience: int = Field(default=10, ge=1, le=MAX_EPOCHS)
    min_delta: float = Field(default=0.0, ge=0.0)
    restore_best: bool = Field(default=True, description="Put back the weights of the best epoch.")

    @property
    def higher_is_better(self) -> bool:
        return MONITORS[self.monitor]

    @property
    def metric(self) -> str:
        """The monitored value's name in the validation curves (``loss``, ``roc_auc``...)."""
        return self.monitor.removeprefix("val_")


class LrRangeTestSpec(StrictModel):
    """A learning-rate range test before training: one batch per rate, rates log-spaced."""

    start_lr: float = Field(default=1e-7, gt=0.0, le=100.0)
    end_lr: float = Field(default=10.0, gt=0.0, le=1000.0)
    steps: int = Field(default=100, ge=10, le=1000)
    smoothing: float = Field(default=0.9, ge=0.0, lt=1.0, description="Exponential smoothing of the loss.")
    rule: Literal["steepest", "min_loss"] = Field(
        default="steepest",
        description="steepest: where the smoothed loss falls fastest; min_loss: a tenth of the rate at its minimum.",
    )

    @model_validator(mode="after")
    def _increasing(self) -> LrRangeTestSpec:
        if self.end_lr <= self.start_lr:
            raise ValueError("end_lr must be larger than start_lr")
        return self


class DistributedSpec(StrictModel):
    """Data-parallel training (DistributedDataParallel): several processes each train on their own
    shard of the training rows and average their gradients every step. On GPUs it is one process
    per GPU (with ``resources.gpus`` equal to ``processes``; ``resources.gpus`` alone only routes
    the run and trains one process); on the CPU (``device: cpu``) the processes talk through gloo."""

    processes: int = Field(
        ge=1,
        le=MAX_GPUS,
        description="Data-parallel processes; train.batch_size is the total batch of a step, split evenly among them.",
    )


class TrainSpec(StrictModel):
    """The training loop's settings."""

    epochs: int = Field(default=50, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(default=64, ge=1, le=MAX_BATCH_SIZE)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(
        default_factory=ConstantSchedule,
        description="Learning-rate schedule: " + ", ".join(SCHEDULE_NAMES) + " (default constant).",
    )
    regularization: RegularizationSpec = Field(default_factory=RegularizationSpec)
    early_stopping: EarlyStoppingSpec | None = None
    mixed_precision: bool = Field(
        default=False, description="Autocast to bfloat16/float16 on CUDA; ignored (with a note) on CPU."
    )
    lr_range_test: LrRangeTestSpec | None = Field(
        default=None, description="Run a learning-rate range test before training (plot + suggested rate)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: CUDA when the worker has one, else CPU."
    )
    distributed: DistributedSpec | None = Field(
        default=None,
        description="Data-parallel processes (default: one per GPU of resources.gpus, else one).",
    )

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule_shorthand(cls, value: Any) -> Any:
        # `{warmup_epochs: 5, decay: cosine}` (no name) reads as a warm-up schedule; null as constant.
        if value is None:
            return {"name": "constant"}
        if isinstance(value, dict) and "name" not in value and "warmup_epochs" in value:
            return {**value, "name": "warmup"}
        return value

    @model_validator(mode="after")
    def _schedule_fits(self) -> TrainSpec:
        schedule, peak = self.schedule, self.optimizer.initial_lr
        if isinstance(schedule, WarmupSchedule) and schedule.warmup_epochs >= self.epochs:
            raise ValueError(
                f"schedule.warmup_epochs ({schedule.warmup_epochs}) must be smaller than epochs ({self.epochs})"
            )
        min_lr = getattr(schedule, "min_lr", None)
        if min_lr is not None and not isinstance(schedule, ReduceOnPlateauSchedule) and min_lr > peak:
            raise ValueError(f"schedule.min_lr ({min_lr:g}) must not exceed the optimizer's lr ({peak:g})")
        return self

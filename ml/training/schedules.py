"""Learning-rate schedules by name. Adding one is one entry in `SCHEDULES` (and a spec model).

When a schedule changes the rate:
- constant, step, exponential, cosine, warmup and reduce_on_plateau once per epoch, after it
  (reduce_on_plateau looks at that epoch's validation loss, or the training loss without a
  validation split);
- one_cycle after every batch.

Epochs are counted from 1. The per-epoch schedules are closed forms of the epoch number
(`epoch_factor`), so the rate of any epoch can be computed without training: epoch 1 trains at
``lr * factor(0)``, epoch e at ``lr * factor(e - 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR, ReduceLROnPlateau

from ml.spec.training import (
    CosineSchedule,
    ExponentialSchedule,
    OneCycleSchedule,
    ReduceOnPlateauSchedule,
    StepSchedule,
    WarmupSchedule,
)


@dataclass
class LrSchedule:
    """A built schedule and when the training loop steps it."""

    scheduler: LRScheduler | ReduceLROnPlateau | None
    per_batch: bool = False
    on_metric: bool = False

    def after_batch(self) -> None:
        """Called after every optimizer step."""
        if self.per_batch and self.scheduler is not None:
            self.scheduler.step()

    def after_epoch(self, monitored: float) -> None:
        """Called after every epoch with the monitored loss (validation loss when there is one)."""
        if self.scheduler is None or self.per_batch:
            return
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(monitored)
        else:
            self.scheduler.step()


# --- closed forms: the factor of the optimizer's lr at a 0-based epoch index -------------------


def _cosine(progress: float, floor: float) -> float:
    """From 1 (progress 0) to `floor` (progress 1) along half a cosine."""
    return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * progress)) / 2.0


def _step(spec: StepSchedule, index: int, epochs: int, lr: float) -> float:
    return float(spec.gamma ** (index // spec.step_size))


def _exponential(spec: ExponentialSchedule, index: int, epochs: int, lr: float) -> float:
    return float(spec.gamma**index)


def _cosine_decay(spec: CosineSchedule, index: int, epochs: int, lr: float) -> float:
    return _cosine(index / (epochs - 1), spec.min_lr / lr) if epochs > 1 else 1.0


def _warmup(spec: WarmupSchedule, index: int, epochs: int, lr: float) -> float:
    warm = spec.warmup_epochs
    if index < warm:  # epochs 1..warm climb linearly; epoch warm + 1 is the first at the peak
        return spec.warmup_start_factor + (1.0 - spec.warmup_start_factor) * index / warm
    after_peak, decay_epochs = index - warm, epochs - 1 - warm
    progress = after_peak / decay_epochs if decay_epochs > 0 else 0.0
    floor = (spec.min_lr or 0.0) / lr
    decays: dict[str, Callable[[], float]] = {
        "none": lambda: 1.0,
        "linear": lambda: 1.0 - progress * (1.0 - floor),
        "cosine": lambda: _cosine(progress, floor),
        "exponential": lambda: float((spec.gamma or 0.95) ** after_peak),
    }
    return decays[spec.decay]()


EPOCH_FACTORS: dict[str, Callable[[Any, int, int, float], float]] = {
    "constant": lambda spec, index, epochs, lr: 1.0,
    "step": _step,
    "exponential": _exponential,
    "cosine": _cosine_decay,
    "warmup": _warmup,
}


def epoch_factor(spec: Any, index: int, epochs: int, lr: float) -> float:
    """The multiplier of the optimizer's rate for a per-epoch closed-form schedule.

    Args:
        spec: a schedule spec named in `EPOCH_FACTORS`.
        index: the 0-based epoch index (epoch 1 is index 0).
        epochs: the run's number of epochs.
        lr: the optimizer's (peak) learning rate, to turn an absolute `min_lr` into a factor.

    Returns:
        The factor; the epoch trains at ``lr * factor``.
    """
    return EPOCH_FACTORS[spec.name](spec, index, epochs, lr)


# --- builders ---------------------------------------------------------------------------------


def _closed_form(spec: Any, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> LrSchedule:
    if spec.name == "constant":
        return LrSchedule(None)  # nothing to step: keep the loop free of needless calls
    lr = optimizer.param_groups[0]["lr"]
    return LrSchedule(LambdaLR(optimizer, lambda index: epoch_factor(spec, index, epochs, lr)))


def _plateau(
    spec: ReduceOnPlateauSchedule, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int
) -> LrSchedule:
    scheduler = ReduceLROnPlateau(optimizer, mode="min", factor=spec.factor, patience=spec.patience, min_lr=spec.min_lr)
    return LrSchedule(scheduler, on_metric=True)


def _one_cycle(
    spec: OneCycleSchedule, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int
) -> LrSchedule:
    group = optimizer.param_groups[0]
    # Cycle the momentum only where the optimizer has one: cycling plain SGD's (zero) momentum
    # would silently turn it into momentum SGD.
    has_momentum = "betas" in group or group.get("momentum", 0.0) > 0.0
    scheduler = OneCycleLR(
        optimizer,
        max_lr=spec.max_lr or group["lr"],
        total_steps=max(epochs * steps_per_epoch, 2),
        pct_start=spec.pct_start,
        div_factor=spec.div_factor,
        final_div_factor=spec.final_div_factor,
        cycle_momentum=has_momentum,
    )
    return LrSchedule(scheduler, per_batch=True)


ScheduleBuilder = Callable[[Any, torch.optim.Optimizer, int, int], LrSchedule]
SCHEDULES: dict[str, ScheduleBuilder] = {
    "constant": _closed_form,
    "step": _closed_form,
    "exponential": _closed_form,
    "cosine": _closed_form,
    "warmup": _closed_form,
    "reduce_on_plateau": _plateau,
    "one_cycle": _one_cycle,
}


def build_schedule(spec: Any, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> LrSchedule:
    """Attach the schedule a spec names to an optimizer.

    Args:
        spec: a schedule spec (`ml.spec.training.ScheduleSpec`).
        optimizer: sets the peak rate; the schedule changes its param groups' ``lr``.
        epochs: the run's number of epochs (cosine and warm-up decay end at the last one).
        steps_per_epoch: batches per epoch (one_cycle's length is epochs x steps_per_epoch).

    Returns:
        The schedule with its stepping rule (per batch or per epoch).
    """
    return SCHEDULES[spec.name](spec, optimizer, epochs, steps_per_epoch)

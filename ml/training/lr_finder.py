"""The learning-rate range test (Smith; the fast.ai "lr finder").

Train a copy of the model for `steps` batches while the learning rate grows exponentially
from `start_lr` to `end_lr`, one batch per rate, and watch the (smoothed) training loss: it
stays flat while the rate is too small, falls fastest around a good rate, and shoots up once
the rate is too large. The suggestion is the rate of steepest descent of the smoothed loss
(or, with ``rule="min_loss"``, a tenth of the rate at the minimum loss).

Unlike the training loop this reads every loss back from the device, but only once, at the end.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.plots import overlay_curves_png
from ml.reporter import Reporter
from ml.spec.base import Task
from ml.spec.training import TrainSpec
from ml.training.loop import Tensors, fit_shape, loss_function
from ml.training.optimizers import build_optimizer

# The sweep stops counting once the smoothed loss is this many times its minimum (it diverged).
DIVERGED_FACTOR = 4.0


def _steepest(lrs: np.ndarray, loss: np.ndarray) -> float:
    """The rate where the smoothed loss falls fastest against log(lr)."""
    if len(lrs) < 2:
        return float(lrs[0])
    return float(lrs[int(np.argmin(np.gradient(loss, np.log10(lrs))))])


def _tenth_of_minimum(lrs: np.ndarray, loss: np.ndarray) -> float:
    """A tenth of the rate at the smoothed loss's minimum (safely below where it blows up)."""
    return float(lrs[int(np.argmin(loss))]) / 10.0


RULES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "steepest": _steepest,
    "min_loss": _tenth_of_minimum,
}


def _smooth(values: list[float], beta: float) -> list[float]:
    """Exponential moving average with bias correction (the first values are not pulled to 0)."""
    out, avg = [], 0.0
    for i, value in enumerate(values, start=1):
        avg = beta * avg + (1.0 - beta) * value
        out.append(avg / (1.0 - beta**i))
    return out


def _sweep(
    model: nn.Module,
    data: Tensors,
    train: TrainSpec,
    task: Task,
    generator: torch.Generator,
    lrs: list[float],
    class_weights: torch.Tensor | None,
) -> torch.Tensor:
    """Train a copy of `model` one batch per rate; return the losses (on the device)."""
    probe = copy.deepcopy(model)
    probe.train()
    optimizer = build_optimizer(probe.parameters(), train.optimizer)
    criterion = loss_function(task, class_weights)
    n, batch = len(data.X_train), train.batch_size
    order, cursor, losses = torch.randperm(n, generator=generator), 0, []
    for lr in lrs:
        if cursor + min(batch, n) > n:  # a new epoch: reshuffle
            order, cursor = torch.randperm(n, generator=generator), 0
        idx = order[cursor : cursor + batch].to(data.X_train.device)
        cursor += batch
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = criterion(fit_shape(probe(data.X_train[idx]), task), data.y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)


def lr_range_test(
    model: nn.Module,
    data: Tensors,
    train: TrainSpec,
    task: Task,
    generator: torch.Generator,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    smoothing: float = 0.9,
    rule: str = "steepest",
    class_weights: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Sweep the learning rate exponentially over `steps` training batches.

    Args:
        model: the network; it is not changed (the sweep trains a copy).
        data: the training tensors (the validation part is not used).
        train: the training spec: its optimizer (with its momentum, betas...) and batch size.
        task: ``classification`` or ``regression``.
        generator: the seeded generator that shuffles the batches.
        start_lr: the first rate.
        end_lr: the last rate.
        steps: how many batches (and rates).
        smoothing: the moving average's beta (0: no smoothing).
        rule: ``steepest`` (steepest descent) or ``min_loss`` (a tenth of the minimum's rate).
        class_weights: per-class weights of the loss, as in training.

    Returns:
        ``{"lrs", "losses" (smoothed), "raw_losses", "suggested_lr", "rule"}``; the lists stop
        where the loss diverged.
    """
    lrs = [start_lr * (end_lr / start_lr) ** (i / (steps - 1)) for i in range(steps)]
    device = data.X_train.device
    # Dropout in the probe draws from the global generators: fork them, so that the training
    # that follows is the same with or without the test.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        losses = _sweep(model, data, train, task, generator, lrs, class_weights)
    raw = losses.tolist()  # the one host sync

    kept = next((i for i, value in enumerate(raw) if not math.isfinite(value)), len(raw))
    smoothed = _smooth(raw[:kept], smoothing)
    best = math.inf
    for i, value in enumerate(smoothed):
        best = min(best, value)
        if value > DIVERGED_FACTOR * best and i > 0:
            kept = i
            break
    kept = max(kept, 1)
    lr_kept, loss_kept = np.array(lrs[:kept]), np.array(smoothed[:kept] or raw[:1])
    return {
        "lrs": lrs[:kept],
        "losses": loss_kept.tolist(),
        "raw_losses": raw[:kept],
        "suggested_lr": RULES[rule](lr_kept, loss_kept),
        "rule": rule,
    }


def lr_range_test_png(result: dict[str, Any]) -> bytes:
    """The loss along the sweep (x: the step; the rate grows exponentially with it).

    Args:
        result: what `lr_range_test` returned.

    Returns:
        PNG bytes.
    """
    lrs = result["lrs"]
    return overlay_curves_png(
        {"loss (smoothed)": result["losses"], "loss": result["raw_losses"]},
        title=f"Learning-rate range test: suggested lr {result['suggested_lr']:.3g}",
        ylabel="training loss",
        xlabel=f"step (lr from {lrs[0]:.1e} to {lrs[-1]:.1e}, log-spaced)",
    )


def run_lr_range_test(
    model: nn.Module,
    data: Tensors,
    train: TrainSpec,
    task: Task,
    generator: torch.Generator,
    reporter: Reporter,
    class_weights: torch.Tensor | None = None,
) -> dict[str, Any] | None:
    """Run the range test `train.lr_range_test` asks for; store its plot; say what it suggests.

    Args:
        model: the network (unchanged).
        data: the training tensors.
        train: the training spec; nothing is done when its ``lr_range_test`` is None.
        task: ``classification`` or ``regression``.
        generator: shuffles the sweep's batches (use a generator of its own, so that the
            training that follows sees the same batches as without the test).
        reporter: receives ``lr_range_test.png`` and a log line.
        class_weights: per-class weights of the loss.

    Returns:
        The result of `lr_range_test`, or None.
    """
    settings = train.lr_range_test
    if settings is None:
        return None
    result = lr_range_test(
        model,
        data,
        train,
        task,
        generator,
        start_lr=settings.start_lr,
        end_lr=settings.end_lr,
        steps=settings.steps,
        smoothing=settings.smoothing,
        rule=settings.rule,
        class_weights=class_weights,
    )
    reporter.save_artifact("lr_range_test.png", lr_range_test_png(result), "image/png")
    reporter.log(
        f"learning-rate range test: suggested lr {result['suggested_lr']:.3g} "
        f"(the spec trains at {train.optimizer.initial_lr:g})"
    )
    return result

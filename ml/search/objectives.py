"""The analytic objective: a data-free "training run" that scores two hyperparameters in
microseconds, so search methods can be compared in seconds (the course's HPO exercise).

With `descent`, a trial is a gradient descent on (h1, h2) from the sampled point whose step size
adapts by hypergradient descent: the gradient-based search method, shown where the objective is
differentiable in its hyperparameters.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from ml.context import RunContext
from ml.errors import TrainingDiverged
from ml.reporter import Reporter
from ml.search.trial import trial_reporter
from ml.spec.search import AnalyticExperimentSpec
from ml.training.optimizer_hooks import Hypergradient

Objective = Callable[[Any, Any], Any]  # works on floats and on torch tensors alike

# name -> (f(h1, h2), a point where f is 0, its minimum).
FUNCTIONS: dict[str, tuple[Objective, tuple[float, float]]] = {
    "quadratic": (lambda a, b: (a - 1) ** 2 + (b - 2) ** 2, (1.0, 2.0)),
    "rosenbrock": (lambda a, b: (1 - a) ** 2 + 100 * (b - a**2) ** 2, (1.0, 1.0)),
    "himmelblau": (lambda a, b: (a**2 + b - 11) ** 2 + (a + b**2 - 7) ** 2, (3.0, 2.0)),
}


def analytic_value(function: str, h1: float, h2: float) -> float:
    """f(h1, h2) for a function of `FUNCTIONS`."""
    return float(FUNCTIONS[function][0](h1, h2))


def _descend(spec: AnalyticExperimentSpec, reporter: Reporter) -> dict[str, Any]:
    assert spec.descent is not None
    f = FUNCTIONS[spec.function][0]
    h = torch.tensor([spec.h1, spec.h2], dtype=torch.float64, requires_grad=True)
    params: list[Any] = [h]  # a plain tensor is what SGD needs here (torch types ask for Parameters)
    optimizer = torch.optim.SGD(params, lr=spec.descent.lr)
    hd = Hypergradient(params, spec.descent.hypergradient) if spec.descent.hypergradient else None
    with hd.active() if hd else contextlib.nullcontext():
        for step in range(1, spec.descent.steps + 1):
            lr = optimizer.param_groups[0]["lr"]
            optimizer.zero_grad()
            f(h[0], h[1]).backward()
            optimizer.step()
            value = float(f(*h.detach()))
            if not math.isfinite(value):
                cause = f"the hypergradient beta {hd.spec.beta:g} is" if hd else f"the step size {lr:g} is"
                raise TrainingDiverged(f"diverged at step {step}: f is {value}; {cause} probably too large")
            reporter.on_epoch_end(step, {"validation": {"value": value}, "train": {"lr": lr}})
    h1, h2 = (float(v) for v in h.detach())
    out: dict[str, Any] = {"start": {"h1": spec.h1, "h2": spec.h2}, "h1": h1, "h2": h2}
    out["evaluations"] = spec.descent.steps
    if hd is not None:
        out["hypergradient"] = hd.report()
    return out


def run_analytic(
    spec: AnalyticExperimentSpec,
    reporter: Reporter,
    device: torch.device | None = None,
    context: RunContext | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Evaluate the analytic objective (after a gradient descent with `descent`).

    Args:
        spec: the analytic spec (a search trial carries its `trial` block).
        reporter: receives the value (per step with `descent`).
        context: where a trial's study is stored.

    Returns:
        ``{"value": f, "h1", "h2", "function", "minimum", "evaluations", ...}``.
    """
    started = time.perf_counter()
    reporter = trial_reporter(spec, reporter, context)
    if spec.descent is not None:
        out = _descend(spec, reporter)
    else:
        out = {"h1": spec.h1, "h2": spec.h2, "evaluations": 1}
        reporter.on_epoch_end(1, {"validation": {"value": analytic_value(spec.function, spec.h1, spec.h2)}})
    value = analytic_value(spec.function, out["h1"], out["h2"])
    return {
        "value": value,
        "validation": {"value": value},
        "function": spec.function,
        "minimum": {"value": 0.0, "h1": FUNCTIONS[spec.function][1][0], "h2": FUNCTIONS[spec.function][1][1]},
        **out,
        "total_seconds": round(time.perf_counter() - started, 6),
    }

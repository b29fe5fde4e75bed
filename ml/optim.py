"""Optimizers by name. Adding one is one entry in `OPTIMIZERS`."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from ml.spec import OptimizerSpec

OPTIMIZERS: dict[str, Callable[[Iterable[torch.nn.Parameter], OptimizerSpec], torch.optim.Optimizer]] = {
    "sgd": lambda p, s: torch.optim.SGD(p, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay),
    "adam": lambda p, s: torch.optim.Adam(p, lr=s.lr, weight_decay=s.weight_decay),
}


def build_optimizer(params: Iterable[torch.nn.Parameter], spec: OptimizerSpec) -> torch.optim.Optimizer:
    """Build the optimizer a spec names over the given parameters."""
    return OPTIMIZERS[spec.name](params, spec)

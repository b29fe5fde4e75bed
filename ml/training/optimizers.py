"""Optimizers by name. Adding one is one entry in `OPTIMIZERS` (its torch class) and one in
`ml.spec.training.OPTIMIZER_DEFAULTS` (the keyword arguments it takes and their defaults)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import torch

from ml.spec import OptimizerSpec

OptimizerBuilder = Callable[..., torch.optim.Optimizer]

# name -> a callable taking (params, **OptimizerSpec.params()).
OPTIMIZERS: dict[str, OptimizerBuilder] = {
    "sgd": torch.optim.SGD,
    "momentum": torch.optim.SGD,
    "nesterov": partial(torch.optim.SGD, nesterov=True),
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


def build_optimizer(params: Iterable[torch.nn.Parameter], spec: OptimizerSpec) -> torch.optim.Optimizer:
    """Build the optimizer a spec names over the given parameters.

    Args:
        params: the parameters to update (or parameter groups).
        spec: the optimizer's name and hyperparameters; those it leaves out take the
            optimizer's defaults (`OptimizerSpec.params`).

    Returns:
        A torch optimizer.
    """
    return OPTIMIZERS[spec.name](params, **spec.params())

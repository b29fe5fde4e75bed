"""Changes to the optimizer's step that the training loop does not need to know about.

The loop (`ml.training.loop.fit`) builds its own optimizer over ``model.parameters()``. Two features act
on each of its steps from outside, through torch's global optimizer step hooks, for as long as a
`with` block lasts and only on an optimizer that holds the given parameters:

- `ScaledUpdates`: the update of some parameters is multiplied by a factor. Every torch
  optimizer's state (momentum, Adam's moments) depends on the gradients only, and its update
  is proportional to the learning rate, so this equals giving those parameters factor x lr
  (transfer learning: a lower rate for the pretrained layers);
- `Hypergradient`: hypergradient descent on the learning rate itself (Baydin et al. 2018).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from ml.spec.trial import HypergradientSpec

MIN_LR, MAX_LR = 1e-10, 100.0
StepHook = Callable[[torch.optim.Optimizer], None]


@contextlib.contextmanager
def step_hooks(params: Sequence[torch.nn.Parameter], pre: StepHook, post: StepHook) -> Iterator[None]:
    """Call `pre` before and `post` after each step of any optimizer that holds `params`.

    Args:
        params: the parameters that identify the optimizer(s) to act on.
        pre: called with the optimizer before its step (the gradients are there).
        post: called with the optimizer after its step.
    """
    ids = {id(p) for p in params}

    def owns(optimizer: torch.optim.Optimizer) -> bool:
        return any(id(p) in ids for group in optimizer.param_groups for p in group["params"])

    def before(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if owns(optimizer):
            pre(optimizer)

    def after(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if owns(optimizer):
            post(optimizer)

    handles = [register_optimizer_step_pre_hook(before), register_optimizer_step_post_hook(after)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class ScaledUpdates:
    """Multiply each step's change of `params` by `factor` (the same as `factor` x their lr).

    Args:
        params: the parameters whose updates shrink (e.g. the pretrained layers).
        factor: in (0, 1].
    """

    def __init__(self, params: Sequence[torch.nn.Parameter], factor: float) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.factor = factor
        self._before: list[torch.Tensor] = []

    @torch.no_grad()
    def pre(self, optimizer: torch.optim.Optimizer) -> None:
        self._before = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def post(self, optimizer: torch.optim.Optimizer) -> None:
        for p, before in zip(self.params, self._before, strict=True):
            p.copy_(before.add_(p - before, alpha=self.factor))

    def active(self) -> contextlib.AbstractContextManager[None]:
        """The `with` block during which the scaling applies."""
        if not self.params or self.factor == 1.0:
            return contextlib.nullcontext()
        return step_hooks(self.params, self.pre, self.post)


class Hypergradient:
    """Hypergradient descent on the learning rate of every parameter group, after every step.

    d_{t-1} is the previous update per unit of learning rate, (theta_{t-1} - theta_{t-2}) / lr,
    so the rule works for any optimizer whose update is proportional to the rate (for plain
    SGD d = -g, the HD-SGD of the paper; for Adam d = -m/(sqrt(v) + eps), HD-Adam). The
    derivative of the loss with respect to the rate is g_t . d_{t-1}.

    Args:
        params: the trained parameters.
        spec: beta and the rule (additive or multiplicative).
    """

    def __init__(self, params: Sequence[torch.nn.Parameter], spec: HypergradientSpec) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.spec = spec
        self.rates: list[float] = []  # the rate of every step, for the summary
        self._direction: list[torch.Tensor] | None = None
        self._before: list[torch.Tensor] = []

    @torch.no_grad()
    def pre(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if self._direction is not None:
            dot = sum((g * d).sum() for g, d in zip(grads, self._direction, strict=True))
            for group in optimizer.param_groups:
                group["lr"] = self._next_rate(float(group["lr"]), float(dot), grads)
        self.rates.append(float(optimizer.param_groups[0]["lr"]))
        self._before = [p.detach().clone() for p in self.params]

    def _next_rate(self, lr: float, dot: float, grads: list[torch.Tensor]) -> float:
        if self.spec.rule == "additive":
            lr = lr - self.spec.beta * dot
        else:
            assert self._direction is not None
            norms = math.sqrt(sum(float(g.square().sum()) for g in grads)) * math.sqrt(
                sum(float(d.square().sum()) for d in self._direction)
            )
            lr = lr * (1.0 - self.spec.beta * dot / norms) if norms > 0 else lr
        return min(max(lr, MIN_LR), MAX_LR) if math.isfinite(lr) else MIN_LR

    @torch.no_grad()
    def post(self, optimizer: torch.optim.Optimizer) -> None:
        lr = float(optimizer.param_groups[0]["lr"])
        self._direction = [(p - b) / lr for p, b in zip(self.params, self._before, strict=True)]

    def active(self) -> contextlib.AbstractContextManager[None]:
        """The `with` block during which the rate adapts."""
        return step_hooks(self.params, self.pre, self.post)

    def report(self) -> dict[str, Any]:
        """The rate's path, for the run's summary."""
        if not self.rates:
            return {"rule": self.spec.rule, "beta": self.spec.beta, "steps": 0}
        return {
            "rule": self.spec.rule,
            "beta": self.spec.beta,
            "steps": len(self.rates),
            "initial_lr": self.rates[0],
            "final_lr": self.rates[-1],
            "min_lr": min(self.rates),
            "max_lr": max(self.rates),
        }

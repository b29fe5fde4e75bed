"""Regularization applied by the training loop (the model's own dropout lives in `ml.models`).

- penalties (l1, l2, elastic net) are terms added to the training loss, computed on the device;
- max-norm rescales weights after each optimizer step, in place, under `torch.no_grad`;
- input dropout hides a fraction of the input values of each training batch;
- gradient clipping rescales the gradients before the optimizer step.

Nothing here reads a value back to the host, so the loop keeps its one sync per epoch.
"""

from __future__ import annotations

import torch
from torch import nn

from ml.spec.training import MaxNormSpec, RegularizationSpec

NORM_EPS = 1e-12


def weight_tensors(model: nn.Module, include_bias: bool = False) -> list[nn.Parameter]:
    """The trainable parameters regularization applies to.

    Args:
        model: the network.
        include_bias: also biases and batch-norm scales/shifts (the one-dimensional parameters).

    Returns:
        Weight matrices and convolution kernels (parameters of two or more dimensions), plus
        the one-dimensional ones with `include_bias`.
    """
    return [p for p in model.parameters() if p.requires_grad and (include_bias or p.dim() > 1)]


class Regularizer:
    """What `RegularizationSpec` asks for, bound to one model.

    Args:
        model: the network being trained.
        spec: the regularization block of the training spec.
    """

    def __init__(self, model: nn.Module, spec: RegularizationSpec) -> None:
        self.spec = spec
        self.l1, self.l2 = spec.penalty_coefficients
        self.penalized = weight_tensors(model, spec.include_bias)
        self.constrained = weight_tensors(model, include_bias=False)
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.has_penalty = (self.l1 > 0 or self.l2 > 0) and bool(self.penalized)

    def penalty(self) -> torch.Tensor:
        """l1 x sum|w| + l2 x sum w^2 over the penalized tensors (a 0-d tensor on their device)."""
        total = torch.zeros((), device=self.penalized[0].device)
        if self.l1 > 0:
            total = total + self.l1 * torch.stack(torch._foreach_norm(list(self.penalized), 1)).sum()
        if self.l2 > 0:
            total = total + self.l2 * torch.stack(torch._foreach_norm(list(self.penalized), 2)).square().sum()
        return total

    def drop_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Zero a random `input_dropout` fraction of a training batch's values.

        The kept values are scaled by 1 / (1 - fraction), as dropout does, so that a feature's
        expected value is the same in training and at evaluation (where nothing is hidden).
        """
        if self.spec.input_dropout == 0.0:
            return x
        return nn.functional.dropout(x, self.spec.input_dropout, training=True)

    def clip_gradients(self) -> None:
        """Rescale the gradients so that their global L2 norm is at most `clip_grad_norm`."""
        if self.spec.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.parameters, self.spec.clip_grad_norm, foreach=True)

    def constrain(self) -> None:
        """Max-norm: bring the norm of each neuron's incoming weights (or each layer's) to at most `value`."""
        if self.spec.max_norm is not None:  # checked first: entering no_grad per batch costs time
            self._renormalize(self.spec.max_norm)

    @torch.no_grad()
    def _renormalize(self, max_norm: MaxNormSpec) -> None:
        for weight in self.constrained:
            if max_norm.per == "neuron":
                # renorm over dim 0: each output unit's row (a dense layer) or filter (a convolution)
                weight.renorm_(2, 0, max_norm.value)
            else:
                scale = (max_norm.value / weight.norm().clamp_min(NORM_EPS)).clamp_max(1.0)
                weight.mul_(scale)

"""The exact solution of the periodic 1D heat equation, the PDE residual and the error metric.

The initial Gaussian exp(-(x/w)^2) spreads as w/s * exp(-x^2/s^2) with s^2 = w^2 + 4 k t; on a
periodic domain of length L the solution is the sum of its periodic images x -> x - n L.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

# exp(-x^2) < 1e-20 beyond this many spreads: images that far away do not count in float64.
_CUTOFF_SPREADS = 6.8


def _image_count(width: float, k: float, t_max: float, period: float) -> int:
    spread = math.sqrt(width**2 + 4.0 * k * max(t_max, 0.0))
    return min(int(math.ceil(_CUTOFF_SPREADS * spread / period)) + 1, 10_000)


def heat_exact(x, t, k: float, width: float, period: float) -> np.ndarray:
    """u(x, t) on numpy arrays (broadcast together), for u(x, 0) = exp(-(x/width)^2) periodized."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    x, t = np.broadcast_arrays(x, t)
    s2 = width**2 + 4.0 * k * t
    n_max = _image_count(width, k, float(t.max(initial=0.0)), period)
    u = np.zeros(x.shape, dtype=np.float64)
    for n in range(-n_max, n_max + 1):
        u += np.exp(-((x - n * period) ** 2) / s2)
    return u * (width / np.sqrt(s2))


def heat_exact_torch(
    x: torch.Tensor, t: torch.Tensor, k: float, width: float, period: float, t_max: float
) -> torch.Tensor:
    """The same solution as a differentiable torch function (t_max sizes the image count)."""
    s2 = width**2 + 4.0 * k * t
    n_max = _image_count(width, k, t_max, period)
    u = torch.zeros_like(x * t)
    for n in range(-n_max, n_max + 1):
        u = u + torch.exp(-((x - n * period) ** 2) / s2)
    return u * (width / torch.sqrt(s2))


def initial_condition_torch(
    x: torch.Tensor, width: float, period: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """u0, du0/dx and d2u0/dx2 of the periodized initial Gaussian, in closed form."""
    n_max = _image_count(width, 0.0, 0.0, period)
    u0 = torch.zeros_like(x)
    u0_x = torch.zeros_like(x)
    u0_xx = torch.zeros_like(x)
    w2 = width**2
    for n in range(-n_max, n_max + 1):
        y = x - n * period
        g = torch.exp(-(y * y) / w2)
        u0 = u0 + g
        u0_x = u0_x + (-2.0 / w2) * y * g
        u0_xx = u0_xx + (4.0 * y * y / (w2 * w2) - 2.0 / w2) * g
    return u0, u0_x, u0_xx


def heat_residual(
    u_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    t: torch.Tensor,
    k: float,
) -> torch.Tensor:
    """u_t - k u_xx of the torch function u_fn(x, t), by autograd (differentiable itself)."""
    x = x.detach().clone().requires_grad_(True)
    t = t.detach().clone().requires_grad_(True)
    u = u_fn(x, t)
    u_t, u_x = torch.autograd.grad(u.sum(), (t, x), create_graph=True)
    (u_xx,) = torch.autograd.grad(u_x.sum(), x, create_graph=True)
    return u_t - k * u_xx


def relative_l2_error(pred, exact) -> float:
    """||pred - exact||_2 / ||exact||_2 over all entries."""
    pred = np.asarray(pred, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    if pred.shape != exact.shape:
        raise ValueError(f"shapes differ: {pred.shape} and {exact.shape}")
    norm = float(np.linalg.norm(exact.ravel()))
    if norm == 0.0:
        raise ValueError("the exact solution is zero: the relative error is undefined")
    return float(np.linalg.norm((pred - exact).ravel()) / norm)

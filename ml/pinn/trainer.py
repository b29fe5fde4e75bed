"""A physics-informed neural network (PINN) for the periodic 1D heat equation.

    u_t - k u_xx = 0,  u(x, 0) = exp(-(x/w)^2),  u(x_min, t) = u(x_max, t)

The loss is the weighted sum of mean squared terms: the PDE residual on interior collocation
points, the initial condition, the periodic boundary value and (optionally) its first derivative.
Training is Adam then L-BFGS (strong Wolfe line search) on a fixed set of points.

The derivatives u_t, u_x, u_xx the residual needs are propagated forward through the network
together with u (one batched matrix product per layer), then one backward pass gives the gradient
with respect to the weights. It is the same quantity double autograd computes
(`ml.pinn.exact.heat_residual`; the tests compare both) at a fraction of the cost.

Run alone:  python -m ml.pinn.trainer examples/pinn-heat.yaml --out ./pinn-out
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import numpy as np
import torch
from scipy.special import erfinv
from scipy.stats import qmc
from torch import nn

from ml.errors import Cancelled, TrainingDiverged
from ml.pinn.exact import heat_exact, initial_condition_torch, relative_l2_error
from ml.pinn.plots import heatmap_png, heatmaps_png
from ml.reporter import PrintingReporter, Reporter
from ml.spec.pinn import PdeSpec, PinnExperimentSpec, PinnNetworkSpec
from ml.training.device import as_device, device_summary
from ml.training.gpu_telemetry import gpu_telemetry

TERMS = ("pde", "initial", "boundary", "boundary_derivative")
# A loss this many times its untrained value is a divergence even while it is finite.
EXPLOSION_FACTOR = 1e6


class HeatPinn(nn.Module):
    """u(x, t) as a fully connected network on normalised (and optionally periodic) inputs.

    Inputs: x' = 2 (x - x_min) / L - 1 in [-1, 1], fed as cos(m pi x'), sin(m pi x') (m = 1..M)
    with the periodic embedding, or as x' itself; and t' in [-1, 1], linear in t or (with
    time_feature "log") linear in log(1 + t / t0), t0 = width^2 / (4 k) the time the initial
    Gaussian takes to spread by its own width.
    With the hard initial condition the output is u0(x) + (t / t_max) N(x, t).
    """

    wavenumbers: torch.Tensor  # a buffer (moves with the module)
    _feature_cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None

    def __init__(self, network: PinnNetworkSpec, pde: PdeSpec) -> None:
        super().__init__()
        self.x_min = pde.x_min
        self.period = pde.x_max - pde.x_min
        self.scale_x = 2.0 / self.period
        self.t_max = pde.t_max
        self.width = pde.width
        self._feature_cache = None
        self.time_feature = network.time_feature
        self.t0 = pde.width**2 / (4.0 * pde.k)
        self.periodic = network.periodic_embedding
        self.hard_ic = network.hard_initial_condition
        self.activation = network.activation
        modes = network.fourier_modes if self.periodic else 0
        self.register_buffer("wavenumbers", math.pi * torch.arange(1, modes + 1, dtype=torch.float64))
        sizes = [2 * modes + 1 if self.periodic else 2, *network.hidden, 1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        for layer in self.linear:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def linear(self) -> list[nn.Linear]:
        """The dense layers, typed (a ModuleList yields plain Modules)."""
        return cast(list[nn.Linear], list(self.layers))

    def _features(self, x: torch.Tensor, t: torch.Tensor):
        """Input features and their x-derivatives (3, N, in); cached for the last points."""
        cached = self._feature_cache
        if cached is not None and cached[0] is x and cached[1] is t:
            return cached[2]
        features = torch.stack(self._compute_features(x, t))
        if not (x.requires_grad or t.requires_grad):
            self._feature_cache = (x, t, features)
        return features

    def _compute_features(self, x: torch.Tensor, t: torch.Tensor):
        xs = self.scale_x * (x - self.x_min) - 1.0
        tau = self._time(t)[0]
        zero = torch.zeros_like(tau)
        if not self.periodic:
            f = torch.stack([xs, tau], dim=1)
            f_x = torch.stack([torch.full_like(xs, self.scale_x), zero], dim=1)
            return f, f_x, torch.zeros_like(f)
        arg = xs[:, None] * self.wavenumbers
        dm = self.wavenumbers * self.scale_x  # d(arg)/dx
        c, s = torch.cos(arg), torch.sin(arg)
        f = torch.cat([c, s, tau[:, None]], dim=1)
        f_x = torch.cat([-s * dm, c * dm, zero[:, None]], dim=1)
        f_xx = torch.cat([-c * dm**2, -s * dm**2, zero[:, None]], dim=1)
        return f, f_x, f_xx

    def _time(self, t: torch.Tensor):
        """The time input t' in [-1, 1] and dt'/dt (a number, or one per point)."""
        if self.time_feature == "linear":
            return (2.0 / self.t_max) * t - 1.0, 2.0 / self.t_max
        # Logarithmic in the diffusion time of the initial width, t0 = width^2 / (4 k).
        t0, span = self.t0, math.log1p(self.t_max / self.t0)
        return (2.0 / span) * torch.log1p(t / t0) - 1.0, (2.0 / span) / (t0 + t)

    def _act(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z) if self.activation == "tanh" else torch.sin(z)

    def _initial(self, x: torch.Tensor):
        return initial_condition_torch(x, self.width, self.period)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """u at points (x, t), two tensors of shape (N,)."""
        h = self._compute_features(x, t)[0]
        for layer in self.layers[:-1]:
            h = self._act(layer(h))
        out = self.layers[-1](h)[:, 0]
        if self.hard_ic:
            return self._initial(x)[0] + (t / self.t_max) * out
        return out

    def hidden_derivatives(self, x: torch.Tensor, t: torch.Tensor):
        """The last hidden layer's activations and their t, x, xx derivatives, each (N, width)."""
        features = self._features(x, t)  # (3, N, in): f, f_x, f_xx
        first = self.linear[0]
        z, z_x, z_xx = (features @ first.weight.T).unbind(0)
        z = z + first.bias
        tau_t = self._time(t)[1]  # dt'/dt: per point (log time) or one number (linear time)
        z_t = (tau_t[:, None] if isinstance(tau_t, torch.Tensor) else tau_t) * first.weight[:, -1]
        for i, layer in enumerate(self.linear[1:]):
            # h = act(z): h_t = act' z_t, h_x = act' z_x, h_xx = act' z_xx + act'' z_x^2.
            if self.activation == "tanh":  # act' = 1 - a^2, act'' = -2 a act'
                a = torch.tanh(z)
                d1 = 1.0 - a * a
                h_x = d1 * z_x
                h_xx = torch.addcmul(d1 * z_xx, a * z_x, h_x, value=-2.0)
            else:  # sin: act' = cos, act'' = -sin
                a, d1 = torch.sin(z), torch.cos(z)
                h_x = d1 * z_x
                h_xx = torch.addcmul(d1 * z_xx, a * z_x, z_x, value=-1.0)
            h_t = d1 * z_t
            if i == len(self.layers) - 2:
                return a, h_t, h_x, h_xx
            # Four products rather than one on the stacked streams: no copies either way.
            w = layer.weight.T
            z, z_t, z_x, z_xx = torch.addmm(layer.bias, a, w), h_t @ w, h_x @ w, h_xx @ w
        raise AssertionError("unreachable")

    def head(self, x: torch.Tensor, t: torch.Tensor, n, n_t, n_x, n_xx):
        """u and its derivatives from the network output N and its derivatives.

        N may have one column per candidate output (N, m): every output is affine in N.
        """
        if not self.hard_ic:
            return n, n_t, n_x, n_xx
        u0, u0_x, u0_xx = self._initial(x)
        s = t / self.t_max
        if n.dim() == 2:
            u0, u0_x, u0_xx, s = u0[:, None], u0_x[:, None], u0_xx[:, None], s[:, None]
        return u0 + s * n, n / self.t_max + s * n_t, u0_x + s * n_x, u0_xx + s * n_xx

    def derivatives(self, x: torch.Tensor, t: torch.Tensor, hidden=None):
        """u, u_t, u_x, u_xx at points (x, t), by forward propagation of the derivatives.

        `hidden` is `hidden_derivatives(x, t)` when the caller already has it.
        """
        a, h_t, h_x, h_xx = self.hidden_derivatives(x, t) if hidden is None else hidden
        last = self.linear[-1]
        w = last.weight[0]
        return self.head(x, t, a @ w + last.bias[0], h_t @ w, h_x @ w, h_xx @ w)

    @torch.no_grad()
    def solve_output_layer(self, x, t, hidden, residuals, weights: Mapping[str, float]) -> None:
        """Set the last layer to the exact minimiser of the loss for the current hidden layers.

        Every residual vector is affine in the last layer's weights and bias, so the weighted
        sum of mean squares is a linear least-squares problem in them (variable projection).
        `residuals(u, u_t, u_x, u_xx)` gives {term: residual vector}, columns allowed.
        """
        a, h_t, h_x, h_xx = hidden
        ones, zeros = a.new_ones(a.shape[0], 1), a.new_zeros(a.shape[0], 1)
        # One column per unknown: the hidden units, then the bias (which has no derivatives).
        basis = self.head(
            x,
            t,
            torch.cat([a, ones], 1),
            torch.cat([h_t, zeros], 1),
            torch.cat([h_x, zeros], 1),
            torch.cat([h_xx, zeros], 1),
        )
        offset = self.head(x, t, zeros, zeros, zeros, zeros)
        with_basis, constant = residuals(*basis), residuals(*offset)
        rows, rhs = [], []
        for name, r in with_basis.items():
            if weights[name] > 0 and r.shape[0] > 0:
                scale = math.sqrt(weights[name] / r.shape[0])
                rows.append(scale * (r - constant[name]))
                rhs.append(-scale * constant[name])
        if not rows:
            return
        a, b = torch.cat(rows), torch.cat(rhs)
        if not bool(torch.isfinite(a).all() and torch.isfinite(b).all()):
            return  # leave the layer as it is: the loss check reports the divergence
        # Normal equations on column-scaled features, with a whisper of ridge for stability.
        norms = a.norm(dim=0).clamp_min(1e-30)
        a = a / norms
        gram = a.T @ a
        gram.diagonal().add_(1e-12 * gram.diagonal().max())
        solution = torch.linalg.solve(gram, a.T @ b)[:, 0] / norms
        last = self.linear[-1]
        last.weight.copy_(solution[None, :-1])
        last.bias.copy_(solution[-1:])


class CollocationPoints:
    """Interior, initial and boundary points, drawn uniformly or by Latin hypercube."""

    def __init__(
        self,
        spec: PinnExperimentSpec,
        dtype: torch.dtype,
        device: torch.device,
        seed: int | None = None,
    ) -> None:
        self.spec = spec
        self.dtype = dtype
        self.device = device
        self.rng = np.random.default_rng(spec.seed if seed is None else seed)
        self.draw()

    def _unit(self, n: int, d: int) -> np.ndarray:
        if n == 0:
            return np.zeros((0, d))
        if self.spec.collocation.sampling == "lhs":
            return qmc.LatinHypercube(d=d, seed=self.rng).random(n)
        return self.rng.random((n, d))

    def draw(self) -> None:
        pde, col = self.spec.pde, self.spec.collocation
        period = pde.x_max - pde.x_min
        interior = self._unit(col.interior, 2)
        x_int = pde.x_min + period * interior[:, 0]
        t_int = pde.t_max * interior[:, 1] ** col.time_power
        n_focus = round(col.initial * col.initial_focus)
        x_ic = pde.x_min + period * self._unit(col.initial - n_focus, 1)[:, 0]
        if n_focus:
            # Quantiles of a normal law shaped like the initial Gaussian, wrapped into the domain.
            q = np.clip(self._unit(n_focus, 1)[:, 0], 1e-12, 1 - 1e-12)
            x_focus = pde.width * erfinv(2.0 * q - 1.0)
            x_ic = np.concatenate([x_ic, (x_focus - pde.x_min) % period + pde.x_min])
        t_bc = pde.t_max * self._unit(col.boundary, 1)[:, 0]
        nb = col.boundary
        # One batch: interior, initial (t = 0), left boundary, right boundary.
        x = np.concatenate([x_int, x_ic, np.full(nb, pde.x_min), np.full(nb, pde.x_max)])
        t = np.concatenate([t_int, np.zeros(col.initial), t_bc, t_bc])
        self.x = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        self.t = torch.as_tensor(t, dtype=self.dtype, device=self.device)
        # The same formula as the hard initial condition uses, so that it holds to the last bit.
        x_ic_t = torch.as_tensor(x_ic, dtype=self.dtype, device=self.device)
        self.u0 = initial_condition_torch(x_ic_t, pde.width, period)[0]
        self.n_int, self.n_ic, self.n_bc = col.interior, col.initial, nb
        self.residual_at_initial = col.residual_at_initial


def residual_vectors(points: CollocationPoints, k: float, u, u_t, u_x, u_xx) -> dict:
    """The residual of each term at its points (columns allowed, see `HeatPinn.head`)."""
    i, c, b = points.n_int, points.n_ic, points.n_bc
    left, right = slice(i + c, i + c + b), slice(i + c + b, i + c + 2 * b)
    u0 = points.u0 if u.dim() == 1 else points.u0[:, None]
    pde_end = i + c if points.residual_at_initial else i
    return {
        "pde": u_t[:pde_end] - k * u_xx[:pde_end],
        "initial": u[i : i + c] - u0,
        "boundary": u[left] - u[right],
        "boundary_derivative": u_x[left] - u_x[right],
    }


def loss_terms(
    model: HeatPinn,
    points: CollocationPoints,
    k: float,
    solve_weights: Mapping[str, float] | None = None,
) -> dict[str, torch.Tensor]:
    """The mean squared residual, initial, boundary and boundary-derivative terms.

    With `solve_weights`, the output layer is first set to the least-squares minimiser of the
    loss with these weights (one forward pass serves both).
    """
    hidden = model.hidden_derivatives(points.x, points.t)
    if solve_weights is not None:

        def residuals(*outputs):
            return residual_vectors(points, k, *outputs)

        detached = tuple(h.detach() for h in hidden)
        model.solve_output_layer(points.x, points.t, detached, residuals, solve_weights)
    vectors = residual_vectors(points, k, *model.derivatives(points.x, points.t, hidden))
    zero = points.x.new_zeros(())
    return {name: r.square().mean() if r.numel() else zero for name, r in vectors.items()}


def _total(terms: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    total = terms["pde"] * weights["pde"]
    for name in TERMS[1:]:
        total = total + terms[name] * weights[name]
    return total


class _Trainer:
    """Holds the run's state so that Adam and L-BFGS share logging, checks and the clock."""

    def __init__(self, spec, reporter, model, points) -> None:
        self.spec, self.reporter, self.model, self.points = spec, reporter, model, points
        self.weights = spec.loss.model_dump()
        self.start_time = time.perf_counter()
        self.initial_loss = math.inf
        self.out_of_time = False
        self.lbfgs_evaluations = 0
        self.last: dict[str, float] = {}
        self.least_squares = spec.optimizer.output_layer == "least_squares"
        # With the least-squares output layer, the optimizers train the hidden layers only.
        layers = model.layers[:-1] if self.least_squares else model.layers
        self.params = [p for layer in layers for p in layer.parameters()]

    def start(self) -> None:
        """Measure the untrained loss (the yardstick of an explosion) and start the clock."""
        self.start_time = time.perf_counter()
        with torch.no_grad():
            self.initial_loss = max(float(self.loss()[0]), 1e-30)

    def loss(self):
        solve = self.weights if self.least_squares else None
        terms = loss_terms(self.model, self.points, self.spec.pde.k, solve)
        return _total(terms, self.weights), terms

    def checkpoint(self, step: int, phase: str, lr: float) -> bool:
        """Log the current loss (the only host sync), check it, poll the reporter and the clock."""
        with torch.no_grad():
            total, terms = self.loss()
        values = {"loss": float(total)} | {f"loss_{n}": float(v) for n, v in terms.items()}
        self.last = values
        loss = values["loss"]
        exploded = math.isfinite(loss) and loss > EXPLOSION_FACTOR * self.initial_loss
        if not math.isfinite(loss) or exploded:
            shown = f"{loss:.3g}, {loss / self.initial_loss:.2g} times its initial value" if exploded else str(loss)
            advice = (
                f"the learning rate {lr:g} is probably too large"
                if phase == "Adam"
                else f"learning rate {lr:g} with a line search; a longer Adam warm-up may help"
            )
            raise TrainingDiverged(f"diverged at step {step} ({phase}): loss is {shown}; {advice}")
        self.reporter.on_epoch_end(step, {"train": values})
        if self.reporter.should_stop():
            raise Cancelled(f"cancelled at step {step}")
        limit = self.spec.optimizer.max_seconds
        if limit is not None and time.perf_counter() - self.start_time > limit:
            self.out_of_time = True
            self.reporter.log(f"time limit of {limit:g} s reached at step {step}: training stops")
        return not self.out_of_time

    def adam(self) -> int:
        opt_spec, every = self.spec.optimizer, self.spec.log_every
        steps = opt_spec.adam_steps
        if steps == 0:
            return 0
        optimizer = torch.optim.Adam(self.params, lr=opt_spec.adam_lr)
        gamma = 1.0
        if opt_spec.adam_lr_final is not None:
            gamma = (opt_spec.adam_lr_final / opt_spec.adam_lr) ** (1.0 / steps)
        resample = self.spec.collocation.resample_every
        for step in range(1, steps + 1):
            if resample and step > 1 and (step - 1) % resample == 0:
                self.points.draw()
            optimizer.zero_grad(set_to_none=True)
            total, _ = self.loss()
            total.backward()
            optimizer.step()
            lr = optimizer.param_groups[0]["lr"]
            if gamma != 1.0:
                optimizer.param_groups[0]["lr"] = lr * gamma
            if (step % every == 0 or step == steps) and not self.checkpoint(step, "Adam", lr):
                return step
        return steps

    def lbfgs(self, offset: int) -> int:
        opt_spec, every = self.spec.optimizer, self.spec.log_every
        steps = opt_spec.lbfgs_steps
        if steps == 0:
            return 0
        params = self.params
        optimizer = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=every,
            max_eval=every * 25,
            history_size=opt_spec.lbfgs_history,
            tolerance_grad=1e-14,
            tolerance_change=1e-16,
            line_search_fn="strong_wolfe",
        )

        def closure():
            optimizer.zero_grad(set_to_none=True)
            total, _ = self.loss()
            total.backward()
            return total

        done = 0
        while done < steps:
            # Stop each call at the next multiple of log_every of the global step.
            chunk = min(every - (offset + done) % every, steps - done)
            optimizer.param_groups[0]["max_iter"] = chunk
            optimizer.param_groups[0]["max_eval"] = chunk * 25
            before = optimizer.state[params[0]].get("n_iter", 0)
            optimizer.step(closure)
            did = optimizer.state[params[0]].get("n_iter", 0) - before
            done += did
            converged = did < chunk
            if not self.checkpoint(offset + done, "L-BFGS", 1.0) or converged:
                if converged:
                    self.reporter.log(f"L-BFGS stopped after {done} iterations: converged")
                break
        state = optimizer.state[params[0]]
        self.lbfgs_evaluations = int(state.get("func_evals", 0))
        return done


def run_pinn(spec: PinnExperimentSpec, reporter: Reporter, device: torch.device | None = None) -> dict:
    """Train the PINN the spec describes, report progress and plots, return a JSON-able summary."""
    device = as_device(device, spec.device)
    dtype = torch.float64 if spec.optimizer.dtype == "float64" else torch.float32
    torch.manual_seed(spec.seed)  # the weights; the points have a generator of their own
    model = HeatPinn(spec.network, spec.pde).to(device=device, dtype=dtype)
    points = CollocationPoints(spec, dtype, device)
    trainer = _Trainer(spec, reporter, model, points)
    n_params = sum(p.numel() for p in model.parameters())
    reporter.log(
        f"PINN heat_1d: {n_params} parameters, {points.n_int} interior points, {spec.optimizer.dtype} on {device}"
    )

    with gpu_telemetry(device) as telemetry:
        trainer.start()
        adam_done = trainer.adam()
        lbfgs_done = 0 if trainer.out_of_time else trainer.lbfgs(adam_done)
        if adam_done + lbfgs_done == 0:
            trainer.checkpoint(0, "initial", spec.optimizer.adam_lr)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    training_seconds = time.perf_counter() - trainer.start_time

    # Compare with the exact solution on the evaluation grid.
    pde, grid = spec.pde, spec.evaluation_grid
    x = np.linspace(pde.x_min, pde.x_max, grid.nx)
    t = np.linspace(0.0, pde.t_max, grid.nt)
    xx, tt = np.meshgrid(x, t, indexing="ij")  # shape (nx, nt): x down the rows, t across
    exact = heat_exact(xx, tt, pde.k, pde.width, pde.x_max - pde.x_min)
    pred = np.empty(xx.size)
    with torch.no_grad():
        for start in range(0, xx.size, 65536):  # in chunks: a wide net on a fine grid is big
            part = slice(start, start + 65536)
            xs = torch.as_tensor(xx.ravel()[part], dtype=dtype, device=device)
            ts = torch.as_tensor(tt.ravel()[part], dtype=dtype, device=device)
            pred[part] = model(xs, ts).double().cpu().numpy()
    pred = pred.reshape(xx.shape)
    rel_l2 = relative_l2_error(pred, exact)
    max_abs = float(np.max(np.abs(pred - exact)))
    reporter.on_epoch_end(
        adam_done + lbfgs_done,
        {"evaluation": {"relative_l2_error": rel_l2, "max_abs_error": max_abs}},
    )

    png = "image/png"
    reporter.save_artifact("pinn_solution.png", heatmap_png(pred, x, t, "PINN u(x, t)"), png)
    reporter.save_artifact("exact_solution.png", heatmap_png(exact, x, t, "exact u(x, t)"), png)
    error_png = heatmap_png(np.abs(pred - exact), x, t, "|PINN - exact|", "|error|")
    reporter.save_artifact("error.png", error_png, png)
    reporter.save_artifact("heatmaps.png", heatmaps_png(pred, exact, x, t, rel_l2), png)

    # The same loss on fresh points drawn the same way: a loss far below this one would mean
    # the network fits the collocation points but not the equation between them.
    fresh = CollocationPoints(spec, dtype, device, seed=spec.seed + 1_000_003)
    with torch.no_grad():
        validation = loss_terms(model, fresh, pde.k)
    validation_loss = float(_total(validation, trainer.weights))

    last = trainer.last
    summary = {
        "final_loss": last["loss"],
        "loss_terms": {name: last[f"loss_{name}"] for name in TERMS},
        "validation_loss": validation_loss,
        "relative_l2_error": rel_l2,
        "max_abs_error": max_abs,
        "steps": {"adam": adam_done, "lbfgs": lbfgs_done, "total": adam_done + lbfgs_done},
        "lbfgs_evaluations": trainer.lbfgs_evaluations,
        "training_seconds": round(training_seconds, 3),
        "time_limit_reached": trainer.out_of_time,
        "parameters": n_params,
        "collocation_points": {"interior": points.n_int, "initial": points.n_ic, "boundary": points.n_bc},
        **device_summary(device),
        "dtype": spec.optimizer.dtype,
        "torch_threads": torch.get_num_threads(),
    }
    if "gpu" in summary:
        summary["gpu"] |= telemetry.summary()
    reporter.log(f"done: loss {summary['final_loss']:.3e}, relative L2 error {rel_l2:.3e}, {training_seconds:.1f} s")
    return summary


def main(argv: list[str] | None = None) -> int:
    import yaml

    parser = argparse.ArgumentParser(prog="python -m ml.pinn.trainer", description=__doc__.split("\n")[0])
    parser.add_argument("spec", type=Path, help="a YAML spec of kind pinn")
    parser.add_argument("--out", type=Path, default=Path("pinn-out"), help="folder for the PNGs")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = PinnExperimentSpec.model_validate(yaml.safe_load(args.spec.read_text()))
    summary = run_pinn(spec, PrintingReporter(args.out))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

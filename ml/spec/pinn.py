"""Spec of a physics-informed neural network (PINN) run: the 1D heat equation.

    u_t - k u_xx = 0,  x in [x_min, x_max], t in [0, t_max]
    u(x, 0) = exp(-(x / width)^2),  u(x_min, t) = u(x_max, t)

Pydantic and the standard library only: importing this never imports torch or numpy.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ml.spec.base import ExperimentHeader, StrictModel

# Bounds that keep one PINN spec from exhausting a shared server.
MAX_POINTS = 200_000
MAX_STEPS = 200_000
MAX_PINN_WIDTH = 1024
MAX_PINN_LAYERS = 16
MAX_GRID = 2001


class PdeSpec(StrictModel):
    """The equation, its coefficient, the initial Gaussian and the (periodic) domain."""

    equation: Literal["heat_1d"] = "heat_1d"
    k: float = Field(default=0.1, gt=0.0, le=100.0, description="Thermal diffusivity.")
    t_max: float = Field(default=0.3, gt=0.0, le=1000.0, description="End of the time interval.")
    width: float = Field(default=0.1, gt=0.0, le=100.0, description="w in the initial condition exp(-(x/w)^2).")
    x_min: float = Field(default=-1.0, ge=-1e4, le=1e4)
    x_max: float = Field(default=1.0, ge=-1e4, le=1e4)

    @model_validator(mode="after")
    def _domain_not_empty(self) -> PdeSpec:
        if not self.x_max > self.x_min:
            raise ValueError(f"x_max ({self.x_max}) must be greater than x_min ({self.x_min})")
        return self


class PinnNetworkSpec(StrictModel):
    """A fully connected network u(x, t)."""

    hidden: list[Annotated[int, Field(ge=1, le=MAX_PINN_WIDTH)]] = Field(
        default_factory=lambda: [32, 32, 32],
        min_length=1,
        max_length=MAX_PINN_LAYERS,
        description="Widths of the hidden layers.",
    )
    activation: Literal["tanh", "sin"] = "tanh"
    periodic_embedding: bool = Field(
        default=True,
        description="Feed cos/sin of the position instead of x: the periodic condition holds exactly.",
    )
    fourier_modes: int = Field(
        default=4,
        ge=1,
        le=32,
        description="With the periodic embedding, feed cos(m pi x'), sin(m pi x') for m = 1..this.",
    )
    time_feature: Literal["linear", "log"] = Field(
        default="log",
        description="Feed t' linear in t, or in log(1 + t / t0) with t0 = width^2 / (4 k), the "
        "diffusion time of the initial width (resolves the fast early times).",
    )
    hard_initial_condition: bool = Field(
        default=False,
        description="u = u0(x) + (t / t_max) N(x, t): the initial condition holds exactly.",
    )


class CollocationSpec(StrictModel):
    """Where the residual and the conditions are enforced."""

    interior: int = Field(default=1500, ge=1, le=MAX_POINTS, description="PDE residual points.")
    initial: int = Field(default=512, ge=0, le=MAX_POINTS, description="Points on t = 0.")
    boundary: int = Field(default=64, ge=0, le=MAX_POINTS, description="Times on x = x_min/x_max.")
    sampling: Literal["uniform", "lhs"] = "lhs"
    time_power: float = Field(
        default=1.5,
        ge=1.0,
        le=4.0,
        description="Interior times t = t_max q^p for q uniform in [0, 1]: p > 1 puts more points "
        "early, where the solution changes fastest.",
    )
    initial_focus: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Fraction of the initial points drawn where the initial Gaussian is "
        "(a normal law of standard deviation width / sqrt(2)) rather than uniformly.",
    )
    residual_at_initial: bool = Field(
        default=False,
        description="Also enforce the PDE residual at the initial points (t = 0), where the solution changes fastest.",
    )
    resample_every: int = Field(
        default=0, ge=0, le=MAX_STEPS, description="Draw new points every N Adam steps; 0: never."
    )


class PinnLossSpec(StrictModel):
    """Weights of the mean squared terms summed into the loss."""

    pde: float = Field(default=1.0, ge=0.0, le=1e6)
    initial: float = Field(default=1.0, ge=0.0, le=1e6)
    boundary: float = Field(default=1.0, ge=0.0, le=1e6)
    boundary_derivative: float = Field(default=0.0, ge=0.0, le=1e6)


class PinnOptimizerSpec(StrictModel):
    """Adam first, then L-BFGS (strong Wolfe line search) on a fixed set of points."""

    adam_steps: int = Field(default=300, ge=0, le=MAX_STEPS)
    adam_lr: float = Field(default=5e-3, gt=0.0, le=10.0)
    adam_lr_final: float | None = Field(
        default=1e-3, gt=0.0, le=10.0, description="Decay the Adam rate geometrically to this."
    )
    lbfgs_steps: int = Field(default=3700, ge=0, le=MAX_STEPS, description="L-BFGS iterations.")
    lbfgs_history: int = Field(default=100, ge=1, le=500)
    output_layer: Literal["gradient", "least_squares"] = Field(
        default="least_squares",
        description="least_squares: the loss is quadratic in the last layer, so set it to its "
        "exact minimiser at every evaluation and train only the hidden layers (variable projection).",
    )
    dtype: Literal["float32", "float64"] = "float64"
    max_seconds: float | None = Field(
        default=None, gt=0.0, le=86_400.0, description="Stop training (not an error) after this."
    )


class EvaluationGridSpec(StrictModel):
    """The grid on which the network is compared with the exact solution."""

    nx: int = Field(default=201, ge=2, le=MAX_GRID)
    nt: int = Field(default=101, ge=2, le=MAX_GRID)


class PinnExperimentSpec(ExperimentHeader):
    """A PINN experiment: solve the PDE with a network, compare with the exact solution."""

    kind: Literal["pinn"] = "pinn"
    pde: PdeSpec = Field(default_factory=PdeSpec)
    network: PinnNetworkSpec = Field(default_factory=PinnNetworkSpec)
    collocation: CollocationSpec = Field(default_factory=CollocationSpec)
    loss: PinnLossSpec = Field(default_factory=PinnLossSpec)
    optimizer: PinnOptimizerSpec = Field(default_factory=PinnOptimizerSpec)
    log_every: int = Field(default=100, ge=1, le=MAX_STEPS)
    evaluation_grid: EvaluationGridSpec = Field(default_factory=EvaluationGridSpec)
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: CUDA when the worker has one, else CPU (as a train run's train.device)."
    )

    @model_validator(mode="after")
    def _device_fits_resources(self) -> PinnExperimentSpec:
        if self.resources is not None and self.resources.cpu_only and self.device == "cuda":
            raise ValueError("resources.cpu_only and device 'cuda' contradict each other; set one of them")
        return self

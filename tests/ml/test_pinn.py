"""The PINN for the periodic 1D heat equation: exact solution, residual, training loop, spec."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from ml.errors import Cancelled, TrainingDiverged
from ml.pinn.exact import heat_exact, heat_exact_torch, heat_residual, relative_l2_error
from ml.pinn.trainer import CollocationPoints, HeatPinn, _total, loss_terms, main, run_pinn
from ml.reporter import RecordingReporter
from ml.spec.pinn import PinnExperimentSpec

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
K, WIDTH, T_MAX, PERIOD = 0.1, 0.1, 0.3, 2.0


def small_spec(**overrides) -> PinnExperimentSpec:
    """A net and point set small enough to train a few hundred steps in seconds."""
    raw = {
        "name": "pinn-test",
        "seed": 0,
        "network": {"hidden": [16, 16]},
        "collocation": {"interior": 200, "initial": 64, "boundary": 32, "sampling": "lhs"},
        "loss": {"boundary_derivative": 1.0},
        "optimizer": {"adam_steps": 200, "adam_lr": 0.01, "lbfgs_steps": 60},
        "log_every": 20,
        "evaluation_grid": {"nx": 41, "nt": 21},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            raw[key] = {**raw.get(key, {}), **value}
        else:
            raw[key] = value
    return PinnExperimentSpec.model_validate(raw)


# --- the exact solution and the residual --------------------------------------------------


def test_exact_solution_has_zero_residual():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(500, generator=gen, dtype=torch.float64) * 2 - 1
    t = torch.rand(500, generator=gen, dtype=torch.float64) * T_MAX

    def u(x, t):
        return heat_exact_torch(x, t, K, WIDTH, PERIOD, T_MAX)

    residual = heat_residual(u, x, t, K)
    xg = x.clone().requires_grad_(True)
    tg = t.clone().requires_grad_(True)
    (u_t,) = torch.autograd.grad(u(xg, tg).sum(), tg)
    assert u_t.abs().max() > 1.0  # the solution does change with time
    assert residual.abs().max() / u_t.abs().max() < 1e-12


def test_exact_solution_matches_torch_version_and_fourier_series():
    x = np.linspace(-1, 1, 41)
    t = np.linspace(0, T_MAX, 7)
    xx, tt = np.meshgrid(x, t, indexing="ij")
    u = heat_exact(xx, tt, K, WIDTH, PERIOD)
    u_torch = heat_exact_torch(torch.from_numpy(xx), torch.from_numpy(tt), K, WIDTH, PERIOD, T_MAX)
    np.testing.assert_allclose(u, u_torch.numpy(), rtol=1e-14, atol=1e-15)
    # Poisson summation: the same periodic solution as a Fourier series.
    s2 = WIDTH**2 + 4 * K * tt
    m = np.arange(1, 200)[:, None, None]
    series = 1 + 2 * np.sum(
        np.exp(-(math.pi**2) * m**2 * s2 / PERIOD**2) * np.cos(2 * math.pi * m * xx / PERIOD), axis=0
    )
    np.testing.assert_allclose(u, WIDTH * math.sqrt(math.pi) / PERIOD * series, atol=1e-13)


def test_exact_solution_satisfies_initial_and_periodic_conditions():
    x = np.linspace(-1, 1, 201)
    np.testing.assert_allclose(heat_exact(x, 0.0, K, WIDTH, PERIOD), np.exp(-((x / WIDTH) ** 2)), atol=1e-15)
    t = np.linspace(0, T_MAX, 31)
    left = heat_exact(-1.0, t, K, WIDTH, PERIOD)
    right = heat_exact(1.0, t, K, WIDTH, PERIOD)
    np.testing.assert_allclose(left, right, rtol=1e-13, atol=0)
    # The derivative is periodic too (central differences at both ends).
    h = 1e-5
    d_left = (heat_exact(-1 + h, t, K, WIDTH, PERIOD) - heat_exact(-1 - h, t, K, WIDTH, PERIOD)) / (2 * h)
    d_right = (heat_exact(1 + h, t, K, WIDTH, PERIOD) - heat_exact(1 - h, t, K, WIDTH, PERIOD)) / (2 * h)
    np.testing.assert_allclose(d_left, d_right, atol=1e-9)
    # Heat is conserved on a periodic domain: the integral over one period stays w sqrt(pi).
    xs = np.linspace(-1, 1, 4001)[:-1]
    for time in (0.0, 0.1, T_MAX):
        total = heat_exact(xs, time, K, WIDTH, PERIOD).sum() * (2 / 4000)
        assert total == pytest.approx(WIDTH * math.sqrt(math.pi), rel=1e-10)


@pytest.mark.parametrize(
    "network",
    [
        {"periodic_embedding": True, "hard_initial_condition": False},
        {"periodic_embedding": False, "hard_initial_condition": True, "activation": "sin"},
        {"periodic_embedding": True, "fourier_modes": 3, "hard_initial_condition": True},
    ],
)
def test_forward_mode_derivatives_match_autograd(network):
    spec = small_spec(network=network)
    torch.manual_seed(1)
    model = HeatPinn(spec.network, spec.pde).double()
    x = torch.rand(300, dtype=torch.float64) * 2 - 1
    t = torch.rand(300, dtype=torch.float64) * T_MAX
    u, u_t, u_x, u_xx = model.derivatives(x, t)
    torch.testing.assert_close(u, model(x, t), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(u_t - K * u_xx, heat_residual(model, x, t, K), rtol=1e-10, atol=1e-10)
    xg = x.clone().requires_grad_(True)
    (u_x_autograd,) = torch.autograd.grad(model(xg, t).sum(), xg)
    torch.testing.assert_close(u_x, u_x_autograd, rtol=1e-10, atol=1e-10)


def test_periodic_embedding_and_hard_initial_condition_are_exact():
    spec = small_spec(network={"periodic_embedding": True, "hard_initial_condition": True})
    model = HeatPinn(spec.network, spec.pde).double()
    points = CollocationPoints(spec, torch.float64, torch.device("cpu"))
    with torch.no_grad():
        terms = loss_terms(model, points, K)
    assert float(terms["pde"]) > 0
    assert float(terms["initial"]) == 0.0
    assert float(terms["boundary"]) < 1e-28
    assert float(terms["boundary_derivative"]) < 1e-24


@pytest.mark.parametrize("hard_ic", [False, True])
def test_least_squares_output_layer_is_the_exact_minimiser(hard_ic):
    spec = small_spec(
        network={"periodic_embedding": False, "hard_initial_condition": hard_ic},
        loss={"boundary_derivative": 0.5},
    )
    weights = spec.loss.model_dump()
    torch.manual_seed(3)
    model = HeatPinn(spec.network, spec.pde).double()
    points = CollocationPoints(spec, torch.float64, torch.device("cpu"))

    def total(solve=None):
        return _total(loss_terms(model, points, K, solve), weights)

    before = float(total().detach())
    after = total(weights)
    assert float(after.detach()) < before
    model.zero_grad()
    after.backward()
    last = model.layers[-1]
    hidden_grad = model.layers[0].weight.grad.abs().max()
    # The loss is stationary in the last layer (relative to the gradient of the others).
    assert last.weight.grad.abs().max() < 1e-6 * hidden_grad
    assert last.bias.grad.abs().max() < 1e-6 * hidden_grad
    with torch.no_grad():
        last.weight.add_(1e-3 * torch.randn_like(last.weight))
        assert float(total()) > float(after.detach())


def test_relative_l2_error_on_a_known_function():
    exact = np.array([3.0, 4.0])  # norm 5
    pred = np.array([3.0, 4.0]) + np.array([0.3, -0.4])  # error norm 0.5
    assert relative_l2_error(pred, exact) == pytest.approx(0.1, rel=1e-15)
    assert relative_l2_error(exact, exact) == 0.0
    x = np.linspace(0, 2 * np.pi, 1001)
    assert relative_l2_error(1.01 * np.sin(x), np.sin(x)) == pytest.approx(0.01, rel=1e-12)
    with pytest.raises(ValueError):
        relative_l2_error(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError):
        relative_l2_error(np.zeros(3), np.ones(4))


# --- training -------------------------------------------------------------------------------


def test_short_run_lowers_every_term_reports_and_draws():
    # Without the periodic embedding every term starts non-zero; a wider Gaussian trains faster.
    spec = small_spec(network={"periodic_embedding": False}, pde={"width": 0.3})
    reporter = RecordingReporter()
    summary = run_pinn(spec, reporter)

    logged_steps = sorted({int(r["step"]) for r in reporter.rows if r["split"] == "train"})
    assert logged_steps == list(range(20, 200 + 60 + 1, 20))
    for name in ("loss", "loss_pde", "loss_initial", "loss_boundary", "loss_boundary_derivative"):
        series = reporter.series("train", name)
        assert len(series) == len(logged_steps)
        assert series[-1] < series[0], name
    assert summary["final_loss"] == reporter.series("train", "loss")[-1]
    assert summary["steps"] == {"adam": 200, "lbfgs": 60, "total": 260}
    assert set(summary["loss_terms"]) == {"pde", "initial", "boundary", "boundary_derivative"}
    assert summary["relative_l2_error"] == reporter.series("evaluation", "relative_l2_error")[0]
    assert 0 < summary["relative_l2_error"] < 1
    assert summary["dtype"] == "float64" and summary["device"] == "cpu"
    assert math.isfinite(summary["validation_loss"]) and summary["validation_loss"] > 0
    assert summary["training_seconds"] > 0
    for name in ("pinn_solution.png", "exact_solution.png", "error.png", "heatmaps.png"):
        assert reporter.artifacts[name].startswith(PNG_SIGNATURE), name
    import json

    json.dumps(summary)  # JSON-able


def test_same_seed_same_result():
    # bitwise equality: pinned to the CPU (CUDA kernels are not bitwise deterministic)
    spec = small_spec(optimizer={"adam_steps": 40, "lbfgs_steps": 0}, log_every=20, device="cpu")
    first = run_pinn(spec, RecordingReporter())
    second = run_pinn(spec, RecordingReporter())
    assert first["final_loss"] == second["final_loss"]


def test_resampling_and_uniform_sampling_run():
    spec = small_spec(
        collocation={"sampling": "uniform", "resample_every": 10},
        optimizer={"adam_steps": 40, "lbfgs_steps": 0},
    )
    summary = run_pinn(spec, RecordingReporter())
    assert summary["steps"]["adam"] == 40 and math.isfinite(summary["final_loss"])


def test_should_stop_cancels():
    class StopAtOnce(RecordingReporter):
        def should_stop(self) -> bool:
            return True

    reporter = StopAtOnce()
    with pytest.raises(Cancelled):
        run_pinn(small_spec(), reporter)
    assert [int(r["step"]) for r in reporter.rows if r["name"] == "loss"] == [20]


def test_huge_learning_rate_diverges():
    spec = small_spec(
        optimizer={
            "adam_steps": 100,
            "adam_lr": 10.0,
            "adam_lr_final": None,
            "lbfgs_steps": 0,
            "output_layer": "gradient",
        },
        log_every=10,
    )
    with pytest.raises(TrainingDiverged, match=r"step 10 \(Adam\).*learning rate 10 is"):
        run_pinn(spec, RecordingReporter())


def test_nan_loss_is_a_divergence(monkeypatch):
    import ml.pinn.trainer

    calls = {"n": 0}
    real = ml.pinn.trainer.loss_terms

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        terms = real(*args, **kwargs)
        if calls["n"] > 30:
            terms["pde"] = terms["pde"] * float("nan")
        return terms

    monkeypatch.setattr(ml.pinn.trainer, "loss_terms", poisoned)
    with pytest.raises(TrainingDiverged, match=r"step 40 \(Adam\): loss is nan"):
        run_pinn(small_spec(), RecordingReporter())


def test_time_limit_stops_training_without_error():
    spec = small_spec(optimizer={"adam_steps": 100000, "lbfgs_steps": 0, "max_seconds": 0.5})
    summary = run_pinn(spec, RecordingReporter())
    assert summary["time_limit_reached"] is True
    assert 0 < summary["steps"]["adam"] < 100000


def test_command_line_writes_pictures_and_prints_the_summary(tmp_path, capsys):
    import json

    import yaml

    spec = small_spec(optimizer={"adam_steps": 20, "lbfgs_steps": 20}).model_dump()
    path = tmp_path / "pinn.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main([str(path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("\n{") :])
    assert summary["steps"]["total"] == 40
    for name in ("pinn_solution.png", "exact_solution.png", "error.png", "heatmaps.png"):
        assert (tmp_path / "out" / name).read_bytes().startswith(PNG_SIGNATURE)


# --- the spec -------------------------------------------------------------------------------


def test_importing_the_spec_does_not_import_torch():
    code = "import sys, ml.spec.pinn; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_spec_defaults_and_example_are_valid():
    import yaml

    spec = PinnExperimentSpec(name="defaults")
    assert spec.kind == "pinn" and spec.pde.k == 0.1 and spec.pde.t_max == 0.3
    example = yaml.safe_load((ROOT / "examples" / "pinn-heat.yaml").read_text())
    assert PinnExperimentSpec.model_validate(example).kind == "pinn"


@pytest.mark.parametrize(
    "patch",
    [
        {"surprise": 1},
        {"network": {"depth": 3}},
        {"kind": "mlp"},
        {"pde": {"equation": "wave_1d"}},
        {"pde": {"k": 0.0}},
        {"pde": {"x_min": 1.0, "x_max": -1.0}},
        {"network": {"hidden": [2048]}},
        {"network": {"hidden": [8] * 17}},
        {"network": {"hidden": []}},
        {"network": {"activation": "relu"}},
        {"collocation": {"interior": 200_001}},
        {"collocation": {"sampling": "sobol"}},
        {"optimizer": {"adam_steps": 200_001}},
        {"optimizer": {"lbfgs_steps": -1}},
        {"optimizer": {"dtype": "float16"}},
        {"loss": {"pde": -1.0}},
        {"evaluation_grid": {"nx": 100_000}},
    ],
)
def test_spec_rejects_unknown_fields_and_out_of_bounds(patch):
    raw = {"name": "bad", **patch}
    with pytest.raises(ValidationError):
        PinnExperimentSpec.model_validate(raw)

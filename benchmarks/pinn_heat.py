"""PINN for the periodic 1D heat equation: our recipe against the usual one, same machine.

    .venv/bin/python benchmarks/pinn_heat.py [--threads 2] [--baseline-seconds 180] [--no-baseline]

"ours" is examples/pinn-heat.yaml. "usual" is the textbook recipe: a 4x64 tanh network on (x, t),
4000 uniform collocation points, 256 initial and 256 boundary points (value and first derivative),
Adam 2000 steps at 1e-3 then L-BFGS (history 50), every weight trained by gradient, float64; it
stops after --baseline-seconds of training. Both use the same loss (all weights 1) and the same
exact solution. Each row: final loss, the same loss on fresh points, relative L2 error on the
201 x 101 grid, steps and seconds of training.
Last line: `ours_loss=… ours_l2=… ours_s=… usual_loss=… usual_l2=… usual_s=…`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.pinn.trainer import run_pinn  # noqa: E402
from ml.reporter import Reporter  # noqa: E402
from ml.spec.pinn import PinnExperimentSpec  # noqa: E402

USUAL = {
    "kind": "pinn",
    "name": "heat-1d-usual-recipe",
    "seed": 0,
    "network": {
        "hidden": [64, 64, 64, 64],
        "periodic_embedding": False,
        "fourier_modes": 1,
        "time_feature": "linear",
        "hard_initial_condition": False,
    },
    "collocation": {
        "interior": 4000,
        "initial": 256,
        "initial_focus": 0.0,
        "boundary": 256,
        "sampling": "uniform",
        "time_power": 1.0,
    },
    "loss": {"pde": 1.0, "initial": 1.0, "boundary": 1.0, "boundary_derivative": 1.0},
    "optimizer": {
        "adam_steps": 2000,
        "adam_lr": 1e-3,
        "adam_lr_final": None,
        "lbfgs_steps": 20000,
        "lbfgs_history": 50,
        "output_layer": "gradient",
        "dtype": "float64",
    },
    "log_every": 500,
}


class Quiet(Reporter):
    def log(self, message: str) -> None:
        print(f"  {message}", flush=True)


def run(label: str, raw: dict) -> dict:
    spec = PinnExperimentSpec.model_validate(raw)
    summary = run_pinn(spec, Quiet())
    print(
        f"{label:6s} loss {summary['final_loss']:.2e}  fresh {summary['validation_loss']:.2e}  "
        f"L2 {summary['relative_l2_error']:.2e}  steps {summary['steps']['total']:6d}  "
        f"{summary['training_seconds']:6.1f} s",
        flush=True,
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline-seconds", type=float, default=180.0)
    parser.add_argument("--no-baseline", action="store_true", help="only run our recipe")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    ours = run("ours", yaml.safe_load((ROOT / "examples" / "pinn-heat.yaml").read_text()))
    line = (
        f"ours_loss={ours['final_loss']:.3g} ours_l2={ours['relative_l2_error']:.3g}"
        f" ours_s={ours['training_seconds']:.1f}"
    )
    if not args.no_baseline:
        usual = dict(USUAL, optimizer={**USUAL["optimizer"], "max_seconds": args.baseline_seconds})
        other = run("usual", usual)
        line += (
            f" usual_loss={other['final_loss']:.3g} usual_l2={other['relative_l2_error']:.3g}"
            f" usual_s={other['training_seconds']:.1f}"
        )
    print(line)


if __name__ == "__main__":
    main()

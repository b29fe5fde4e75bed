"""How much slower is `ml.training.loop.fit` than a minimal hand-written PyTorch loop?

Both loops train the same model (same initial weights), on the same tensors, with the same
batch size, shuffling generator seed, Adam settings and thread count, in the same process, and
both run the same per-epoch validation pass and read the host once per epoch. Runs alternate
(ml, hand, hand, ml, ...) and the best of the repeats counts, to cut the noise of a shared
machine. Because the computations are the same, both loops end with the same weights; the
script checks it.

Cases:
- small: digits (1,437 training rows, 64 features), MLP 128-64, batch 64;
- large: 100,000 synthetic rows, 32 features, 10 classes, MLP 3 x 512, batch 256.

Usage:
    .venv/bin/python benchmarks/training_overhead.py [--repeats 3] [--small-epochs 40] [--large-epochs 2]
        [--large-rows 100000] [--threads 2]

The last line reads ``ratio_small=<ml/hand> ratio_large=<ml/hand> cpu_ratio_small=... cpu_ratio_large=...``
(goal: <= 1.05): best wall times, then best CPU times (steadier when other jobs share the cores).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

# On a machine whose cores other jobs share, OpenMP threads that spin while waiting for a
# descheduled partner make 2-thread runs 10-20x slower and very noisy; sleeping threads do not.
# Set before torch loads OpenMP; both loops run under the same setting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from ml.reporter import Reporter  # noqa: E402
from ml.spec import TrainSpec  # noqa: E402
from ml.training.loop import Tensors, fit  # noqa: E402

THREADS = 2
LR = 1e-3
SEED = 0


@dataclass
class Case:
    """One benchmark: a model to copy, the data, and the loop settings."""

    name: str
    model: nn.Module
    data: Tensors
    batch_size: int
    epochs: int


def _mlp(n_inputs: int, widths: list[int], n_outputs: int) -> nn.Module:
    torch.manual_seed(SEED)
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(n_inputs, width), nn.ReLU()]
        n_inputs = width
    return nn.Sequential(*layers, nn.Linear(n_inputs, n_outputs))


def small_case(epochs: int) -> Case:
    """Digits, standardized with training statistics, 80/20 train/validation."""
    X, y = load_digits(return_X_y=True)
    X_t, y_t = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    order = torch.randperm(len(X_t), generator=torch.Generator().manual_seed(SEED))
    train, val = order[: int(0.8 * len(order))], order[int(0.8 * len(order)) :]
    mean, std = X_t[train].mean(0), X_t[train].std(0).clamp_min(1e-6)
    X_t = (X_t - mean) / std
    data = Tensors(X_t[train], y_t[train], X_t[val], y_t[val])
    return Case("small: digits, MLP 128-64, batch 64", _mlp(64, [128, 64], 10), data, 64, epochs)


def large_case(epochs: int, rows: int = 100_000) -> Case:
    """Synthetic classification: labels from a random linear teacher, plus 10% label noise."""
    gen = torch.Generator().manual_seed(SEED)
    X = torch.randn(rows + rows // 10, 32, generator=gen)
    y = (X @ torch.randn(32, 10, generator=gen)).argmax(1)
    noisy = torch.rand(len(y), generator=gen) < 0.1
    y[noisy] = torch.randint(0, 10, (int(noisy.sum()),), generator=gen)
    data = Tensors(X[:rows], y[:rows], X[rows:], y[rows:])
    return Case(f"large: {rows:,} rows, MLP 3x512, batch 256", _mlp(32, [512, 512, 512], 10), data, 256, epochs)


def run_ml(model: nn.Module, case: Case) -> float:
    """`ml.training.loop.fit` with a no-op reporter; returns the last validation loss."""
    spec = TrainSpec(epochs=case.epochs, batch_size=case.batch_size, optimizer={"name": "adam", "lr": LR})
    history = fit(model, case.data, spec, "classification", Reporter(), torch.Generator().manual_seed(SEED))
    return history.series["validation"]["loss"][-1]


def run_hand(model: nn.Module, case: Case) -> float:
    """The loop one writes by hand: index batches, Adam, a validation pass, one sync per epoch."""
    d, bs = case.data, case.batch_size
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    criterion = nn.CrossEntropyLoss()
    n = len(d.X_train)
    val_loss = float("nan")
    for _ in range(case.epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        running = torch.zeros(())
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            xb, yb = d.X_train[idx], d.y_train[idx]
            loss = criterion(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach() * len(idx)
        model.eval()
        with torch.no_grad():
            v_loss, correct = torch.zeros(()), torch.zeros(())
            for start in range(0, len(d.X_val), 8192):
                out = model(d.X_val[start : start + 8192])
                target = d.y_val[start : start + 8192]
                v_loss += criterion(out, target) * len(target)
                correct += (out.argmax(1) == target).sum()
            train_loss, val_loss, _ = torch.stack([running / n, v_loss / len(d.X_val), correct]).tolist()
    return val_loss


def time_case(case: Case, repeats: int) -> dict[str, float]:
    """Wall and CPU times of both loops over `repeats` rounds, alternating which goes first.

    Returns:
        ``ml`` and ``hand``: the best wall times; ``ml_cpu`` and ``hand_cpu``: the best CPU times
        of the process (all threads), which time spent waiting for the cores of a busy machine
        does not inflate; ``median_ratio``: the median of the rounds' wall-time ratios (the two
        runs of a round are back to back, so they share the machine's load); and the final
        validation losses of both loops.
    """
    runners: dict[str, Callable[[nn.Module, Case], float]] = {"ml": run_ml, "hand": run_hand}
    wall: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    losses: dict[str, float] = {}
    for round_ in range(repeats):
        names = list(runners) if round_ % 2 == 0 else list(reversed(runners))
        for name in names:
            model = copy.deepcopy(case.model)
            started, cpu_started = time.perf_counter(), time.process_time()
            losses[name] = runners[name](model, case)
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
    ratios = sorted(m / h for m, h in zip(wall["ml"], wall["hand"], strict=True))
    return {
        "ml": min(wall["ml"]),
        "hand": min(wall["hand"]),
        "ml_cpu": min(cpu["ml"]),
        "hand_cpu": min(cpu["hand"]),
        "median_ratio": ratios[len(ratios) // 2],
        "ml_loss": losses["ml"],
        "hand_loss": losses["hand"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the large case (small: 3x as many)")
    parser.add_argument("--small-epochs", type=int, default=40)
    parser.add_argument("--large-epochs", type=int, default=2)
    parser.add_argument("--large-rows", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    # Warm-up: the first optimizer built in a process imports parts of torch (seconds); neither
    # loop's timing should pay for that.
    warm = small_case(1)
    for runner in (run_ml, run_hand):
        runner(copy.deepcopy(warm.model), warm)

    cases = {
        "small": (small_case(args.small_epochs), 3 * args.repeats),
        "large": (large_case(args.large_epochs, args.large_rows), args.repeats),
    }
    ratios: dict[str, float] = {}
    print(
        f"torch {torch.__version__}, {args.threads} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
        f"{args.repeats} rounds (small case: {3 * args.repeats}); times are the best of the rounds"
    )
    print("ratio: ml / hand (wall); cpu ratio: ml / hand (process CPU time); median: of the rounds' wall ratios")
    header = f"{'case':<42} {'epochs':>6} {'runs':>4} {'ml s':>7} {'hand s':>7} {'ratio':>6} {'cpu ratio':>9}"
    print(f"{header} {'median':>6}  same result")
    for key, (case, repeats) in cases.items():
        t = time_case(case, repeats)
        ratios[f"ratio_{key}"] = t["ml"] / t["hand"]
        ratios[f"cpu_ratio_{key}"] = t["ml_cpu"] / t["hand_cpu"]
        same = abs(t["ml_loss"] - t["hand_loss"]) <= 1e-5 * max(1.0, abs(t["hand_loss"]))
        print(
            f"{case.name:<42} {case.epochs:>6} {repeats:>4} {t['ml']:>7.3f} {t['hand']:>7.3f} "
            f"{ratios[f'ratio_{key}']:>6.3f} {ratios[f'cpu_ratio_{key}']:>9.3f} {t['median_ratio']:>6.3f}  "
            f"{'yes' if same else 'NO'} (val loss {t['ml_loss']:.5f} vs {t['hand_loss']:.5f})"
        )
    wall_first = sorted(ratios.items(), key=lambda item: item[0].startswith("cpu"))
    print(" ".join(f"{name}={ratio:.3f}" for name, ratio in wall_first))


if __name__ == "__main__":
    main()

"""What the GPU earns, measured on the machine it runs on.

1. `ml.training.loop.fit` against a hand-written PyTorch loop (same MLP, data, batch size, Adam,
   one validation pass and one host read per epoch): rows/s of each and the ratio fit / hand
   (goal >= 0.95). On the CPU; on CUDA in float32 and with mixed precision (autocast: bfloat16
   where supported) when a GPU is present.
2. The PINN (examples/pinn-heat.yaml, with fewer L-BFGS steps unless --pinn-full): seconds on
   the CPU and, when present, on the GPU, and the ratio.
3. DDP scaling: `ml.training.distributed.fit_distributed` on 2 processes against `fit` on one, on
   the same data, model and total batch (each rank takes half of it): training rows/s of each
   (epochs after the first, so that starting the second process and warming up are left out)
   and the ratio 2 / 1. With gloo on the CPU (the processes share this process's threads, half
   each); with NCCL when two GPUs are present.

    python benchmarks/gpu.py [--rows 200000] [--epochs 3] [--batch 4096] [--pinn-lbfgs 400] [--pinn-full]
        [--skip-pinn] [--skip-fit] [--ddp-rows 50000] [--ddp-epochs 4] [--threads N]

The last line sums up: ``fit_ratio_cpu=... fit_ratio_cuda_fp32=... fit_ratio_cuda_amp=... pinn_cpu_s=...
pinn_cuda_s=... ddp_ratio_gloo_cpu=... ddp_ratio_nccl=...`` (absent parts: ``-``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.pinn.trainer import run_pinn  # noqa: E402
from ml.reporter import Reporter  # noqa: E402
from ml.spec import TrainSpec  # noqa: E402
from ml.spec.pinn import PinnExperimentSpec  # noqa: E402
from ml.training.distributed import fit_distributed  # noqa: E402
from ml.training.loop import Tensors, fit  # noqa: E402

WIDTHS = [1024, 1024, 1024]


def mlp(n_in: int, n_out: int) -> nn.Module:
    layers: list[nn.Module] = []
    for width in WIDTHS:
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


def data(rows: int, device: torch.device) -> Tensors:
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(rows, 64, generator=gen)
    y = (X[:, :10].argmax(1) + (X[:, 10] > 1).long()) % 10
    cut = rows - max(1024, rows // 50)
    return Tensors(*(t.to(device) for t in (X[:cut], y[:cut], X[cut:], y[cut:])))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fit(d: Tensors, epochs: int, batch: int, amp: bool) -> float:
    torch.manual_seed(0)
    model = mlp(64, 10).to(d.X_train.device)
    spec = TrainSpec(
        epochs=epochs,
        batch_size=batch,
        optimizer={"name": "adam", "lr": 1e-3},
        mixed_precision=amp,
        early_stopping={"patience": epochs + 1},
    )
    sync(d.X_train.device)
    started = time.perf_counter()
    fit(model, d, spec, "classification", Reporter(), torch.Generator().manual_seed(0))
    sync(d.X_train.device)
    return time.perf_counter() - started


def time_hand(d: Tensors, epochs: int, batch: int, amp: bool) -> float:
    device = d.X_train.device
    torch.manual_seed(0)
    model = mlp(64, 10).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and dtype == torch.float16)

    def autocast() -> contextlib.AbstractContextManager[object]:
        return torch.autocast("cuda", dtype=dtype) if amp else contextlib.nullcontext()

    gen = torch.Generator().manual_seed(0)
    n = len(d.X_train)
    sync(device)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        total = torch.zeros((), device=device)
        for idx in torch.randperm(n, generator=gen).to(device).split(batch):
            with autocast():
                loss = loss_fn(model(d.X_train[idx]), d.y_train[idx])
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += loss.detach()
        model.eval()
        with torch.no_grad(), autocast():
            val = loss_fn(model(d.X_val), d.y_val)
        float(total), float(val)  # one host read per epoch, as fit does
    sync(device)
    return time.perf_counter() - started


def compare_fit(device: torch.device, rows: int, epochs: int, batch: int, amp: bool, repeats: int) -> float:
    d = data(rows, device)
    time_fit(d, 1, batch, amp)  # warm-up: kernels, allocator, cuBLAS handles
    time_hand(d, 1, batch, amp)
    best_fit = best_hand = float("inf")
    for _ in range(repeats):  # alternate, best of each: a shared machine is noisy
        best_fit = min(best_fit, time_fit(d, epochs, batch, amp))
        best_hand = min(best_hand, time_hand(d, epochs, batch, amp))
    n = len(d.X_train) * epochs
    ratio = best_hand / best_fit  # throughput ratio fit / hand
    label = f"{device.type}{' amp' if amp else ' fp32' if device.type == 'cuda' else ''}"
    print(
        f"fit vs hand-written [{label}]: fit {n / best_fit:,.0f} rows/s, hand {n / best_hand:,.0f} rows/s, "
        f"ratio {ratio:.3f} (MLP 64-{'x'.join(map(str, WIDTHS))}-10, batch {batch}, {len(d.X_train):,} rows)"
    )
    return ratio


def time_pinn(device: torch.device, lbfgs: int | None) -> tuple[float, float]:
    raw = yaml.safe_load((ROOT / "examples" / "pinn-heat.yaml").read_text())
    spec = PinnExperimentSpec.model_validate(raw)
    if lbfgs is not None:
        spec.optimizer.lbfgs_steps = lbfgs
    started = time.perf_counter()
    summary = run_pinn(spec, Reporter(), device)
    return time.perf_counter() - started, summary["relative_l2_error"]


class EpochClock(Reporter):
    """When each epoch ended (rank 0's, for the data-parallel run)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_epoch_end(self, step: int, metrics: object) -> None:
        self.times.append(time.perf_counter())

    def rate(self, rows: int) -> float:
        """Training rows/s over the epochs after the first."""
        return rows * (len(self.times) - 1) / (self.times[-1] - self.times[0])


def ddp_scaling(device: torch.device, rows: int, epochs: int, batch: int, repeats: int) -> float:
    """Rows/s of 2 data-parallel processes / rows/s of one, same data, model and total batch."""
    d = data(rows, device)
    spec = TrainSpec(epochs=epochs, batch_size=batch, optimizer={"name": "adam", "lr": 1e-3})
    one = two = 0.0
    report: dict[str, Any] = {}
    for _ in range(repeats):  # alternate, best of each: a shared machine is noisy
        torch.manual_seed(0)
        clock = EpochClock()
        fit(mlp(64, 10).to(device), d, spec, "classification", clock, torch.Generator().manual_seed(0))
        one = max(one, clock.rate(len(d.X_train)))
        torch.manual_seed(0)
        clock = EpochClock()
        _, report = fit_distributed(
            mlp(64, 10).to(device),
            d,
            spec,
            "classification",
            clock,
            torch.Generator().manual_seed(0),
            processes=2,
            seed=0,
        )
        two = max(two, clock.rate(2 * int(report["rows_per_process"])))
    print(
        f"DDP scaling [{report['backend']} on {', '.join(report['devices'])}]: 1 process {one:,.0f} rows/s, "
        f"2 processes {two:,.0f} rows/s, ratio {two / one:.2f} (MLP 64-{'x'.join(map(str, WIDTHS))}-10, total batch "
        f"{batch}, {len(d.X_train):,} rows, {epochs - 1} timed epochs, {torch.get_num_threads()} threads in all)"
    )
    return two / one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="default: 1,000,000 on CUDA, 50,000 on the CPU")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--pinn-lbfgs", type=int, default=400, help="L-BFGS steps of the PINN (example: 3700)")
    parser.add_argument("--pinn-full", action="store_true", help="the PINN example as it is")
    parser.add_argument("--skip-pinn", action="store_true")
    parser.add_argument("--skip-fit", action="store_true", help="leave out the fit vs hand-written comparison")
    parser.add_argument("--ddp-rows", type=int, default=None, help="default: 1,000,000 on CUDA, 50,000 on the CPU")
    parser.add_argument("--ddp-epochs", type=int, default=4, help="the first is not timed")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", end="")
    print(f", GPU {torch.cuda.get_device_name(0)}" if cuda else ", no CUDA device: CPU parts only")
    out: dict[str, str] = {}
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    if not args.skip_fit:
        out["fit_ratio_cpu"] = (
            f"{compare_fit(cpu, args.rows or 50_000, args.epochs, args.batch, False, args.repeats):.3f}"
        )
    if cuda and not args.skip_fit:
        rows = args.rows or 1_000_000
        out["fit_ratio_cuda_fp32"] = f"{compare_fit(gpu, rows, args.epochs, args.batch, False, args.repeats):.3f}"
        out["fit_ratio_cuda_amp"] = f"{compare_fit(gpu, rows, args.epochs, args.batch, True, args.repeats):.3f}"
    if not args.skip_pinn:
        lbfgs = None if args.pinn_full else args.pinn_lbfgs
        steps = "example's steps" if lbfgs is None else f"300 Adam + {lbfgs} L-BFGS steps"
        seconds, error = time_pinn(cpu, lbfgs)
        print(f"PINN heat_1d ({steps}) on the CPU: {seconds:.1f} s, relative L2 error {error:.2e}")
        out["pinn_cpu_s"] = f"{seconds:.1f}"
        if cuda:
            time_pinn(gpu, 5)  # warm-up
            gpu_seconds, gpu_error = time_pinn(gpu, lbfgs)
            print(
                f"PINN heat_1d ({steps}) on the GPU: {gpu_seconds:.1f} s, relative L2 error {gpu_error:.2e}; "
                f"GPU / CPU time {gpu_seconds / seconds:.2f}"
            )
            out["pinn_cuda_s"] = f"{gpu_seconds:.1f}"
    ddp = (args.ddp_rows or 50_000, args.ddp_epochs, args.batch, args.repeats)
    out["ddp_ratio_gloo_cpu"] = f"{ddp_scaling(cpu, *ddp):.2f}"
    if cuda and torch.cuda.device_count() >= 2:
        out["ddp_ratio_nccl"] = f"{ddp_scaling(gpu, args.ddp_rows or 1_000_000, *ddp[1:]):.2f}"
    elif cuda:
        print("DDP scaling on GPUs: needs 2 GPUs, this machine has 1")
    keys = ["fit_ratio_cpu", "fit_ratio_cuda_fp32", "fit_ratio_cuda_amp", "pinn_cpu_s", "pinn_cuda_s"]
    keys += ["ddp_ratio_gloo_cpu", "ddp_ratio_nccl"]
    print(" ".join(f"{k}={out.get(k, '-')}" for k in keys))


if __name__ == "__main__":
    main()

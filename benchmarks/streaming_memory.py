"""Peak memory and speed of a folder data set trained in memory against the same set streamed
shard by shard, on an image archive whose decoded features are 4x the data memory budget.

The archive: examples/data/make_shapes.py's six classes of RGB images (`--per-class` images each,
`--size` pixels a side), zipped. Each mode runs in a fresh process, as a worker runs a run:

- memory: `ml.data.perceptual.load_folder_dataset` decodes every image, `ml.run.run_experiment`
  trains on tensors (what a worker does under the budget);
- streamed: `ml.data.shards.write_shards` decodes member by member into shards sized by the budget,
  the run streams them (what a worker does over the budget, `data.stream: auto`).

Each process first runs the same mode on a small archive (every module, thread pool and allocator
arena of a run in place), resets the kernel's peak RSS (/proc/self/clear_refs), then decodes and
trains the big archive; it reports the peak RSS above the resident memory before (VmHWM - VmRSS),
the decoding time and the training samples/s (training rows x epochs / training seconds). The last
line gives the ratios streamed / in memory. Linux only (/proc). CPU, or CUDA when present.

    python benchmarks/streaming_memory.py [--per-class 400] [--size 48] [--epochs 2] [--model mlp|cnn]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "mlp": {"type": "mlp", "hidden": [64]},
    "cnn": {"type": "cnn", "channels": [16, 32], "batch_norm": True, "hidden": [64]},
}

CHILD = """
import json, sys, time
from pathlib import Path
from ml.data.perceptual import load_folder_dataset
from ml.data.shards import load_sharded, write_shards
from ml.reporter import Reporter
from ml.run import run_experiment
from ml.spec import ImageSpec

mode, folder, budget, size = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
spec = json.loads(sys.argv[5])
image = ImageSpec(size=(size, size))

def status_mb(field):
    lines = Path("/proc/self/status").read_text().splitlines()
    return int(next(l.split()[1] for l in lines if l.startswith(field + ":"))) / 1024

def run(archive):
    started = time.perf_counter()
    if mode == "memory":
        data = load_folder_dataset(folder / archive, "image", image=image)
    else:
        shards = folder / f"{archive}.{mode}"
        write_shards(folder / archive, "image", shards, image=image, budget_bytes=budget)
        data = load_sharded(shards, budget)
    decoded = time.perf_counter() - started
    # A reporter that keeps nothing, as a worker's (its checkpoints and artifacts go to the store).
    return decoded, run_experiment(spec, Reporter(), resolve_upload=lambda *_: data)

run("warm.zip")
Path("/proc/self/clear_refs").write_text("5")  # the peak RSS starts again from the RSS now
before = status_mb("VmRSS")
decoded, summary = run("big.zip")
rows = summary["dataset"]["split"]["train"] * summary["epochs_run"]
print(json.dumps({
    "peak_growth_mb": status_mb("VmHWM") - before, "rss_before_mb": before, "decode_s": decoded,
    "samples_per_s": rows / summary["training_seconds"], "accuracy": summary["test"]["accuracy"],
    "device": str(summary["device"]), "streamed": summary["dataset"].get("streamed"),
}))
"""


def write_archive(path: Path, per_class: int, size: int, seed: int) -> None:
    """make_shapes' images, zipped member by member (never a folder on disk)."""
    sys.path.insert(0, str(ROOT / "examples" / "data"))
    from make_shapes import CLASSES, image
    from PIL import Image

    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as archive:
        for label in CLASSES:
            for k in range(per_class):
                buffer = io.BytesIO()
                Image.fromarray(image(label, size, rng)).save(buffer, "PNG")
                archive.writestr(f"shapes/{label}/{label}.{k:05d}.png", buffer.getvalue())


def measure(mode: str, folder: Path, budget: int, size: int, spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(folder), str(budget), str(size), json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=400, help="images per class (six classes)")
    parser.add_argument("--size", type=int, default=48, help="side in pixels")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    args = parser.parse_args()

    features = 6 * args.per_class * 3 * args.size * args.size * 4
    budget = features // 4
    spec = {
        "name": "streaming-memory",
        "seed": 0,
        "data": {"source": "dataset/1", "split": {"test": 0.2, "validation": 0.2}},
        "preprocess": [{"step": "standardize"}, {"step": "image", "flip": True}],
        "model": MODELS[args.model],
        "train": {"epochs": args.epochs, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.002}},
        "evaluate": {"metrics": ["accuracy"], "plots": False},
    }
    with tempfile.TemporaryDirectory(prefix="streaming-") as tmp:
        folder = Path(tmp)
        write_archive(folder / "warm.zip", 10, args.size, seed=1)
        write_archive(folder / "big.zip", args.per_class, args.size, seed=0)
        print(
            f"{6 * args.per_class} images of {args.size}x{args.size} RGB: {features / 2**20:.1f} MB of features, "
            f"a budget of {budget / 2**20:.1f} MB; model {args.model}, {args.epochs} epochs"
        )
        results = {mode: measure(mode, folder, budget, args.size, spec) for mode in ("memory", "streamed")}
    for mode, r in results.items():
        shards = f", {r['streamed']['shards']} shards of {r['streamed']['shard_rows']} rows" if r["streamed"] else ""
        print(
            f"{mode:>8}: peak RSS +{r['peak_growth_mb']:.1f} MB (above {r['rss_before_mb']:.0f} MB), "
            f"decode {r['decode_s']:.1f} s, training {r['samples_per_s']:.0f} samples/s on {r['device']}, "
            f"test accuracy {r['accuracy']:.3f}{shards}"
        )
    memory, streamed = results["memory"], results["streamed"]
    print(
        f"streamed / in memory: peak RSS growth {streamed['peak_growth_mb'] / memory['peak_growth_mb']:.2f}, "
        f"training samples/s {streamed['samples_per_s'] / memory['samples_per_s']:.2f}"
    )


if __name__ == "__main__":
    main()

"""trainlab's folder-data pipeline against a hand-written PyTorch loop, on the same clips.

Both sides decode the same synthetic GTZAN-shaped archive (examples/data/make_genres.py) with the
same code into log-mel spectrograms, then train the same TP2 CNN for the same epochs, batch size,
optimizer and seed:

- trainlab: `ml.data.perceptual.load_folder_dataset`, then `ml.training.loop.fit` (tensors on the
  device, batches by index);
- hand-written: a `torch.utils.data.Dataset` over the decoded spectrograms and a `DataLoader`
  (shuffle, the usual recipe), the textbook training loop.

Prints samples/s of decoding and of training for each, and the ratio (trainlab / hand-written;
goal >= 1.0) on the last line. CPU always; CUDA too when present.

    python benchmarks/data_pipeline.py [--clips 40] [--seconds 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "data"))

from make_genres import write_genres  # noqa: E402

from ml.data.perceptual import load_folder_dataset  # noqa: E402
from ml.models import build_model  # noqa: E402
from ml.reporter import Reporter  # noqa: E402
from ml.spec import AudioSpec, ModelSpec, TrainSpec  # noqa: E402
from ml.training.loop import Tensors, fit  # noqa: E402

AUDIO = AudioSpec(clip_seconds=3, n_mels=64, n_fft=2048, hop_length=1024)
MODEL = ModelSpec(type="cnn", channels=[16, 32, 32], batch_norm=True, hidden=[64], dropout=0.3)


def _archive(clips: int, seconds: float) -> Path:
    root = Path(tempfile.mkdtemp(prefix="pipeline-"))
    folder = write_genres(root, clips=clips, seconds=seconds, seed=0)
    archive = root / "genres.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as packed:
        for file in sorted(folder.rglob("*.wav")):
            packed.write(file, file.relative_to(root))
    return archive


def trainlab_epochs(
    X: torch.Tensor, y: torch.Tensor, shape: tuple[int, ...], epochs: int, device: torch.device
) -> float:
    torch.manual_seed(0)
    model = build_model(MODEL, X.shape[1], 10, shape).to(device)
    spec = TrainSpec(epochs=epochs, batch_size=32, optimizer={"name": "adam", "lr": 0.002})
    data = Tensors(X.to(device), y.to(device), X[:0].to(device), y[:0].to(device))
    _sync(device)
    started = time.perf_counter()
    fit(model, data, spec, "classification", Reporter(), torch.Generator().manual_seed(0))
    _sync(device)
    return time.perf_counter() - started


class Spectrograms(torch.utils.data.Dataset):
    def __init__(self, X: np.ndarray, y: np.ndarray, shape: tuple[int, ...]) -> None:
        self.X, self.y, self.shape = X, y, shape

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.X[i].reshape(self.shape)), torch.tensor(self.y[i])


def handwritten_epochs(
    X: np.ndarray, y: np.ndarray, shape: tuple[int, ...], epochs: int, device: torch.device
) -> float:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), build_model(MODEL, X.shape[1], 10, shape)).to(device)
    loader = torch.utils.data.DataLoader(
        Spectrograms(X, y, shape), batch_size=32, shuffle=True, pin_memory=device.type == "cuda"
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
    criterion = nn.CrossEntropyLoss()
    _sync(device)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
    _sync(device)
    return time.perf_counter() - started


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40, help="clips per genre (10 genres)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    archive = _archive(args.clips, args.seconds)
    started = time.perf_counter()
    data = load_folder_dataset(archive, "audio", AUDIO)
    decode = time.perf_counter() - started
    n = len(data.y)
    print(f"decode + log-mel: {n} clips in {decode:.2f} s = {n / decode:.0f} clips/s (both sides use it)")
    shape = data.image_shape or ()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    ratios = []
    for device in devices:
        ours = min(
            trainlab_epochs(torch.as_tensor(data.X), torch.as_tensor(data.y), shape, args.epochs, device)
            for _ in range(2)
        )
        theirs = min(handwritten_epochs(data.X, data.y, shape, args.epochs, device) for _ in range(2))
        samples = n * args.epochs
        ratios.append(theirs / ours)
        print(
            f"{device.type}: trainlab {samples / ours:.0f} samples/s, hand-written DataLoader loop "
            f"{samples / theirs:.0f} samples/s (best of 2, {args.epochs} epochs of {n} clips)"
        )
    print(
        "throughput ratio trainlab / hand-written: "
        + ", ".join(f"{d.type} {r:.2f}" for d, r in zip(devices, ratios, strict=True))
    )


if __name__ == "__main__":
    main()

"""Checkpoints: a run stopped after some epochs and resumed from its checkpoint ends exactly
like an uninterrupted run (same seed).

Bitwise equality is a property of the CPU kernels: CUDA's (cuBLAS, cuDNN, atomics in reductions)
are not bitwise deterministic, so the exact test pins ``train.device: cpu`` and passes on a GPU
machine too. On CUDA, a separate test checks that a resumed run resumes (same epochs reported,
the checkpoint's epoch honoured) without asking for bit-identical numbers."""

from __future__ import annotations

import io
import pickle

import pytest
import torch

from ml.errors import Cancelled
from ml.reporter import RecordingReporter
from ml.run import run_experiment

SPEC = {
    "name": "resume",
    "seed": 9,
    "data": {"source": "synthetic/moons", "options": {"n_samples": 600, "noise": 0.3}},
    "model": {"hidden": [32, 32], "dropout": 0.2},
    "train": {
        "epochs": 12,
        "batch_size": 32,
        "optimizer": {"name": "adam", "lr": 0.01},
        "schedule": {"name": "warmup", "warmup_epochs": 3, "decay": "cosine"},
        "early_stopping": {"patience": 50},
        "device": "cpu",  # bitwise equality: CPU kernels only (see the module's docstring)
    },
}


class StopAfter(RecordingReporter):
    """Stops the run once `epochs` epochs are done (as a killed worker would)."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def should_stop(self) -> bool:
        return len({r["step"] for r in self.rows}) >= self.epochs


def test_resumed_run_equals_uninterrupted_run() -> None:
    whole = RecordingReporter()
    expected = run_experiment(SPEC, whole)

    first = StopAfter(5)
    with pytest.raises(Cancelled):
        run_experiment(SPEC, first)
    assert first.checkpoint is not None

    second = RecordingReporter()
    second.checkpoint = first.checkpoint
    resumed = run_experiment(SPEC, second)
    assert resumed["test"] == expected["test"] and resumed["final"] == expected["final"]
    assert resumed["best_epoch"] == expected["best_epoch"]
    assert any("resumed from the checkpoint of epoch 5" in m for m in second.messages)
    # the resumed run reports epochs 6..12, identical to the uninterrupted ones
    later = [r for r in whole.rows if r["step"] > 5]
    assert second.rows == later


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (resume on the GPU)")
def test_resumed_run_on_cuda_resumes_from_its_checkpoint() -> None:
    spec = {**SPEC, "train": {**SPEC["train"], "device": "cuda"}}
    whole = RecordingReporter()
    expected = run_experiment(spec, whole)
    first = StopAfter(5)
    with pytest.raises(Cancelled):
        run_experiment(spec, first)
    second = RecordingReporter()
    second.checkpoint = first.checkpoint
    resumed = run_experiment(spec, second)
    assert resumed["device"].startswith("cuda") and resumed["gpu"]["name"]
    assert any("resumed from the checkpoint of epoch 5" in m for m in second.messages)
    assert resumed["epochs_run"] == expected["epochs_run"]
    assert sorted({r["step"] for r in second.rows}) == list(range(6, 13))


def test_a_checkpoint_that_is_not_plain_data_is_refused() -> None:
    from ml.training import checkpoint

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buffer = io.BytesIO()
    torch.save({"format": 1, "evil": Evil()}, buffer, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    model = torch.nn.Linear(2, 2)
    with pytest.raises(pickle.UnpicklingError):
        checkpoint.restore(
            buffer.getvalue(), model, torch.optim.SGD(model.parameters(), lr=0.1), None, None, torch.Generator()
        )

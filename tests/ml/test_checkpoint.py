"""Checkpoints: a run stopped after some epochs and resumed from its checkpoint ends exactly
like an uninterrupted run (CPU, same seed)."""

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

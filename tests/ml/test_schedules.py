"""Learning-rate schedules (the logged `train/lr` is the rate each epoch trained at) and the
learning-rate range test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from pydantic import ValidationError

from ml.models import build_model
from ml.reporter import RecordingReporter
from ml.spec import ModelSpec, TrainSpec, parse_spec
from ml.spec.training import SCHEDULE_NAMES
from ml.training.loop import Tensors, fit
from ml.training.lr_finder import lr_range_test, run_lr_range_test
from ml.training.schedules import SCHEDULES, build_schedule, epoch_factor

PEAK = 0.01
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def blobs(n: int = 160) -> Tensors:
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=gen)
    X = torch.randn(n, 4, generator=gen) + 1.5 * y[:, None].float()
    return Tensors(X[:128], y[:128], X[128:], y[128:])


def lr_series(schedule: dict[str, Any] | None, epochs: int = 8, **optimizer: Any) -> list[float]:
    """Train a little with the schedule; return the logged learning rate of each epoch."""
    torch.manual_seed(0)
    model = build_model(ModelSpec(hidden=[8]), 4, 2)
    reporter = RecordingReporter()
    spec = TrainSpec(
        epochs=epochs, batch_size=32, optimizer={"name": "sgd", "lr": PEAK, **optimizer}, schedule=schedule
    )
    fit(model, blobs(), spec, "classification", reporter, torch.Generator().manual_seed(0))
    return reporter.series("train", "lr")


def test_constant_is_the_default() -> None:
    assert lr_series(None) == [PEAK] * 8
    assert TrainSpec().schedule.name == "constant"


def test_step_and_exponential() -> None:
    assert lr_series({"name": "step", "step_size": 3, "gamma": 0.5}) == pytest.approx(
        [PEAK] * 3 + [PEAK / 2] * 3 + [PEAK / 4] * 2
    )
    assert lr_series({"name": "exponential", "gamma": 0.9}) == pytest.approx([PEAK * 0.9**i for i in range(8)])


def test_cosine_goes_from_the_rate_to_min_lr_over_the_run() -> None:
    lrs = lr_series({"name": "cosine", "min_lr": 0.001})
    assert lrs[0] == pytest.approx(PEAK) and lrs[-1] == pytest.approx(0.001)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[3] + lrs[4] == pytest.approx(PEAK + 0.001)  # symmetric around the middle


@pytest.mark.parametrize("decay", ["cosine", "linear", "exponential", "none"])
def test_warmup_reaches_the_peak_at_epoch_warmup_epochs_plus_one(decay: str) -> None:
    lrs = lr_series({"name": "warmup", "warmup_epochs": 3, "warmup_start_factor": 0.1, "decay": decay}, epochs=10)
    assert lrs[0] == pytest.approx(0.1 * PEAK)
    assert lrs[:3] == pytest.approx([0.1 * PEAK, 0.4 * PEAK, 0.7 * PEAK])  # linear climb, all below the peak
    assert lrs[3] == PEAK  # epoch 4 = warmup_epochs + 1 trains at exactly the peak
    assert max(lrs) == PEAK
    after = lrs[3:]
    if decay == "none":
        assert after == [PEAK] * 7
    else:
        assert all(a > b for a, b in zip(after, after[1:], strict=False))
    if decay in ("cosine", "linear"):
        assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    if decay == "exponential":
        assert lrs[-1] == pytest.approx(PEAK * 0.95**6)


def test_warmup_shorthand_and_bounds() -> None:
    spec = TrainSpec(epochs=20, schedule={"warmup_epochs": 5, "decay": "cosine"})
    assert spec.schedule.name == "warmup"
    with pytest.raises(ValidationError, match="warmup_epochs .* must be smaller than epochs"):
        TrainSpec(epochs=5, schedule={"name": "warmup", "warmup_epochs": 5})
    with pytest.raises(ValidationError, match="gamma applies to decay 'exponential' only"):
        TrainSpec(epochs=20, schedule={"name": "warmup", "warmup_epochs": 2, "gamma": 0.9})


def test_reduce_on_plateau_cuts_the_rate_after_patience_flat_epochs() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    spec = TrainSpec(schedule={"name": "reduce_on_plateau", "factor": 0.5, "patience": 2}).schedule
    schedule = build_schedule(spec, optimizer, epochs=10, steps_per_epoch=4)
    rates = []
    for loss in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]:
        schedule.after_epoch(loss)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    assert len(lr_series({"name": "reduce_on_plateau", "patience": 1})) == 8


def test_one_cycle_steps_per_batch() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    spec = TrainSpec(schedule={"name": "one_cycle", "max_lr": 1.0, "pct_start": 0.25}).schedule
    schedule = build_schedule(spec, optimizer, epochs=4, steps_per_epoch=10)
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(39):
        optimizer.step()
        schedule.after_batch()
        schedule.after_epoch(0.0)  # a no-op for a per-batch schedule
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates[0] == pytest.approx(1.0 / 25)
    assert max(rates) == pytest.approx(1.0) and rates.index(max(rates)) in (9, 10)
    assert rates[-1] < rates[0] / 1000
    # In training: the logged rate is each epoch's first batch's; it rises, then falls.
    lrs = lr_series({"name": "one_cycle", "max_lr": 0.1}, epochs=8)
    peak = lrs.index(max(lrs))
    assert lrs[0] == pytest.approx(0.1 / 25) and 0 < peak < 7 and lrs[-1] < lrs[peak]


def test_every_schedule_name_has_a_builder_and_unknown_names_are_listed() -> None:
    assert set(SCHEDULES) == set(SCHEDULE_NAMES)
    with pytest.raises(ValidationError) as caught:
        parse_spec({"name": "x", "data": {"source": "builtin/iris"}, "train": {"schedule": {"name": "cyclic"}}})
    message = str(caught.value)
    assert "train.schedule" in message
    for name in SCHEDULE_NAMES:
        assert repr(name) in message


def test_lr_range_test_suggests_a_rate_and_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    model = build_model(ModelSpec(hidden=[16]), 4, 2)
    before = [p.detach().clone() for p in model.parameters()]
    spec = TrainSpec(batch_size=16, optimizer={"name": "sgd"}, lr_range_test={"steps": 60, "end_lr": 100.0})
    result = lr_range_test(
        model, blobs(), spec, "classification", torch.Generator().manual_seed(0), steps=60, end_lr=100.0
    )
    lrs = result["lrs"]
    assert lrs[0] == pytest.approx(1e-7) and all(b > a for a, b in zip(lrs, lrs[1:], strict=False))
    assert len(result["losses"]) == len(lrs) == len(result["raw_losses"]) <= 60
    assert 1e-4 < result["suggested_lr"] < 100.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    reporter = RecordingReporter()
    again = run_lr_range_test(model, blobs(), spec, "classification", torch.Generator().manual_seed(0), reporter)
    assert again is not None and again["suggested_lr"] == result["suggested_lr"]
    assert reporter.artifacts["lr_range_test.png"].startswith(b"\x89PNG")
    assert "suggested lr" in reporter.messages[-1]


def test_warmup_cosine_example_is_valid_and_peaks_after_its_warmup() -> None:
    spec = parse_spec(yaml.safe_load((EXAMPLES / "warmup-cosine.yaml").read_text()))
    schedule, epochs, peak = spec.train.schedule, spec.train.epochs, spec.train.optimizer.initial_lr
    rates = [peak * epoch_factor(schedule, i, epochs, peak) for i in range(epochs)]
    warm = schedule.warmup_epochs
    assert rates.index(max(rates)) == warm and rates[warm] == peak
    assert rates[-1] == pytest.approx(schedule.min_lr)


def test_training_after_a_range_test_is_the_same_as_without() -> None:
    runs = []
    for lr_test in (None, {"steps": 20}):
        torch.manual_seed(0)
        model = build_model(ModelSpec(hidden=[16], dropout=0.3), 4, 2)
        spec = TrainSpec(epochs=3, batch_size=32, lr_range_test=lr_test)
        reporter = RecordingReporter()
        run_lr_range_test(model, blobs(), spec, "classification", torch.Generator().manual_seed(1), reporter)
        fit(model, blobs(), spec, "classification", reporter, torch.Generator().manual_seed(0))
        runs.append(reporter.rows)
        assert ("lr_range_test.png" in reporter.artifacts) == (lr_test is not None)
    assert runs[0] == runs[1]

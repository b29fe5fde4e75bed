"""Optimizers of the course, their spec, and the training controls around them (divergence,
mixed precision)."""

from __future__ import annotations

from typing import Any, get_args

import pytest
import torch
from pydantic import ValidationError

from ml.errors import TrainingDiverged
from ml.models import build_model
from ml.reporter import RecordingReporter, Reporter
from ml.spec import ModelSpec, OptimizerSpec, TrainSpec, parse_spec
from ml.spec.training import OPTIMIZER_DEFAULTS, OptimizerName
from ml.training.loop import Tensors, fit
from ml.training.optimizers import OPTIMIZERS, build_optimizer

# A rate at which each optimizer visibly learns in a few epochs.
WORKING_LR = {
    "sgd": 0.1,
    "momentum": 0.05,
    "nesterov": 0.05,
    "adagrad": 0.05,
    "adadelta": 1.0,
    "rmsprop": 0.005,
    "adam": 0.01,
    "adamw": 0.01,
}


def blobs(n: int = 256, seed: int = 0) -> Tensors:
    """Two Gaussian blobs in 4-D, 3/4 for training and 1/4 for validation."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=gen)
    X = torch.randn(n, 4, generator=gen) + 1.5 * y[:, None].float()
    cut = 3 * n // 4
    return Tensors(X[:cut], y[:cut], X[cut:], y[cut:])


def train(optimizer: dict[str, Any], epochs: int = 6, **train: Any) -> tuple[RecordingReporter, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model(ModelSpec(hidden=[16]), 4, 2)
    reporter = RecordingReporter()
    spec = TrainSpec(epochs=epochs, batch_size=32, optimizer=optimizer, **train)
    fit(model, blobs(), spec, "classification", reporter, torch.Generator().manual_seed(0))
    return reporter, model


@pytest.mark.parametrize("name", list(WORKING_LR))
def test_every_optimizer_lowers_the_loss(name: str) -> None:
    reporter, _ = train({"name": name, "lr": WORKING_LR[name]})
    loss = reporter.series("train", "loss")
    assert loss[-1] < 0.8 * loss[0]
    assert reporter.series("train", "lr") == [WORKING_LR[name]] * 6


def test_adding_an_optimizer_is_one_entry_on_each_side() -> None:
    assert set(OPTIMIZERS) == set(OPTIMIZER_DEFAULTS) == set(get_args(OptimizerName))


def test_hyperparameters_reach_torch() -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    nesterov = build_optimizer(params, OptimizerSpec(name="nesterov", lr=0.1, momentum=0.8))
    assert isinstance(nesterov, torch.optim.SGD)
    assert nesterov.defaults["nesterov"] and nesterov.defaults["momentum"] == 0.8
    rmsprop = build_optimizer(params, OptimizerSpec(name="rmsprop", alpha=0.9, momentum=0.5, centered=True))
    assert (rmsprop.defaults["alpha"], rmsprop.defaults["momentum"], rmsprop.defaults["centered"]) == (0.9, 0.5, True)
    adam = build_optimizer(params, OptimizerSpec(name="adam", betas=(0.8, 0.99), eps=1e-6))
    assert adam.defaults["betas"] == (0.8, 0.99) and adam.defaults["eps"] == 1e-6
    # What a name implies when the spec leaves it out.
    assert build_optimizer(params, OptimizerSpec(name="momentum")).defaults["momentum"] == 0.9
    assert build_optimizer(params, OptimizerSpec(name="adadelta")).defaults["lr"] == 1.0
    assert build_optimizer(params, OptimizerSpec(name="adamw")).defaults["weight_decay"] == 0.01
    assert build_optimizer(params, OptimizerSpec(name="adadelta", rho=0.8)).defaults["rho"] == 0.8


def test_old_specs_keep_their_meaning() -> None:
    default = TrainSpec().optimizer
    assert (default.name, default.initial_lr, default.params()["weight_decay"]) == ("adam", 1e-3, 0.0)
    assert OptimizerSpec(name="adam", lr=0.001).params()["lr"] == 0.001
    assert OptimizerSpec(name="sgd", momentum=0.9).params() == {"lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0}
    # A dumped spec stays valid when only the name changes (searches over optimizers do that).
    dumped = OptimizerSpec(name="adam", lr=0.01).model_dump()
    assert OptimizerSpec(**{**dumped, "name": "sgd"}).params()["lr"] == 0.01


def test_unknown_optimizer_lists_the_allowed_names() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_spec({"name": "x", "data": {"source": "builtin/iris"}, "train": {"optimizer": {"name": "lbfgs"}}})
    error = caught.value.errors()[0]
    assert error["loc"][-3:] == ("train", "optimizer", "name")
    for name in OPTIMIZER_DEFAULTS:
        assert repr(name) in error["msg"]


def test_a_hyperparameter_of_another_optimizer_is_refused() -> None:
    with pytest.raises(ValidationError, match="optimizer 'adam' takes no 'momentum'.*applies to: sgd, momentum"):
        OptimizerSpec(name="adam", momentum=0.9)
    with pytest.raises(ValidationError, match="takes no 'betas'"):
        OptimizerSpec(name="sgd", betas=(0.9, 0.99))
    with pytest.raises(ValidationError, match="nesterov needs a momentum"):
        OptimizerSpec(name="nesterov", momentum=0.0)


def test_divergence_names_epoch_loss_and_learning_rate() -> None:
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(128, 4, generator=gen) * 50
    y = X.sum(1) * 100
    torch.manual_seed(0)
    model = build_model(ModelSpec(hidden=[16]), 4, 1)
    spec = TrainSpec(epochs=20, batch_size=32, optimizer={"name": "sgd", "lr": 10.0})
    with pytest.raises(TrainingDiverged) as caught:
        fit(model, Tensors(X[:96], y[:96], X[96:], y[96:]), spec, "regression", Reporter(), gen)
    message = str(caught.value)
    assert message.startswith("diverged at epoch ")
    assert "loss is nan" in message or "loss is inf" in message or "loss exploded to" in message
    assert "learning rate 10 " in message


def test_mixed_precision_on_cpu_is_ignored_with_a_note() -> None:
    reporter, _ = train({"name": "adam", "lr": 0.01}, epochs=2, mixed_precision=True)
    plain, _ = train({"name": "adam", "lr": 0.01}, epochs=2)
    assert any("mixed_precision ignored on cpu" in m for m in reporter.messages)
    assert reporter.rows == plain.rows


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_training_metric_is_the_same_with_an_identity_batch_transform(task: str) -> None:
    # The loop scores batches in two ways (an epoch buffer, or batch by batch under a batch
    # transform); both must report the same numbers.
    data = blobs()
    if task == "regression":
        data = Tensors(data.X_train, data.X_train.sum(1), data.X_val, data.X_val.sum(1))
    runs = []
    for transform in (None, lambda x, y, g: (x, y)):
        torch.manual_seed(0)
        model = build_model(ModelSpec(hidden=[16]), 4, 2 if task == "classification" else 1)
        reporter = RecordingReporter()
        spec = TrainSpec(epochs=3, batch_size=50, optimizer={"name": "adam", "lr": 0.01})
        fit(model, data, spec, task, reporter, torch.Generator().manual_seed(0), batch_transform=transform)
        runs.append(reporter.rows)
    keys = [[(r["step"], r["split"], r["name"]) for r in run] for run in runs]
    assert keys[0] == keys[1]
    values = [[float(r["value"]) for r in run] for run in runs]
    assert values[0] == pytest.approx(values[1], rel=1e-5)

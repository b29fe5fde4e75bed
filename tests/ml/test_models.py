"""The model registry: MLP (with batch norm and dropout), the linear baseline, the small CNN."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from pydantic import ValidationError
from torch import nn

from ml.models import MODELS, build_model
from ml.reporter import RecordingReporter
from ml.run import run_experiment
from ml.spec import ModelSpec, TrainSpec, parse_spec
from ml.training.loop import Tensors, fit


def layer_types(model: nn.Module) -> list[type]:
    return [type(m) for m in model.modules() if not isinstance(m, nn.Sequential)]


def test_every_model_type_is_registered() -> None:
    assert set(MODELS) == {"mlp", "linear", "cnn", "resnet", "cnn1d"}


def test_mlp_layers_follow_the_spec() -> None:
    model = build_model(ModelSpec(hidden=[16, 8], activation="tanh", batch_norm=True, dropout=0.1), 5, 3)
    assert layer_types(model) == [nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.Dropout] * 2 + [nn.Linear]
    assert model(torch.randn(4, 5)).shape == (4, 3)
    assert layer_types(build_model(ModelSpec(type="linear"), 5, 1)) == [nn.Linear]


def test_batch_norm_mlp_trains_when_the_last_batch_has_one_row() -> None:
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(81, 3, generator=gen), torch.randint(0, 2, (81,), generator=gen)
    model = build_model(ModelSpec(hidden=[8], batch_norm=True), 3, 2)
    reporter = RecordingReporter()
    spec = TrainSpec(epochs=2, batch_size=16)  # 65 training rows: 4 batches of 16 and one of 1
    fit(model, Tensors(X[:65], y[:65], X[65:], y[65:]), spec, "classification", reporter, gen)
    assert len(reporter.series("train", "loss")) == 2


def test_cnn_takes_flat_rows_of_any_image_shape() -> None:
    model = build_model(ModelSpec(type="cnn", channels=[4, 8], kernel_size=3, hidden=[16]), 3 * 5 * 7, 4, (3, 5, 7))
    assert model(torch.randn(2, 105)).shape == (2, 4)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8] and convs[0].in_channels == 3
    # Images too small to pool again keep their size; 2-D shapes mean one channel.
    tiny = build_model(ModelSpec(type="cnn", channels=[2, 2, 2], pooling="avg", batch_norm=True), 4, 2, (2, 2))
    assert tiny(torch.randn(3, 4)).shape == (3, 2)


def test_cnn_without_image_data_says_what_it_needs() -> None:
    with pytest.raises(ValueError, match=r"the cnn model needs image data \(e.g. builtin/digits"):
        build_model(ModelSpec(type="cnn"), 30, 2, image_shape=None)
    with pytest.raises(ValueError, match="not an image of shape"):
        build_model(ModelSpec(type="cnn"), 30, 2, image_shape=(1, 8, 8))


def test_cnn_dropout_is_off_at_evaluation() -> None:
    model = build_model(ModelSpec(type="cnn", hidden=[32], dropout=0.5), 64, 10, (1, 8, 8))
    x = torch.randn(8, 64)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_cnn_learns_digits_in_a_few_epochs() -> None:
    spec = {
        "name": "cnn",
        "seed": 0,
        "data": {"source": "builtin/digits"},
        "model": {"type": "cnn", "channels": [8, 16], "hidden": [32]},
        "train": {"epochs": 3, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.003}},
    }
    reporter = RecordingReporter()
    summary = run_experiment(spec, reporter)
    assert summary["test"]["accuracy"] > 0.85
    loss = reporter.series("train", "loss")
    assert loss[-1] < 0.5 * loss[0]


def test_cnn_digits_example_is_a_valid_cnn_spec() -> None:
    spec = parse_spec(yaml.safe_load((Path(__file__).resolve().parents[2] / "examples/cnn-digits.yaml").read_text()))
    assert spec.model.type == "cnn" and spec.data.source == "builtin/digits"
    assert build_model(spec.model, 64, 10, (1, 8, 8))(torch.randn(2, 64)).shape == (2, 10)


def test_cnn_fields_are_refused_on_other_models() -> None:
    with pytest.raises(ValidationError, match="channels applies to types 'cnn' and 'cnn1d' only"):
        ModelSpec(type="mlp", channels=[8])
    with pytest.raises(ValidationError, match="kernel_size must be odd"):
        ModelSpec(type="cnn", kernel_size=4)
    with pytest.raises(ValidationError, match="type"):
        ModelSpec(type="transformer")
    with pytest.raises(ValidationError, match="width applies to type 'resnet' only"):
        ModelSpec(type="cnn", width=8)
    assert ModelSpec(type="cnn").conv_channels == [16, 32]

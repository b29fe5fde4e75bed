"""Regularization: penalties (L1, L2, elastic net), max-norm, input dropout, gradient clipping."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from ml.models import build_model
from ml.reporter import RecordingReporter
from ml.spec import ModelSpec, TrainSpec
from ml.spec.training import RegularizationSpec
from ml.training.loop import Tensors, fit
from ml.training.regularization import Regularizer, weight_tensors


def two_relevant_of_twenty(n: int = 400) -> Tensors:
    """20 features of which only the first two decide the class."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(n, 20, generator=gen)
    y = (X[:, 0] + X[:, 1] > 0).long()
    cut = 3 * n // 4
    return Tensors(X[:cut], y[:cut], X[cut:], y[cut:])


def train(
    model_spec: ModelSpec, regularization: dict[str, Any], lr: float = 0.01, epochs: int = 30
) -> tuple[nn.Module, RecordingReporter]:
    torch.manual_seed(0)
    model = build_model(model_spec, 20, 2)
    reporter = RecordingReporter()
    spec = TrainSpec(epochs=epochs, batch_size=32, optimizer={"name": "adam", "lr": lr}, regularization=regularization)
    fit(model, two_relevant_of_twenty(), spec, "classification", reporter, torch.Generator().manual_seed(0))
    return model, reporter


def test_l1_zeroes_more_weights_than_none() -> None:
    def near_zero(model: nn.Module) -> float:
        return float((model[0].weight.abs() < 1e-2).float().mean())

    plain, _ = train(ModelSpec(type="linear"), {})
    lasso, reporter = train(ModelSpec(type="linear"), {"l1": 0.01})
    elastic, _ = train(ModelSpec(type="linear"), {"elastic_net": {"alpha": 0.02, "l1_ratio": 0.9}})
    assert near_zero(lasso) > near_zero(plain) + 0.3
    assert near_zero(elastic) > near_zero(plain) + 0.3
    # The penalty is reported apart; the training loss is the data loss alone.
    penalty = reporter.series("train", "penalty")
    assert len(penalty) == 30 and penalty[-1] > 0


def test_l2_shrinks_the_weights() -> None:
    plain, _ = train(ModelSpec(type="linear"), {})
    ridge, _ = train(ModelSpec(type="linear"), {"l2": 0.05})
    assert ridge[0].weight.norm() < 0.7 * plain[0].weight.norm()


def test_penalties_skip_biases_and_batch_norm_unless_asked() -> None:
    model = build_model(ModelSpec(hidden=[8], batch_norm=True), 20, 2)
    assert all(p.dim() == 2 for p in weight_tensors(model))
    assert len(weight_tensors(model)) == 2 and len(weight_tensors(model, include_bias=True)) == 5
    spec = RegularizationSpec(l1=1.0, include_bias=True)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    expected = 0.5 * sum(p.numel() for p in model.parameters())
    assert Regularizer(model, spec).penalty().item() == pytest.approx(expected)
    assert RegularizationSpec(l2=0.1, elastic_net={"alpha": 1.0, "l1_ratio": 0.25}).penalty_coefficients == (
        0.25,
        pytest.approx(0.1 + 0.375),
    )


@pytest.mark.parametrize("per", ["neuron", "layer"])
def test_max_norm_bounds_the_norms(per: str) -> None:
    def norms(model: nn.Module) -> list[torch.Tensor]:
        weights = [w.detach() for w in weight_tensors(model)]
        return [w.norm(dim=1) if per == "neuron" else w.norm().reshape(1) for w in weights]

    limit = 0.5
    plain, _ = train(ModelSpec(hidden=[32]), {}, lr=0.05, epochs=10)
    assert max(float(n.max()) for n in norms(plain)) > 2 * limit  # the bound has work to do
    bounded, _ = train(ModelSpec(hidden=[32]), {"max_norm": {"value": limit, "per": per}}, lr=0.05, epochs=10)
    assert max(float(n.max()) for n in norms(bounded)) <= limit + 1e-5
    assert max(float(n.max()) for n in norms(bounded)) > 0.9 * limit  # bounded, not collapsed
    assert RegularizationSpec(max_norm=3.0).max_norm.value == 3.0  # a number is the shorthand


def test_max_norm_per_neuron_bounds_each_conv_filter() -> None:
    model = build_model(ModelSpec(type="cnn", channels=[4], hidden=[]), 16, 2, image_shape=(1, 4, 4))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(100)
    Regularizer(model, RegularizationSpec(max_norm=1.0)).constrain()
    conv = model[1].weight.detach()
    assert float(conv.flatten(1).norm(dim=1).max()) <= 1.0 + 1e-5


def test_input_dropout_hides_inputs_in_training_only() -> None:
    seen: dict[bool, list[float]] = {True: [], False: []}
    torch.manual_seed(0)
    model = build_model(ModelSpec(hidden=[8]), 20, 2)
    model.register_forward_pre_hook(
        lambda module, args: seen[module.training].append(float((args[0] == 0).float().mean()))
    )
    spec = TrainSpec(epochs=3, batch_size=50, regularization={"input_dropout": 0.3})
    fit(model, two_relevant_of_twenty(), spec, "classification", RecordingReporter(), torch.Generator())
    assert seen[True] and seen[False]
    assert 0.2 < sum(seen[True]) / len(seen[True]) < 0.4  # training batches: about 30% hidden
    assert max(seen[False]) == 0.0  # the validation pass sees every input


def test_clip_grad_norm_bounds_the_gradient() -> None:
    model = build_model(ModelSpec(hidden=[8]), 20, 2)
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    Regularizer(model, RegularizationSpec(clip_grad_norm=1.0)).clip_gradients()
    total = torch.stack([p.grad.norm() for p in model.parameters()]).norm()
    assert float(total) == pytest.approx(1.0, rel=1e-4)
    _, reporter = train(ModelSpec(hidden=[8]), {"clip_grad_norm": 0.5}, epochs=3)
    assert reporter.series("train", "loss")[-1] < reporter.series("train", "loss")[0]


def test_regularization_spec_validation() -> None:
    with pytest.raises(ValidationError):
        RegularizationSpec(input_dropout=1.0)
    with pytest.raises(ValidationError):
        RegularizationSpec(max_norm={"value": 1.0, "per": "row"})
    with pytest.raises(ValidationError, match="extra"):
        RegularizationSpec(dropout=0.5)

"""Models by name. A builder takes the model spec and the input/output sizes."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ml.spec import ModelSpec

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}


def _mlp(spec: ModelSpec, n_inputs: int, n_outputs: int, image_shape: tuple[int, ...] | None) -> nn.Module:
    layers: list[nn.Module] = []
    width = n_inputs
    for hidden in spec.hidden:
        layers += [nn.Linear(width, hidden), ACTIVATIONS[spec.activation]()]
        if spec.dropout > 0:
            layers.append(nn.Dropout(spec.dropout))
        width = hidden
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def _linear(spec: ModelSpec, n_inputs: int, n_outputs: int, image_shape: tuple[int, ...] | None) -> nn.Module:
    return nn.Sequential(nn.Linear(n_inputs, n_outputs))


MODELS: dict[str, Callable[[ModelSpec, int, int, tuple[int, ...] | None], nn.Module]] = {
    "mlp": _mlp,
    "linear": _linear,
}


def build_model(
    spec: ModelSpec, n_inputs: int, n_outputs: int, image_shape: tuple[int, ...] | None = None
) -> nn.Module:
    """Build the model a spec names.

    Args:
        spec: the model block.
        n_inputs: number of input features after preprocessing.
        n_outputs: number of classes (classification) or 1 (regression).
        image_shape: (channels, height, width) when each row is a flattened image.
    """
    return MODELS[spec.type](spec, n_inputs, n_outputs, image_shape)

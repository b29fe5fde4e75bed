"""Models by name. A builder takes the model spec, the input/output sizes and the image shape."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import nn

from ml.spec import ModelSpec
from ml.spec.model import CNN1D_POOL

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}
POOL_1D = CNN1D_POOL  # cnn1d pools by 4 after each block (the spec bounds its activations with it)
POOLING: dict[str, Callable[[], nn.Module] | None] = {
    "max": lambda: nn.MaxPool2d(2),
    "avg": lambda: nn.AvgPool2d(2),
    "none": None,
}


def _dense_layers(spec: ModelSpec, width: int) -> tuple[list[nn.Module], int]:
    """Hidden dense layers: linear, [batch norm], activation, [dropout]. Returns them and the last width."""
    layers: list[nn.Module] = []
    for hidden in spec.hidden:
        # A bias right before batch norm is cancelled by its mean subtraction.
        layers.append(nn.Linear(width, hidden, bias=not spec.batch_norm))
        if spec.batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(ACTIVATIONS[spec.activation]())
        if spec.dropout > 0:
            layers.append(nn.Dropout(spec.dropout))
        width = hidden
    return layers, width


def _mlp(spec: ModelSpec, n_inputs: int, n_outputs: int, image_shape: tuple[int, ...] | None) -> nn.Module:
    layers, width = _dense_layers(spec, n_inputs)
    return nn.Sequential(*layers, nn.Linear(width, n_outputs))


def _linear(spec: ModelSpec, n_inputs: int, n_outputs: int, image_shape: tuple[int, ...] | None) -> nn.Module:
    return nn.Sequential(nn.Linear(n_inputs, n_outputs))


def _image_dims(n_inputs: int, image_shape: tuple[int, ...] | None, who: str = "cnn") -> tuple[int, int, int]:
    if image_shape is None:
        raise ValueError(
            "the cnn model needs image data (e.g. builtin/digits, or an uploaded C x H x W image "
            "array) whose pixel columns all survive preprocessing; use type mlp for tabular data"
        )
    dims = (1, *image_shape) if len(image_shape) == 2 else tuple(image_shape)
    if len(dims) != 3 or math.prod(dims) != n_inputs:
        raise ValueError(f"the {who} model got {n_inputs} input columns, which is not an image of shape {image_shape}")
    return dims[0], dims[1], dims[2]


def _cnn(spec: ModelSpec, n_inputs: int, n_outputs: int, image_shape: tuple[int, ...] | None) -> nn.Module:
    channels, height, width = _image_dims(n_inputs, image_shape)
    kernel, pooling = spec.conv_kernel_size, POOLING[spec.conv_pooling]
    # Rows arrive flattened (the loop batches plain feature matrices): restore C x H x W first.
    layers: list[nn.Module] = [nn.Unflatten(1, (channels, height, width))]
    for filters in spec.conv_channels:
        layers.append(nn.Conv2d(channels, filters, kernel, padding=kernel // 2, bias=not spec.batch_norm))
        if spec.batch_norm:
            layers.append(nn.BatchNorm2d(filters))
        layers.append(ACTIVATIONS[spec.activation]())
        if pooling is not None and min(height, width) >= 2:  # small images stop shrinking at 1 x 1
            layers.append(pooling())
            height, width = height // 2, width // 2
        channels = filters
    head, head_width = _dense_layers(spec, channels * height * width)
    return nn.Sequential(*layers, nn.Flatten(), *head, nn.Linear(head_width, n_outputs))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut (a 1x1 projection when the shape changes)."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True),
            nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False), nn.BatchNorm2d(outputs)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Any) -> Any:
        return self.relu(self.body(x) + self.shortcut(x))


RESNET_STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}

POOLING_1D: dict[str, Callable[[], nn.Module] | None] = {
    "max": lambda: nn.MaxPool1d(POOL_1D),
    "avg": lambda: nn.AvgPool1d(POOL_1D),
    "none": None,
}


def _resnet(spec: ModelSpec, n_inputs: int, n_outputs: int, image_shape: tuple[int, ...] | None) -> nn.Module:
    channels, height, width = _image_dims(n_inputs, image_shape)
    base = spec.width or 32
    layers: list[nn.Module] = [
        nn.Unflatten(1, (channels, height, width)),
        nn.Conv2d(channels, base, 3, padding=1, bias=False),
        nn.BatchNorm2d(base),
        nn.ReLU(inplace=True),
    ]
    inputs = base
    for stage, blocks in enumerate(RESNET_STAGES[spec.depth or 18]):
        outputs = base * 2**stage
        for block in range(blocks):
            # Down-sample at the start of stages 2-4 while the feature map is still larger than 1 pixel.
            stride = 2 if stage > 0 and block == 0 and min(height, width) > 1 else 1
            layers.append(BasicBlock(inputs, outputs, stride))
            if stride == 2:
                height, width = (height + 1) // 2, (width + 1) // 2
            inputs = outputs
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if spec.dropout > 0:
        layers.append(nn.Dropout(spec.dropout))
    layers.append(nn.Linear(inputs, n_outputs))
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def _cnn1d(spec: ModelSpec, n_inputs: int, n_outputs: int, image_shape: tuple[int, ...] | None) -> nn.Module:
    """A 1D CNN along the last axis of C x H x W rows (a waveform is 1 x 1 x samples), M5-like.

    The first block is the strided front end (a learned filter bank over `front_kernel` samples);
    each later block is a `kernel_size` convolution. Every block: conv, [batch norm], activation,
    pooling by 4 while the sequence is at least 4 long, [dropout]. Then global average pooling
    over time (any length) and the dense head."""
    if image_shape is None:
        raise ValueError(
            "the cnn1d model needs sequence data: an audio folder data set with data.audio.features: waveform "
            "(or spectrograms, whose bands become channels) whose columns all survive preprocessing"
        )
    channels, height, length = _image_dims(n_inputs, image_shape, "cnn1d")
    inputs = channels * height  # rows of the C x H x W image are the input channels
    pooling = POOLING_1D[spec.conv_pooling]
    stride = min(spec.conv_front_stride, length)
    front = min(spec.conv_front_kernel, length)
    layers: list[nn.Module] = [nn.Unflatten(1, (inputs, length))]
    for i, filters in enumerate(spec.conv_channels):
        if i == 0:
            conv = nn.Conv1d(inputs, filters, front, stride=stride, padding=front // 2, bias=not spec.batch_norm)
            length = (length + 2 * (front // 2) - front) // stride + 1
        else:
            kernel = spec.conv_kernel_size
            conv = nn.Conv1d(inputs, filters, kernel, padding=kernel // 2, bias=not spec.batch_norm)
        layers.append(conv)
        if spec.batch_norm:
            layers.append(nn.BatchNorm1d(filters))
        layers.append(ACTIVATIONS[spec.activation]())
        if pooling is not None and length >= POOL_1D:
            layers.append(pooling())
            length //= POOL_1D
        if spec.dropout > 0:
            layers.append(nn.Dropout(spec.dropout))
        inputs = filters
    layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten()]
    head, head_width = _dense_layers(spec, inputs)
    return nn.Sequential(*layers, *head, nn.Linear(head_width, n_outputs))


MODELS: dict[str, Callable[[ModelSpec, int, int, tuple[int, ...] | None], nn.Module]] = {
    "mlp": _mlp,
    "linear": _linear,
    "cnn": _cnn,
    "resnet": _resnet,
    "cnn1d": _cnn1d,
}


def build_model(
    spec: ModelSpec, n_inputs: int, n_outputs: int, image_shape: tuple[int, ...] | None = None
) -> nn.Module:
    """Build the model a spec names.

    Args:
        spec: the model block.
        n_inputs: number of input features after preprocessing.
        n_outputs: number of classes (classification) or 1 (regression).
        image_shape: (channels, height, width) when each row is a flattened image (a waveform:
            1 x 1 x samples).

    Returns:
        The untrained network (on the CPU); it takes rows of `n_inputs` features.

    Raises:
        ValueError: a cnn/resnet/cnn1d without image-shaped data, or with columns that do not form it.
    """
    return MODELS[spec.type](spec, n_inputs, n_outputs, image_shape)

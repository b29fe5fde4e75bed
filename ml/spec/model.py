"""The network to train."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ml.spec.base import MAX_LAYERS, MAX_WIDTH, StrictModel

Activation = Literal["relu", "tanh", "sigmoid", "gelu", "leaky_relu", "elu"]
MAX_KERNEL = 15

# Fields that only a convolutional network reads, and their defaults.
CNN_ONLY = ("channels", "kernel_size", "pooling")
CONV_TYPES = ("cnn", "cnn1d")  # the types that read CNN_ONLY
CNN1D_ONLY = ("front_kernel", "front_stride")
RESNET_ONLY = ("depth", "width")
DEFAULT_CHANNELS = (16, 32)
DEFAULT_CHANNELS_1D = (32, 32, 64, 64)
DEFAULT_FRONT_KERNEL = 80
DEFAULT_FRONT_STRIDE = 4
DEFAULT_KERNEL_SIZE = 3
DEFAULT_POOLING = "max"
CNN1D_POOL = 4  # cnn1d pools by 4 after each block (audio is long)


class ModelSpec(StrictModel):
    """A model from the model registry (`ml.models`).

    - ``mlp``: dense layers of widths `hidden`, each followed by [batch norm], the activation
      and [dropout].
    - ``linear``: one dense layer (logistic regression / linear regression baseline).
    - ``cnn``: convolution blocks (conv, [batch norm], activation, pooling) with `channels`
      filters each, then a dense head of widths `hidden` (with dropout). Needs image data: each
      row is a flattened C x H x W image (builtin/digits is 1 x 8 x 8; an audio folder data set
      gives 1 x bands x frames spectrograms).
    - ``resnet``: a ResNet-18 or -34 (`depth`) with basic residual blocks, batch norm and
      `width` filters in its first stage (doubling each stage), randomly initialised (no weight
      downloads), global average pooling, [dropout], a linear head. For small inputs the stem
      is one 3x3 convolution (no down-sampling), as for CIFAR.
    - ``cnn1d``: a 1D CNN for raw audio (``data.audio.features: waveform``): a strided
      convolution front end (`front_kernel` samples, every `front_stride`-th), then blocks of
      convolution (`kernel_size`), [batch norm], activation, pooling by 4 and [dropout] with
      `channels` filters each (the first block is the front end), global average pooling over
      time and a dense head of widths `hidden`. On a C x H x W input it convolves along W with
      C x H input channels (a spectrogram: its bands are the channels).
    """

    type: Literal["mlp", "linear", "cnn", "resnet", "cnn1d"] = Field(
        default="mlp",
        description="mlp, linear (logistic/linear baseline), cnn or resnet (image and spectrogram data), "
        "cnn1d (raw audio waveforms).",
    )
    hidden: list[int] = Field(
        default_factory=lambda: [64],
        max_length=MAX_LAYERS,
        description=f"Widths of the hidden dense layers (each 1..{MAX_WIDTH}); the head of a cnn.",
    )
    activation: Activation = "relu"
    dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout after each hidden dense layer (cnn1d: after each convolution block too).",
    )
    batch_norm: bool = Field(default=False, description="Batch normalization before each activation.")
    channels: list[int] | None = Field(
        default=None,
        min_length=1,
        max_length=8,
        description="cnn, cnn1d: filters of each convolution block (default [16, 32]; cnn1d [32, 32, 64, 64]).",
    )
    kernel_size: int | None = Field(
        default=None, ge=1, le=MAX_KERNEL, description="cnn, cnn1d: odd, default 3 (cnn1d: after the front end)."
    )
    pooling: Literal["max", "avg", "none"] | None = Field(
        default=None, description="cnn: 2x2 pooling after each block; cnn1d: by 4 (default max)."
    )
    front_kernel: int | None = Field(
        default=None, ge=1, le=1024, description="cnn1d only: the front end's kernel, in samples (default 80)."
    )
    front_stride: int | None = Field(
        default=None, ge=1, le=256, description="cnn1d only: the front end's stride, in samples (default 4)."
    )
    depth: Literal[18, 34] | None = Field(default=None, description="resnet only: 18 or 34 layers (default 18).")
    width: int | None = Field(
        default=None, ge=4, le=128, description="resnet only: filters of the first stage (default 32; the paper's 64)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        for width in [*self.hidden, *(self.channels or [])]:
            if not 1 <= width <= MAX_WIDTH:
                raise ValueError(f"layer widths and channels must be between 1 and {MAX_WIDTH}, got {width}")
        if self.type not in CONV_TYPES:
            for name in CNN_ONLY:
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} applies to types 'cnn' and 'cnn1d' only, not {self.type!r}")
        if self.type != "cnn1d":
            for name in CNN1D_ONLY:
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} applies to type 'cnn1d' only, not {self.type!r}")
        if self.type != "resnet":
            for name in RESNET_ONLY:
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} applies to type 'resnet' only, not {self.type!r}")
        if self.kernel_size is not None and self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (keeps the image size), got {self.kernel_size}")
        return self

    # The cnn-only settings with their defaults filled in.
    @property
    def conv_channels(self) -> list[int]:
        """Filters of each convolution block."""
        if self.channels is not None:
            return self.channels
        return list(DEFAULT_CHANNELS_1D if self.type == "cnn1d" else DEFAULT_CHANNELS)

    @property
    def conv_kernel_size(self) -> int:
        """Side of the square convolution kernels."""
        return self.kernel_size if self.kernel_size is not None else DEFAULT_KERNEL_SIZE

    @property
    def conv_pooling(self) -> str:
        """Pooling after each block: max, avg or none."""
        return self.pooling if self.pooling is not None else DEFAULT_POOLING

    @property
    def conv_front_kernel(self) -> int:
        """cnn1d: the front end's kernel, in samples."""
        return self.front_kernel if self.front_kernel is not None else DEFAULT_FRONT_KERNEL

    @property
    def conv_front_stride(self) -> int:
        """cnn1d: the front end's stride, in samples."""
        return self.front_stride if self.front_stride is not None else DEFAULT_FRONT_STRIDE

    def cnn1d_blocks(self, length: int, inputs: int = 1) -> list[tuple[int, int, int]]:
        """cnn1d over sequences of `length` samples in `inputs` channels, block by block as
        `ml.models` builds it: (filters, the length of the block's output before its pooling, the
        weights of its convolution)."""
        stride, front = min(self.conv_front_stride, length), min(self.conv_front_kernel, length)
        blocks = []
        for i, filters in enumerate(self.conv_channels):
            if i == 0:  # the strided front end
                kernel, length = front, (length + 2 * (front // 2) - front) // stride + 1
            else:  # odd kernels, padded: the length stays
                kernel = self.conv_kernel_size
            blocks.append((filters, length, inputs * filters * kernel))
            if self.conv_pooling != "none" and length >= CNN1D_POOL:
                length //= CNN1D_POOL
            inputs = filters
        return blocks

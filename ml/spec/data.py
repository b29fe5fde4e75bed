"""Where the data comes from, how it is split, and how it is prepared."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from ml.spec.base import StrictModel, Task

BUILTIN_SOURCES = (
    "builtin/digits",
    "builtin/breast_cancer",
    "builtin/iris",
    "builtin/wine",
    "builtin/diabetes",
    "synthetic/moons",
    "synthetic/circles",
    "synthetic/spirals",
    "synthetic/imbalanced",
    "synthetic/regression",
    "synthetic/two_clouds",
    "synthetic/ring",
    "synthetic/noisy_features",
)
# A source is one of BUILTIN_SOURCES or "dataset/<id>" (an upload; ids are 32-bit).
SOURCE_PATTERN = r"^(builtin/[a-z_]+|synthetic/[a-z_]+|dataset/[1-9][0-9]{0,9})$"
MAX_DATASET_ID = 2**31 - 1
# Generated tables are bounded before they are made: rows x columns (float64) of at most ~160 MB.
MAX_GENERATED_CELLS = 20_000_000
MAX_GENERATED_COLUMNS = 10_000
# Options are a few scalars (generator keyword arguments), never nested data.
OptionValue = bool | int | float | Annotated[str, StringConstraints(max_length=100)] | None
OptionName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,63}$")]


class SplitSpec(StrictModel):
    """Train/validation/test fractions. The test part is sealed until the final evaluation."""

    test: float = Field(default=0.2, gt=0.0, lt=0.9, description="Fraction held out for the final test.")
    validation: float = Field(default=0.2, ge=0.0, lt=0.9, description="Fraction of the rest used for validation.")
    stratify: bool = Field(default=True, description="Keep class proportions in every part.")
    folds: int | None = Field(
        default=None,
        ge=2,
        le=20,
        description="K-fold cross-validation: the non-test rows are cut into K folds, each fold a child "
        "experiment validated on its fold; the test split stays sealed and is evaluated once at the end.",
    )
    fold: int | None = Field(
        default=None, ge=0, lt=20, description="Set by the server on a k-fold child: which fold validates."
    )

    def model_post_init(self, __context: object) -> None:
        if self.fold is not None and (self.folds is None or self.fold >= self.folds):
            raise ValueError("split.fold needs split.folds and must be smaller than it")


class SampleSpec(StrictModel):
    """Set by the server on an ensemble member: which sample of the training rows it trains on."""

    method: Literal["bootstrap", "disjoint"]
    index: int = Field(ge=0, lt=50, description="This member's number.")
    of: int = Field(ge=2, le=50, description="How many members share the training rows.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    def model_post_init(self, __context: object) -> None:
        if self.index >= self.of:
            raise ValueError("sample.index must be smaller than sample.of")


MAX_FEATURE_CELLS = 1_000_000  # values per sample after decoding (spectrogram, waveform or image)
SPECTRUM_OPTIONS = ("n_mels", "n_fft", "hop_length", "n_mfcc")  # what a waveform does not read


class AudioSpec(StrictModel):
    """How the clips of an audio folder data set become model inputs: decoded to mono at
    `sample_rate`, cut (or zero-padded) to `clip_seconds`, then a log-mel spectrogram (in dB) or
    its MFCCs (each sample a 1 x bands x frames image for a cnn or resnet), or the raw
    `waveform` normalised per clip to zero mean and unit RMS (a 1 x 1 x samples row for a
    cnn1d)."""

    sample_rate: int = Field(default=22050, ge=1000, le=96000, description="Clips are resampled to this rate.")
    clip_seconds: float | None = Field(
        default=None, gt=0.0, le=120.0, description="Length of each sample (default: the shortest clip, at most 30 s)."
    )
    crop: Literal["center", "start"] = Field(default="center", description="Which part of a longer clip is kept.")
    features: Literal["log_mel", "mfcc", "waveform"] = Field(
        default="log_mel", description="log_mel or mfcc (for a cnn or resnet), waveform (raw samples, for a cnn1d)."
    )
    n_mels: int = Field(default=64, ge=8, le=256, description="Mel bands.")
    n_fft: int = Field(default=1024, ge=128, le=8192, description="STFT window (samples).")
    hop_length: int = Field(default=512, ge=32, le=8192, description="STFT hop (samples).")
    n_mfcc: int = Field(default=20, ge=2, le=128, description="mfcc: coefficients kept (at most n_mels).")

    @model_validator(mode="after")
    def _bounded(self) -> AudioSpec:
        if self.features == "waveform":
            return self._waveform_bounded()
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) must not exceed n_mels ({self.n_mels})")
        seconds = self.clip_seconds or 30.0
        frames = int(seconds * self.sample_rate) // self.hop_length + 1
        bands = self.n_mfcc if self.features == "mfcc" else self.n_mels
        if frames * bands > MAX_FEATURE_CELLS:
            raise ValueError(
                f"{bands} bands x {frames} frames is more than {MAX_FEATURE_CELLS} values per clip; "
                "raise hop_length or shorten clip_seconds"
            )
        return self

    def _waveform_bounded(self) -> AudioSpec:
        for option in SPECTRUM_OPTIONS:
            # Only a value other than the default counts: a stored spec lists every field.
            if option in self.model_fields_set and getattr(self, option) != type(self).model_fields[option].default:
                raise ValueError(f"{option} applies to features log_mel and mfcc, not waveform (raw samples)")
        samples = int((self.clip_seconds or 30.0) * self.sample_rate)
        if samples > MAX_FEATURE_CELLS:
            raise ValueError(
                f"a waveform of {samples} samples is more than {MAX_FEATURE_CELLS} values per clip; "
                "lower sample_rate or shorten clip_seconds"
            )
        return self


class ImageSpec(StrictModel):
    """How the pictures of an image folder data set become model inputs: decoded, converted to
    RGB or gray, resized to `size` (height, width), scaled to [0, 1]."""

    size: tuple[int, int] = Field(default=(32, 32), description="(height, width) after resizing.")
    color: Literal["rgb", "gray"] = "rgb"

    @model_validator(mode="after")
    def _bounded(self) -> ImageSpec:
        height, width = self.size
        if not (4 <= height <= 1024 and 4 <= width <= 1024):
            raise ValueError(f"image size must be between 4 and 1024 pixels a side, got {self.size}")
        if height * width * (3 if self.color == "rgb" else 1) > MAX_FEATURE_CELLS:
            raise ValueError(f"{height}x{width} {self.color} images are more than {MAX_FEATURE_CELLS} values each")
        return self


class DataSpec(StrictModel):
    """The data set and its split."""

    source: str = Field(
        pattern=SOURCE_PATTERN,
        description="One of " + ", ".join(BUILTIN_SOURCES) + ", or dataset/<id> for an upload.",
    )
    options: dict[OptionName, OptionValue] = Field(
        default_factory=dict,
        max_length=16,
        description="Generator options (scalars), e.g. n_samples, noise, positive_fraction, n_features.",
    )
    target: str | None = Field(default=None, description="Target column of an uploaded CSV.")
    one_hot: bool = Field(default=False, description="One-hot encode the categorical columns of an uploaded CSV.")
    task: Task | None = Field(default=None, description="Inferred from the source when omitted.")
    split: SplitSpec = Field(default_factory=SplitSpec)
    classes: list[int] | None = Field(
        default=None,
        min_length=2,
        max_length=1000,
        description="Classification: keep only the rows of these classes, relabelled 0..k-1 in this order "
        "(e.g. digits [5, 6, 7, 8, 9] become 0..4), before splitting.",
    )
    max_train_samples: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Train on at most this many rows of the training part (a seeded, stratified subset: "
        "few-shot learning). Validation and test rows are unchanged.",
    )
    sample: SampleSpec | None = Field(default=None, description="Set by the server on an ensemble member.")
    audio: AudioSpec | None = Field(
        default=None, description="Audio folder data sets: decoding and features (defaults when omitted)."
    )
    image: ImageSpec | None = Field(
        default=None, description="Image folder data sets: decoding and resizing (defaults when omitted)."
    )
    stream: bool | Literal["auto"] = Field(
        default="auto",
        description="Folder data sets: decode into shards and train shard by shard (true), in memory (false), or "
        "stream when a run in memory would exceed the worker's data memory budget (auto).",
    )

    @model_validator(mode="after")
    def _known_source(self) -> DataSpec:
        if not self.source.startswith("dataset/") and self.source not in BUILTIN_SOURCES:
            raise ValueError(
                f"unknown data source {self.source!r}; allowed: " + ", ".join(BUILTIN_SOURCES) + ", dataset/<id>"
            )
        if self.source.startswith("dataset/") and int(self.source.split("/", 1)[1]) > MAX_DATASET_ID:
            raise ValueError(f"{self.source}: no data set has an id that large")
        n = self.options.get("n_samples")
        if n is not None and (not isinstance(n, int) or not 10 <= n <= 1_000_000):
            raise ValueError("options.n_samples must be an integer between 10 and 1000000")
        self._check_generated_size()
        if self.classes is not None and (len(set(self.classes)) != len(self.classes) or min(self.classes) < 0):
            raise ValueError("data.classes must be distinct class numbers >= 0")
        return self

    def _check_generated_size(self) -> None:
        """A generator's table is bounded before it is made (generation cannot be interrupted)."""
        widths = {k: v for k, v in self.options.items() if k in ("n_features", "n_informative", "n_noise")}
        for key, value in widths.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_GENERATED_COLUMNS:
                raise ValueError(f"options.{key} must be an integer between 0 and {MAX_GENERATED_COLUMNS}")
        count = {k: int(v or 0) for k, v in widths.items()}
        columns = max(count.get("n_features", 0), count.get("n_informative", 0) + count.get("n_noise", 0))
        rows = self.options.get("n_samples") or 5000  # the largest default row count of a generator
        if isinstance(rows, int) and rows * columns > MAX_GENERATED_CELLS:
            raise ValueError(
                f"options: {rows} rows x {columns} columns is more than {MAX_GENERATED_CELLS} generated values"
            )

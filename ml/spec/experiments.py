"""The experiment kinds. Each is a pydantic model with a `kind` literal; `ExperimentSpec` is
their discriminated union, the contract the API validates and the worker runs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ml.spec.base import MAX_ACTIVATIONS, MAX_DENSE_WEIGHTS, ExperimentHeader
from ml.spec.data import DataSpec
from ml.spec.evaluate import EvaluateSpec
from ml.spec.model import ModelSpec
from ml.spec.preprocess import PreprocessStep
from ml.spec.training import TrainSpec
from ml.spec.transfer import InitSpec
from ml.spec.trial import TrialSpec


class TrainExperimentSpec(ExperimentHeader):
    """Train one model on one split and evaluate it once on the test part."""

    kind: Literal["train"] = "train"
    data: DataSpec
    preprocess: list[PreprocessStep] = Field(
        default_factory=lambda: [PreprocessStep(step="standardize")], max_length=32
    )
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    init: InitSpec | None = Field(
        default=None, description="Transfer learning: start from another experiment's stored weights."
    )
    trial: TrialSpec | None = Field(default=None, description="Set by the server on a search trial.")

    @model_validator(mode="after")
    def _fits_a_worker(self) -> TrainExperimentSpec:
        """The network and a batch of its activations are bounded before a worker allocates them."""
        widths = self.model.hidden if self.model.type != "linear" else []
        weights = sum(a * b for a, b in zip(widths, widths[1:], strict=False))
        if weights > MAX_DENSE_WEIGHTS:
            raise ValueError(
                f"model.hidden: {weights} weights between hidden layers; at most {MAX_DENSE_WEIGHTS} on a shared worker"
            )
        if self.resources is not None and self.resources.cpu_only and self.train.device == "cuda":
            raise ValueError("resources.cpu_only and train.device 'cuda' contradict each other; set one of them")
        activations = self.train.batch_size * sum(widths)
        if activations > MAX_ACTIVATIONS:
            raise ValueError(
                f"train.batch_size x hidden units is {activations}; at most {MAX_ACTIVATIONS} on a shared worker: "
                "use a smaller batch or narrower layers"
            )
        self._waveform_fits()
        return self

    def _waveform_fits(self) -> None:
        """Raw waveforms go to a 1D model, and spectrogram-only augmentation stays off them."""
        if self.data.audio is None or self.data.audio.features != "waveform":
            return
        if self.model.type in ("cnn", "resnet"):
            raise ValueError(
                f"model.type {self.model.type} convolves 2D inputs (images, spectrograms); a raw waveform "
                "(data.audio.features: waveform) needs type cnn1d, or features log_mel or mfcc for a 2D CNN"
            )
        for step in self.preprocess:
            if step.step == "spec_augment" and (step.gain_db or step.noise):  # type: ignore[attr-defined]
                raise ValueError(
                    "spec_augment's gain_db and noise are in dB of a spectrogram; on a raw waveform "
                    "(data.audio.features: waveform) use its shift and time masks only"
                )
        if self.model.type == "cnn1d":
            self._cnn1d_fits()

    def _cnn1d_fits(self) -> None:
        """cnn1d on a raw waveform: its largest block output (a batch of it) and its convolutions'
        weights are bounded, block by block as the model is built (clips of at most 30 s)."""
        assert self.data.audio is not None
        audio, model, batch = self.data.audio, self.model, self.train.batch_size
        samples = max(1, round((audio.clip_seconds or 30.0) * audio.sample_rate))
        blocks = model.cnn1d_blocks(samples)
        block, (filters, length, _) = max(enumerate(blocks), key=lambda b: b[1][0] * b[1][1])
        values = batch * filters * length
        if values > MAX_ACTIVATIONS:
            where = "the front end (block 1)" if block == 0 else f"block {block + 1}"
            pooling = " or model.pooling max or avg (each block pools by 4)" if model.conv_pooling == "none" else ""
            raise ValueError(
                f"the cnn1d's largest activation, the output of {where} of model.channels {model.conv_channels}, "
                f"is {values} values a batch (train.batch_size {batch} x {filters} channels x {length} samples, of "
                f"{samples} a clip); at most {MAX_ACTIVATIONS} on a shared worker: use fewer model.channels{pooling}, "
                "raise model.front_stride, lower data.audio.sample_rate or clip_seconds, or use a smaller batch"
            )
        weights = sum(w for _, _, w in blocks)
        if weights > MAX_DENSE_WEIGHTS:
            raise ValueError(
                f"the cnn1d's convolutions hold {weights} weights (in x out channels x kernel, block by block, of "
                f"model.channels {model.conv_channels}); at most {MAX_DENSE_WEIGHTS} on a shared worker: use fewer "
                "model.channels or a smaller model.kernel_size"
            )

    @model_validator(mode="after")
    def _data_parallel_fits(self) -> TrainExperimentSpec:
        """Data-parallel processes that a worker can start (``train.distributed.processes``): one
        per GPU of ``resources.gpus``, or CPU processes said to be on the CPU, each with an equal
        share of the batch. ``resources.gpus`` alone only routes the run to a worker with that
        many GPUs (what it has meant since spec version 1): one process trains."""
        processes = self.processes()
        if processes < 2:
            return self
        gpus = self.resources.gpus if self.resources is not None else 0
        on_cpu = self.train.device == "cpu" or (self.resources is not None and self.resources.cpu_only)
        if gpus and processes != gpus:
            raise ValueError(
                f"train.distributed.processes {processes} and resources.gpus {gpus} differ: data-parallel training "
                "on GPUs runs one process per GPU; set them equal (or leave processes out to train one process)"
            )
        if gpus and on_cpu:
            raise ValueError(
                f"train.distributed.processes {processes} with resources.gpus {gpus} trains on {gpus} GPUs, one "
                "process each, but train.device is cpu; set train.device auto or cuda, or leave resources.gpus "
                f"out to train {processes} CPU processes"
            )
        if not gpus and not on_cpu:
            raise ValueError(
                f"train.distributed.processes {processes} without resources.gpus trains {processes} CPU processes "
                f"(gloo): say so with train.device: cpu (or resources.cpu_only: true), or ask for resources.gpus: "
                f"{processes} to train on {processes} GPUs"
            )
        if self.train.batch_size % processes:
            fits = max(processes, self.train.batch_size - self.train.batch_size % processes)
            raise ValueError(
                f"train.batch_size {self.train.batch_size} is not a multiple of the {processes} data-parallel "
                f"processes: each takes an equal share of a step's batch; use e.g. {fits}"
            )
        return self

    def processes(self) -> int:
        """How many data-parallel processes train it: ``train.distributed.processes``, else one
        (``resources.gpus`` alone does not ask for data-parallel training)."""
        return self.train.distributed.processes if self.train.distributed is not None else 1

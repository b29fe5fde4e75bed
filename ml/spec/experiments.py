"""The experiment kinds. Each is a pydantic model with a `kind` literal; `ExperimentSpec` is
their discriminated union, the contract the API validates and the worker runs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ml.spec.base import ExperimentHeader
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

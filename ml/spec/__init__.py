"""The experiment spec: the typed contract between the API and the workers.

Pydantic v2 only — importing this package never imports torch, numpy or scikit-learn, so the
API process stays light. `parse_spec` turns a dict into the right experiment kind.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from ml.spec.base import ExperimentHeader, ResourcesSpec, StrictModel
from ml.spec.compare import CompareExperimentSpec, VariantSpec
from ml.spec.data import BUILTIN_SOURCES, AudioSpec, DataSpec, ImageSpec, SampleSpec, SplitSpec
from ml.spec.ensemble import EnsembleExperimentSpec
from ml.spec.evaluate import EvaluateSpec
from ml.spec.experiments import TrainExperimentSpec
from ml.spec.model import ModelSpec
from ml.spec.pinn import PinnExperimentSpec
from ml.spec.preprocess import PreprocessStep
from ml.spec.search import AnalyticExperimentSpec, SearchExperimentSpec
from ml.spec.training import EarlyStoppingSpec, OptimizerSpec, TrainSpec
from ml.spec.transfer import InitSpec
from ml.spec.trial import HypergradientSpec, PrunerSpec, TrialSpec
from ml.spec.versions import SPEC_VERSION, SpecVersionError, upgrade_spec

AnySpec = (
    TrainExperimentSpec
    | PinnExperimentSpec
    | SearchExperimentSpec
    | AnalyticExperimentSpec
    | EnsembleExperimentSpec
    | CompareExperimentSpec
)
ExperimentSpec = Annotated[AnySpec, Field(discriminator="kind")]

_ADAPTER: TypeAdapter[AnySpec] = TypeAdapter(ExperimentSpec)


def parse_spec(data: Any) -> AnySpec:
    """Validate a spec dict (``kind`` defaults to ``train``).

    Older spec versions are upgraded first (`ml.spec.versions`).

    Raises:
        pydantic.ValidationError: with the path and the allowed values of each bad field.
        SpecVersionError: a spec version this code cannot read.
    """
    if isinstance(data, dict):
        data = upgrade_spec(data)
        if "kind" not in data:
            data = {**data, "kind": "train"}
    return _ADAPTER.validate_python(data)


def experiment_kind(spec: Any) -> str:
    """The kind shown to people: the spec's kind, or ``kfold`` for a train spec with folds."""
    if getattr(spec, "kind", None) == "train" and spec.data.split.folds and spec.data.split.fold is None:
        return "kfold"
    return str(spec.kind)


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of every experiment kind, for clients that validate before submitting."""
    return _ADAPTER.json_schema()


__all__ = [
    "CompareExperimentSpec",
    "VariantSpec",
    "BUILTIN_SOURCES",
    "AnalyticExperimentSpec",
    "AudioSpec",
    "DataSpec",
    "ImageSpec",
    "EarlyStoppingSpec",
    "EnsembleExperimentSpec",
    "EvaluateSpec",
    "ExperimentHeader",
    "ExperimentSpec",
    "HypergradientSpec",
    "InitSpec",
    "ModelSpec",
    "OptimizerSpec",
    "PinnExperimentSpec",
    "PreprocessStep",
    "PrunerSpec",
    "ResourcesSpec",
    "SampleSpec",
    "SPEC_VERSION",
    "SearchExperimentSpec",
    "SpecVersionError",
    "SplitSpec",
    "StrictModel",
    "TrainExperimentSpec",
    "TrainSpec",
    "TrialSpec",
    "experiment_kind",
    "parse_spec",
    "spec_json_schema",
]

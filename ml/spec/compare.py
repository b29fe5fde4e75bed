"""The `compare` kind: one base spec, a list of variants, run side by side and ranked."""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ml.spec.base import ExperimentHeader, StrictModel, base_with_defaults
from ml.spec.experiments import TrainExperimentSpec
from ml.spec.search import PATH_PATTERN, set_path

MAX_VARIANTS = 32


class VariantSpec(StrictModel):
    """One variant: a label and the spec fields it changes (dotted paths)."""

    label: str = Field(min_length=1, max_length=100)
    set: dict[str, Any] = Field(
        default_factory=dict, description="Dotted path -> value, e.g. {train.optimizer.name: sgd}."
    )

    @field_validator("set")
    @classmethod
    def _paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        import re

        for path in value:
            if not re.match(PATH_PATTERN, path):
                raise ValueError(f"{path!r} is not a dotted spec path like train.optimizer.lr")
        return value


class CompareExperimentSpec(ExperimentHeader):
    """Run every variant of `base` as a parallel child experiment; overlay and rank them."""

    kind: Literal["compare"] = "compare"
    base: TrainExperimentSpec
    variants: list[VariantSpec] = Field(min_length=2, max_length=MAX_VARIANTS)
    rank_by: Literal["validation.loss", "validation.accuracy", "validation.rmse", "train.loss"] = Field(
        default="validation.loss", description="The final per-epoch value the variants are ranked by."
    )

    @field_validator("base", mode="before")
    @classmethod
    def _base_defaults(cls, value: Any, info: Any) -> Any:
        return base_with_defaults(value, info)

    @model_validator(mode="after")
    def _variants_valid(self) -> CompareExperimentSpec:
        labels = [v.label for v in self.variants]
        if len(set(labels)) != len(labels):
            raise ValueError("variant labels must be distinct")
        if self.base.data.split.folds:
            raise ValueError("a compare variant cannot itself fan out: remove base.data.split.folds")
        for variant in self.variants:  # each variant must be a valid train spec
            self.variant_spec(variant)
        return self

    def variant_spec(self, variant: VariantSpec) -> dict[str, Any]:
        """The base with the variant's changes, validated, as a child spec dict."""
        spec = copy.deepcopy(self.base.model_dump(mode="json", exclude_unset=True))
        spec["kind"] = "train"
        for path, value in variant.set.items():
            try:
                set_path(spec, path, value)
            except ValueError as exc:
                raise ValueError(f"variant {variant.label!r}: {exc}") from exc
        spec["name"] = f"{self.name} [{variant.label}]"[:200]
        spec["seed"] = spec.get("seed", self.seed)
        try:
            child = TrainExperimentSpec.model_validate(spec)
        except Exception as exc:
            raise ValueError(f"variant {variant.label!r} is not a valid spec: {exc}") from exc
        if child.data.split.folds:
            raise ValueError(f"variant {variant.label!r}: a compare variant cannot itself fan out (data.split.folds)")
        return child.model_dump(mode="json")

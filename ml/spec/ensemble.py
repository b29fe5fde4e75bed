"""Bagging ensembles: N members of one base spec, each trained on its own sample of the training
rows, combined on the shared test split. Pydantic only: importing this never imports torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ml.spec.base import ExperimentHeader, base_with_defaults
from ml.spec.experiments import TrainExperimentSpec

MAX_MEMBERS = 50


class EnsembleExperimentSpec(ExperimentHeader):
    """Bagging: `members` copies of `base`, each a child experiment trained on a bootstrap sample
    (rows drawn with replacement, as many as the training part has) or on a disjoint share of
    the training rows. Validation and test rows are the same for every member; the parent
    combines the members' test predictions by majority vote or averaged probabilities
    (regression: the mean prediction) and reports each member's test metrics, their spread and
    the ensemble's.
    """

    kind: Literal["ensemble"] = "ensemble"
    base: TrainExperimentSpec
    members: int = Field(default=10, ge=2, le=MAX_MEMBERS)
    sampling: Literal["bootstrap", "disjoint"] = "bootstrap"
    combine: Literal["vote", "mean_proba"] = Field(
        default="vote", description="Classification: majority vote, or the mean of the class probabilities."
    )

    @field_validator("base", mode="before")
    @classmethod
    def _base_defaults(cls, value: Any, info: Any) -> Any:
        return base_with_defaults(value, info)

    @model_validator(mode="after")
    def _plain_base(self) -> EnsembleExperimentSpec:
        if self.base.data.split.folds:
            raise ValueError("an ensemble member cannot itself fan out: remove base.data.split.folds")
        if self.base.data.sample is not None or self.base.trial is not None:
            raise ValueError("base.data.sample and base.trial are set by the server; leave them out")
        return self

"""The preprocessing pipeline's steps (each fitted on the training part only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ml.spec.base import StrictModel


class PreprocessStep(StrictModel):
    """One step of the preprocessing pipeline, fitted on the training part only."""

    step: Literal["standardize"] = Field(description="The step's name.")

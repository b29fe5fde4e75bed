"""What to measure on the sealed test split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ml.spec.base import StrictModel

MetricName = Literal[
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "fbeta",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "confusion_matrix",
    "iou",
    "rmse",
    "mae",
    "mse",
    "r2",
]


class EvaluateSpec(StrictModel):
    """Final test metrics (the task's default set when empty)."""

    metrics: list[MetricName] = Field(default_factory=list, max_length=32)

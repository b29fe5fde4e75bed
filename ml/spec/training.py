"""How to train: epochs, batches, optimizer, early stopping."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ml.spec.base import MAX_BATCH_SIZE, MAX_EPOCHS, StrictModel


class OptimizerSpec(StrictModel):
    """An optimizer from the registry (`ml.optim`)."""

    name: Literal["sgd", "adam"] = "adam"
    lr: float = Field(default=1e-3, gt=0.0, le=100.0, description="Learning rate.")
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0, description="SGD momentum.")
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)


class EarlyStoppingSpec(StrictModel):
    """Stop when the monitored validation value has not improved for `patience` epochs."""

    monitor: Literal["val_loss"] = "val_loss"
    patience: int = Field(default=10, ge=1, le=MAX_EPOCHS)
    min_delta: float = Field(default=0.0, ge=0.0)
    restore_best: bool = Field(default=True, description="Put back the weights of the best epoch.")


class TrainSpec(StrictModel):
    """The training loop's settings."""

    epochs: int = Field(default=50, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(default=64, ge=1, le=MAX_BATCH_SIZE)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    early_stopping: EarlyStoppingSpec | None = None
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: CUDA when the worker has one, else CPU."
    )

"""The network to train."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ml.spec.base import MAX_LAYERS, MAX_WIDTH, StrictModel

Activation = Literal["relu", "tanh", "sigmoid", "gelu", "leaky_relu", "elu"]


class ModelSpec(StrictModel):
    """A model from the model registry (`ml.models`)."""

    type: Literal["mlp", "linear"] = Field(default="mlp", description="mlp, or linear (logistic/linear baseline).")
    hidden: list[int] = Field(
        default_factory=lambda: [64],
        max_length=MAX_LAYERS,
        description=f"Widths of the hidden layers (each 1..{MAX_WIDTH}).",
    )
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout after each hidden layer.")

    def model_post_init(self, __context: object) -> None:
        for width in self.hidden:
            if not 1 <= width <= MAX_WIDTH:
                raise ValueError(f"hidden layer widths must be between 1 and {MAX_WIDTH}, got {width}")

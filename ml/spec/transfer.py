"""Transfer learning: start a training run from another experiment's stored weights.

Pydantic only: importing this never imports torch.
"""

from __future__ import annotations

from pydantic import Field

from ml.spec.base import MAX_LAYERS, StrictModel


class InitSpec(StrictModel):
    """Start from the weights (``model.pt``) of a finished experiment.

    The source must have the same architecture up to its output layer. Two ways to train, which
    may be combined: `freeze` the first N dense/convolution layers (their weights stay exactly
    as loaded) and train the rest; or fine-tune every layer with the pretrained layers at
    `pretrained_lr_factor` x the learning rate.
    """

    from_experiment: int | str = Field(description="The source experiment's id, or its (unique) name.")
    freeze: int | None = Field(
        default=None, ge=0, le=MAX_LAYERS, description="Freeze the first N Linear/Conv layers (null: none)."
    )
    pretrained_lr_factor: float = Field(
        default=1.0, gt=0.0, le=1.0, description="Learning rate of the pretrained, unfrozen layers, as a factor."
    )
    new_head: bool | None = Field(
        default=None,
        description="A fresh output layer: true always, false never (shapes must match), null (default) only "
        "when the number of outputs differs from the source's.",
    )

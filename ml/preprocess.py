"""The preprocessing pipeline's public entry point (the implementation is `ml.preprocessing`).

Each step is fitted on the training rows only, then applied to validation and test, and reports
what it did. ``fit_preprocessing(steps, X_train, y_train, names, task=, seed=, image_shape=)``
returns the `FittedPipeline`, the transformed training rows and their targets.
"""

from ml.preprocessing import (
    STEPS,
    BatchTransform,
    FittedPipeline,
    PreprocessingLeak,
    assert_fitted_on_training_only,
    find_leakage,
    fit_preprocessing,
)

__all__ = [
    "STEPS",
    "BatchTransform",
    "FittedPipeline",
    "PreprocessingLeak",
    "assert_fitted_on_training_only",
    "find_leakage",
    "fit_preprocessing",
]

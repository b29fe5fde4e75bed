"""Data preparation: scaling, feature selection, extraction and transformation, class
balancing, under-sampling and augmentation, each fitted on the training part only.

scikit-learn and imbalanced-learn do the work; this package wires the spec's steps to them
(`STEPS`, name -> fit) and reports what each step did.
"""

from ml.preprocessing.base import BatchTransform, FittedStep, StepContext, TrainingOnly
from ml.preprocessing.leakage import PreprocessingLeak, assert_fitted_on_training_only, find_leakage
from ml.preprocessing.pipeline import STEPS, FittedPipeline, fit_preprocessing

__all__ = [
    "STEPS",
    "BatchTransform",
    "FittedPipeline",
    "FittedStep",
    "PreprocessingLeak",
    "StepContext",
    "TrainingOnly",
    "assert_fitted_on_training_only",
    "find_leakage",
    "fit_preprocessing",
]

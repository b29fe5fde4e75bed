"""Data: the sources (`sources`: built-in and synthetic data sets by name, uploads through the
host's resolver; `load_dataset`, `split_dataset` into train/validation/test or folds) and the
training subsets (`subsets`: few-shot subsets, bagging samples)."""

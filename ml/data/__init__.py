"""Data: the sources (`sources`: built-in and synthetic data sets by name, uploads through the
host's resolver; `load_dataset`, `split_dataset` into train/validation/test or folds) and the
training subsets (`subsets`: few-shot subsets, bagging samples), folder archives of audio and
images (`folders`, `perceptual`) and, for one larger than the memory budget, its features in
shards read one at a time (`shards`)."""

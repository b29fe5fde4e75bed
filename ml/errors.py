"""Errors a run raises; their messages are written for the person who submitted the spec."""


class MLError(Exception):
    """Base class of every error `ml` raises on purpose."""


class Cancelled(MLError):
    """The reporter asked the run to stop."""


class TrainingDiverged(MLError):
    """The loss became nan/inf or exploded; the message names the epoch and learning rate."""


class DataError(MLError):
    """The data named by the spec cannot be loaded or does not fit the task."""


class Pruned(MLError):
    """A search trial was stopped early by the search's pruner (a trial state of its own, not a bug)."""

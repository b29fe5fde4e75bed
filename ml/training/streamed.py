"""What a run reads of its data (`RunInputs`), and how a data set larger than the memory budget
(`ml.data.shards.ShardedDataset`) provides it without ever holding its features at once.

`ml.run.run_train` builds the in-memory `RunInputs` itself (tensors on the device); for a
sharded data set it calls `streamed_inputs`:

- the split needs the labels only (done before, as for any data set);
- the preprocessing is fitted on the training rows shard by shard (`fit_streamed_preprocessing`:
  running mean and variance, running min and max); steps that need every row at once are refused;
- training and validation rows are `ShardStream`s: shuffled shard order, shuffled rows within a
  shard, the next shard prefetched, batches sliced from one copy per shard;
- validation and test predictions are streamed in order; the reference model of the diagnosis
  sees a bounded sample of the rows; exact duplicates across splits are found from the rows'
  digests (`row_keys`), so the summary has the same parts as a run in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ml.data.shards import DEFAULT_SHARD_BYTES, ShardedDataset, megabytes
from ml.data.sources import Dataset, Split
from ml.errors import DataError
from ml.preprocessing.pipeline import FittedPipeline, fit_streamed_preprocessing
from ml.spec import TrainExperimentSpec
from ml.training.loop import Streamed, Tensors
from ml.training.shard_stream import ShardStream

# The reference model's sample of rows (training and validation, each) is at most this fraction
# of the budget; without a budget, as large as a shard.
REFERENCE_BUDGET_FRACTION = 8
REFERENCE_MIN_ROWS = 100


@dataclass
class RunInputs:
    """What training and evaluation read of a run's data, in memory or streamed.

    Attributes:
        pipeline: the preprocessing fitted on the training rows.
        y_train: the training targets after preprocessing (resampling may change them).
        fit_data: what `fit` trains on: tensors, or streams of a sharded data set.
        features: input columns of the model (after preprocessing).
        validation_output: the model's predictions on the validation rows, in their order.
        test_output: the same on the test rows.
        reference_rows: (X_train, y_train, X_val, y_val) preprocessed, for the diagnosis's
            reference model (all of them in memory, a sample when streamed).
        raw_features: the rows' features before preprocessing, for pictures of a few samples.
        evaluation_data: the data set as `ml.evaluation.evaluate.evaluate_run` reads it.
        lr_range_data: the tensors of the learning-rate range test (None when streamed).
    """

    pipeline: FittedPipeline
    y_train: np.ndarray
    fit_data: Tensors | Streamed
    features: int
    validation_output: Callable[[torch.nn.Module], np.ndarray]
    test_output: Callable[[torch.nn.Module], np.ndarray]
    reference_rows: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    raw_features: Callable[[np.ndarray], np.ndarray]
    evaluation_data: Dataset
    lr_range_data: Tensors | None


def check_streamable(spec: TrainExperimentSpec, data: ShardedDataset) -> None:
    """Refuse, before anything is done, what a streamed run cannot do (named, with the budget)."""
    streamed = data.describe_budget()
    if data.task != "classification":
        raise DataError(f"a streamed data set is a classification task; this one is {streamed}")
    dedup = next((step for step in spec.preprocess if step.step == "deduplicate"), None)
    if dedup is not None:
        raise DataError(
            f"preprocess step deduplicate compares every row with every other, and this data set is {streamed}; "
            "leave it out (exact duplicates across the splits are still counted in the summary's leakage)"
        )
    if spec.processes() > 1:
        raise DataError(
            f"data-parallel training (train.distributed) needs the data set in memory on every "
            f"process, and this one is {streamed}; train it on one process"
        )
    if spec.train.lr_range_test is not None:
        raise DataError(
            f"train.lr_range_test sweeps batches of rows held in memory, and this data set is {streamed}; "
            "run the range test on a subset (data.stream: false with fewer samples) or leave it out"
        )


@torch.no_grad()
def predict_stream(model: torch.nn.Module, stream: ShardStream, task: str, batch_size: int) -> np.ndarray:
    """Class probabilities (or values) of a stream's rows, in the order of the rows it was given."""
    model.eval()
    outputs = [model(xb) for xb, _ in stream.batches(batch_size)]
    out = torch.cat(outputs) if outputs else torch.empty(0)
    out = out.softmax(dim=1) if task == "classification" else out.squeeze(-1)
    values = out.float().cpu().numpy()
    ordered = np.empty_like(values)
    ordered[stream.positions()] = values
    return ordered


def _sample(rows: np.ndarray, cap: int, seed: int) -> np.ndarray:
    if len(rows) <= cap:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=cap, replace=False))


def streamed_inputs(spec: TrainExperimentSpec, data: ShardedDataset, split: Split, device: torch.device) -> RunInputs:
    """The `RunInputs` of a sharded data set: nothing but labels, digests and a shard or two in memory.

    The caller has refused what a streamed run cannot do (`check_streamable`) before splitting."""
    streamed = data.describe_budget()
    y_train = data.y[split.train]

    def training_chunks() -> Iterator[np.ndarray]:
        for number, inside, _ in data.groups(split.train):
            yield data.shard(number)[inside]

    pipeline = fit_streamed_preprocessing(
        spec.preprocess,
        training_chunks,
        y_train,
        data.feature_names,
        streamed=streamed,
        task=data.task,
        seed=spec.seed,
        image_shape=data.image_shape,
        n_classes=data.n_classes,
    )
    train = ShardStream(data, split.train, pipeline.transform, device, data.task)
    validation = ShardStream(data, split.validation, pipeline.transform, device, data.task)
    batch = spec.train.batch_size

    def reference_rows() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        width = max(len(pipeline.feature_names), data.n_features)
        allowed = DEFAULT_SHARD_BYTES if data.budget_bytes is None else data.budget_bytes // REFERENCE_BUDGET_FRACTION
        # Enough rows for the reference model to hold some out per class (it samples further, its own cap).
        cap = max(REFERENCE_MIN_ROWS, 20 * data.n_classes, allowed // (4 * width))
        rows_t, rows_v = _sample(split.train, cap, spec.seed), _sample(split.validation, cap, spec.seed + 1)
        X_t, X_v = pipeline.transform(data.gather(rows_t)), pipeline.transform(data.gather(rows_v))
        return X_t, data.y[rows_t], X_v, data.y[rows_v]

    def test_output(model: torch.nn.Module) -> np.ndarray:
        test = ShardStream(data, split.test, pipeline.transform, device, data.task)
        return predict_stream(model, test, data.task, batch)

    # Rows stand for by their digests: exact duplicates compare equal, as the rows would.
    keys = Dataset(data.row_keys, data.y, data.task, data.feature_names, data.class_names, data.image_shape)
    return RunInputs(
        pipeline=pipeline,
        y_train=y_train,
        fit_data=Streamed(train, validation, device),
        features=len(pipeline.feature_names),
        validation_output=lambda model: predict_stream(model, validation, data.task, batch),
        test_output=test_output,
        reference_rows=reference_rows,
        raw_features=data.gather,
        evaluation_data=keys,
        lr_range_data=None,
    )


def stream_report(data: ShardedDataset, split: Split) -> dict[str, Any]:
    """The summary's ``streamed`` block: how the data set was read."""
    return {
        "decoded_bytes": data.nbytes,
        "budget_bytes": data.budget_bytes,
        "shards": data.shards,
        "shard_rows": data.shard_rows,
        "shard_bytes": 4 * data.shard_rows * data.n_features,
        "train_rows": int(len(split.train)),
        "note": f"{megabytes(data.nbytes)} of features read shard by shard",
    }

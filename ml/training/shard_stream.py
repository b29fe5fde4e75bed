"""Rows of a sharded data set (`ml.data.shards.ShardedDataset`) as batches on the device, one
shard at a time: what `ml.training.loop.fit` trains on when the data set is larger than the
worker's memory budget.

Each epoch visits the shards in a shuffled order and the rows of a shard in a shuffled order;
rows left over at the end of a shard (fewer than a batch) open the next shard's first batch, so
every batch but the last is full. While one shard is trained on, a background thread reads the
next one, gathers its rows, applies the fitted preprocessing and (on CUDA) pins it; the chunk
goes to the device in one asynchronous copy and batches are slices of it -- no per-row Python
work. At most two chunks (the current and the next) and the leftover rows are in memory.

The shuffles draw from a numpy generator seeded once per epoch from the run's generator, so
a seed gives the same batches run after run whatever the thread's timing.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from ml.data.shards import ShardedDataset
from ml.spec.base import Task

Chunk = tuple[torch.Tensor, torch.Tensor]


class ShardStream:
    """Some rows of a sharded data set (a split's), read shard by shard.

    Args:
        data: the sharded data set.
        rows: the rows (of `data`) to stream; repeats are allowed (a bootstrap sample).
        transform: the fitted preprocessing, (rows, features) -> (rows, features) float32.
        device: where the batches go.
        task: classification (long targets) or regression.
    """

    def __init__(
        self,
        data: ShardedDataset,
        rows: np.ndarray,
        transform: Callable[[np.ndarray], np.ndarray],
        device: torch.device,
        task: Task = "classification",
    ) -> None:
        self.data, self.transform, self.device = data, transform, device
        self.groups = data.groups(rows)
        self.rows = int(len(rows))
        self.target_dtype = torch.long if task == "classification" else torch.float32
        y = np.asarray(data.y)[np.asarray(rows, dtype=np.int64)]
        self._labels = [y[positions] for _, _, positions in self.groups]
        # One reading thread for the stream's life (every epoch): its memory is reused, not a new
        # thread's (and allocator arena's) each epoch.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-prefetch")
        weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)

    def positions(self) -> np.ndarray:
        """Where each row of an unshuffled pass stands in the rows the stream was given."""
        return np.concatenate([p for _, _, p in self.groups]) if self.groups else np.empty(0, dtype=np.int64)

    def labels(self) -> np.ndarray:
        """The targets in the order an unshuffled pass yields the rows."""
        return np.concatenate(self._labels) if self._labels else np.empty(0, dtype=np.int64)

    def _chunk(self, group: int, rng: np.random.Generator | None) -> Chunk:
        """One shard's rows of the stream, preprocessed (shuffled when `rng` is given), on the host."""
        number, inside, _ = self.groups[group]
        y = self._labels[group]
        if rng is not None:  # shuffled as gathered: one copy of the rows
            order = rng.permutation(len(y))
            inside, y = inside[order], y[order]
        X = self.transform(self.data.shard(number)[inside])  # the shard itself is let go here
        x_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        y_t = torch.as_tensor(y, dtype=self.target_dtype)
        if self.device.type == "cuda":
            x_t, y_t = x_t.pin_memory(), y_t.pin_memory()
        return x_t, y_t

    def batches(self, batch_size: int, seed: int | None = None, limit: int | None = None) -> Iterator[Chunk]:
        """Batches of `batch_size` rows on the device (the last one may be smaller).

        Args:
            batch_size: rows per batch.
            seed: shuffles shards and rows (an epoch's draw); None: every row in order.
            limit: stop after this many rows (the loop's rule for a last batch of one row).
        """
        rng = np.random.default_rng(seed) if seed is not None else None
        order = rng.permutation(len(self.groups)) if rng is not None else np.arange(len(self.groups))
        limit = self.rows if limit is None else limit
        emitted = 0
        carry: Chunk | None = None
        pool = self._pool
        pending: Future[Chunk] | None = pool.submit(self._chunk, int(order[0]), rng) if len(order) else None
        try:
            for k in range(len(order)):
                assert pending is not None
                x_host, y_host = pending.result()
                # The next shard is read while this one is trained on (one generator: drawn in order).
                pending = pool.submit(self._chunk, int(order[k + 1]), rng) if k + 1 < len(order) else None
                x = x_host.to(self.device, non_blocking=True)
                y = y_host.to(self.device, non_blocking=True)
                if carry is not None and len(carry[1]):  # last shard's leftover rows open this one's batch
                    need = batch_size - len(carry[1])
                    head = torch.cat([carry[0], x[:need]]), torch.cat([carry[1], y[:need]])
                    x, y = x[need:], y[need:]
                    carry = head
                    if len(head[1]) < batch_size:
                        continue  # a shard smaller than a batch: keep filling
                    if emitted >= limit:
                        return
                    take = min(batch_size, limit - emitted)
                    emitted += take
                    yield head[0][:take], head[1][:take]
                full = len(x) // batch_size * batch_size
                for start in range(0, full, batch_size):
                    if emitted >= limit:
                        return
                    take = min(batch_size, limit - emitted)
                    emitted += take
                    yield x[start : start + take], y[start : start + take]
                carry = (x[full:], y[full:])
            if carry is not None and len(carry[1]) and emitted < limit:
                take = min(len(carry[1]), limit - emitted)
                yield carry[0][:take], carry[1][:take]
        finally:
            if pending is not None and not pending.cancel():  # left early (a cancel, the loop's limit)
                pending.exception()  # let the read in flight end before the next pass starts

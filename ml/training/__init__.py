"""Training: the loop (`loop.fit`: batches, early stopping, divergence, mixed precision), the
optimizers and learning-rate schedules by name, regularization (L1, L2, ElasticNet, max-norm),
changes to the optimizer's step (`optimizer_hooks`: hypergradient descent, per-layer rates),
checkpoints for exact resume, the LR range test, the device choice, transfer learning and
data-parallel training on several processes (`distributed`: DistributedDataParallel), and the
inputs of a run (`streamed`: in memory, or streamed shard by shard through `shard_stream` for a
data set larger than the memory budget)."""

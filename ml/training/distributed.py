"""Data-parallel training: one experiment on several processes, one per GPU (NCCL) or on the
CPU (gloo), with torch's DistributedDataParallel, through the same `fit` as a single process.

How a run goes (`fit_distributed`, which `ml.run.run_train` calls in the process that prepared
the data, a worker's task process):

- That process is rank 0. It writes what the other ranks need (the model, each rank's shard of
  the training rows, the validation rows, the batch transform and step hooks) to a private
  temporary folder and starts ranks 1..N-1 as ``python -m ml.training.distributed_rank FOLDER``
  with torchrun's variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
  ``MASTER_PORT``; the port is the free one rank 0's TCPStore bound). Subprocesses, not
  `torch.multiprocessing`: a Celery pool process is daemonic and may not start those.
- Every rank trains its own shard (all shards have the same number of rows, so every rank runs
  the same number of batches) with ``batch_size / N`` rows a step: DDP averages the gradients, so
  a step sees the spec's ``batch_size`` rows in all, as a single process does.
- Ranks 1..N-1 draw random numbers of their own (`RankStreams`): dropout masks, shuffles and
  augmentation differ from rank 0's, and a resumed run draws as the uninterrupted one.
- Only rank 0 talks to the run's reporter: metrics, logs, checkpoints (saving one involves no
  other rank) and, in a worker, the lease. Decisions that all ranks must take together are
  agreed: stopping (cancel, time limit, interrupt) is an all-reduce of rank 0's flag at each
  epoch's first batch and every `STOP_CHECK_EVERY` batches; the checkpoint to resume from is
  rank 0's, broadcast; the epoch's values (train loss and metric: their mean over the ranks;
  validation: every rank evaluates all validation rows with the same weights) are all-reduced
  before the loop reads them, so divergence checks, schedules and early stopping decide alike.
- A rank that fails writes its error to the folder and exits; the others' next collective fails
  (or times out after `COLLECTIVE_TIMEOUT`), and rank 0 raises that rank's error. Whatever
  happens, rank 0 tears the group down and ends every rank it started before it returns.

Multi-host training is torchrun's business (its c10d rendezvous), not this module's: see the
README's "GPU server" section.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import cloudpickle
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ml.errors import Cancelled, DataError, MLError, Pruned, TrainingDiverged
from ml.reporter import Reporter
from ml.spec import TrainSpec
from ml.spec.base import Task
from ml.training import checkpoint, run_folders
from ml.training.loop import History, Tensors, fit

STOP_CHECK_EVERY = 8  # batches between two agreements on stopping (besides each epoch's first)
JOIN_TIMEOUT = timedelta(minutes=5)  # the ranks start Python, import torch and connect
COLLECTIVE_TIMEOUT = timedelta(minutes=10)  # a rank that stops answering fails the run after this
EXIT_GRACE_SECONDS = 30.0  # what the ranks get to exit after the run, before they are killed
RANK_SEED_STRIDE = 1_000_003  # rank r > 0 starts from seed + r x this: its own dropout, shuffles, augmentation
JOINED = "trainlab/joined"  # TCPStore counter: ranks that loaded their data and are connecting
# The errors a rank may report that mean the same thing on rank 0 (the run's outcome).
RANK_ERRORS: dict[str, type[BaseException]] = {
    cls.__name__: cls for cls in (Cancelled, TrainingDiverged, DataError, Pruned, MLError, MemoryError, ValueError)
}
StepHook = Any  # an object with ``active() -> context manager`` (ScaledUpdates, Hypergradient)
_LAUNCH_LOCK = threading.Lock()  # held while fit_distributed runs a group it launches in this process
TORCHRUN_MARKER = "TRAINLAB_TORCHRUN"  # set by ml.torchrun: this process is one rank of torchrun's group


def under_torchrun() -> bool:
    """Whether torchrun started this process as one rank of its group (`ml.torchrun` says so, or
    torchrun's own ``TORCHELASTIC_RUN_ID``), rather than whether some group exists in it."""
    return bool(os.environ.get(TORCHRUN_MARKER) or os.environ.get("TORCHELASTIC_RUN_ID"))


class RankFailed(RuntimeError):
    """Another data-parallel process died, failed to start or stopped answering."""


class DataParallelModel(DistributedDataParallel):
    """DDP whose state dict is the wrapped model's (no ``module.`` prefix), so that checkpoints
    and early stopping's best weights are those of a single-process run."""

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)


class RankStreams:
    """The random streams of rank `rank` > 0 (its generator, torch's and numpy's global ones), its
    own so that its dropout masks, shuffles and augmentation are not rank 0's: seeded with
    ``seed + RANK_SEED_STRIDE * rank`` before training and re-seeded after every epoch from (seed,
    rank, epoch). A run resumed after epoch e thus draws on every rank as the uninterrupted run
    did (rank 0 restores its own generator from the checkpoint, the other ranks re-seed)."""

    def __init__(self, generator: torch.Generator, seed: int, rank: int) -> None:
        self.generator, self.base, self.rank = generator, seed, rank

    def seed(self, epoch: int) -> None:
        """The streams from after epoch `epoch` on (0: before training)."""
        if epoch == 0:
            value = self.base + RANK_SEED_STRIDE * self.rank
        else:
            digest = hashlib.sha256(f"{self.base}/{self.rank}/{epoch}".encode()).digest()
            value = int.from_bytes(digest[:8], "little") >> 1
        self.generator.manual_seed(value)
        torch.manual_seed(value)
        np.random.seed(value % 2**32)

    def states(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's and torch's states after epoch `epoch` (what a checkpoint holds)."""
        self.seed(epoch)
        return self.generator.get_state(), torch.get_rng_state()


class RankReporter(Reporter):
    """What `fit` sees on a rank: rank 0 forwards to the run's reporter (`inner`), the other
    ranks' hooks do nothing; stopping and the checkpoint to resume from are agreed by all."""

    def __init__(self, inner: Reporter | None, device: torch.device, streams: RankStreams | None = None) -> None:
        self.inner, self.device = inner, device
        self.streams = streams  # a rank > 0's own random streams
        self.requested = False  # rank 0's reporter asked to stop (not yet agreed)
        self._calls = 0
        self._check_next = True  # the first batch of every epoch checks

    def should_stop(self) -> bool:
        if self.inner is not None and not self.requested:
            self.requested = self.inner.should_stop()  # every batch: the reporter throttles itself
        self._calls += 1
        if not self._check_next and self._calls % STOP_CHECK_EVERY:
            return False
        self._check_next = False
        flag = torch.tensor([1 if self.requested else 0], dtype=torch.int32, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def on_epoch_end(self, step: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        self._check_next = True
        if self.streams is not None:
            self.streams.seed(step)
        if self.inner is not None:
            self.inner.on_epoch_end(step, metrics)

    def log(self, message: str) -> None:
        if self.inner is not None:
            self.inner.log(message)

    def save_artifact(self, name: str, data: bytes, content_type: str) -> None:
        if self.inner is not None:
            self.inner.save_artifact(name, data, content_type)

    def checkpoint_due(self) -> bool:
        # Rank 0 alone packs and saves (no collective in it): the others need not know.
        return self.inner.checkpoint_due() if self.inner is not None else False

    def save_checkpoint(self, state: bytes) -> None:
        if self.inner is not None:
            self.inner.save_checkpoint(state)

    def load_checkpoint(self) -> bytes | None:
        box = [self.inner.load_checkpoint() if self.inner is not None else None]
        dist.broadcast_object_list(box, src=0, device=self.device)
        if box[0] is None or self.streams is None:
            return box[0]
        # Rank 0's random states are in it: this rank resumes its own, as they were after that epoch.
        return checkpoint.with_random_states(box[0], self.streams.states)


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of `values` over the ranks, the same on every rank (`fit`'s
    ``epoch_reduce``)."""
    total = values.detach().clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of the model's state dict, names and bytes: equal digests, identical weights."""
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def shard_rows(n: int, processes: int, seed: int) -> list[torch.Tensor]:
    """Each rank's training rows: a seeded shuffle dealt out like cards, padded by repeating its
    first rows so that every rank has ceil(n / processes) rows (as torch's DistributedSampler)."""
    per_rank = math.ceil(n / processes) if n else 0
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    if n:
        order = order.repeat(math.ceil(per_rank * processes / n))[: per_rank * processes]
    return [order[rank::processes] for rank in range(processes)]


def _split(data: Tensors, spec: TrainSpec, processes: int, seed: int) -> tuple[list[torch.Tensor], TrainSpec]:
    """Each rank's training rows (`shard_rows`) and the spec every rank trains with (its share of
    the batch)."""
    return shard_rows(len(data.X_train), processes, seed), spec.model_copy(
        update={"batch_size": spec.batch_size // processes}
    )


def _rank_data(data: Tensors, rows: torch.Tensor) -> Tensors:
    """A rank's data: its training rows, and all the validation rows."""
    rows = rows.to(data.X_train.device)
    return Tensors(data.X_train[rows], data.y_train[rows], data.X_val, data.y_val)


def _report(
    shards: list[torch.Tensor],
    rank_spec: TrainSpec,
    backend: str,
    devices: Sequence[object],
    digests: list[str],
    launcher: str,
) -> dict[str, Any]:
    """The summary's ``distributed`` block."""
    return {
        "processes": len(shards),
        "backend": backend,
        "devices": [str(d) for d in devices],
        "batch_size_per_process": rank_spec.batch_size,
        "rows_per_process": len(shards[0]),
        "identical_weights": len(set(digests)) == 1,
        "launcher": launcher,
    }


def train_rank(
    model: nn.Module,
    data: Tensors,
    spec: TrainSpec,
    task: Task,
    reporter: Reporter | None,
    generator: torch.Generator,
    *,
    seed: int,
    class_weights: torch.Tensor | None = None,
    val_class_weights: torch.Tensor | None = None,
    batch_transform: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
    step_hooks: Sequence[StepHook] = (),
) -> tuple[History, list[str]]:
    """One rank's part, in a process group already set up: `fit` on a DDP-wrapped `model` and
    this rank's rows (`spec.batch_size` is the rank's share). `reporter`: the run's on rank 0,
    None on the others. `step_hooks` are entered here (rank 0's host enters its own). `seed`:
    the run's; ranks > 0 seed `generator` and the global streams from it (`RankStreams`), rank 0
    keeps the caller's.

    Returns the history and every rank's `weights_digest` after training, by rank."""
    device = data.X_train.device
    rank = dist.get_rank()
    streams = RankStreams(generator, seed, rank) if rank > 0 else None
    if streams is not None:
        streams.seed(0)
    wrapped = DataParallelModel(model, device_ids=[device.index] if device.type == "cuda" else None)
    try:
        with contextlib.ExitStack() as hooks:
            for hook in step_hooks:
                hooks.enter_context(hook.active())
            history = fit(
                wrapped,
                data,
                spec,
                task,
                RankReporter(reporter, device, streams),
                generator,
                class_weights=class_weights,
                val_class_weights=val_class_weights,
                batch_transform=batch_transform,
                epoch_reduce=mean_over_ranks,
            )
        digests: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(digests, weights_digest(model))
    finally:
        del wrapped  # its reducer's hooks leave the model's parameters
    return history, [str(d) for d in digests]


@dataclass
class _Rank:
    """A rank this process started."""

    rank: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    run_dir: Path

    def error(self) -> dict[str, str] | None:
        path = self.run_dir / f"rank{self.rank}.error.json"
        return json.loads(path.read_text()) if path.exists() else None

    def ended(self) -> bool:
        """The rank exited or reported an error."""
        return self.process.poll() is not None or (self.run_dir / f"rank{self.rank}.error.json").exists()

    def log_tail(self, lines: int = 8) -> str:
        text = (self.run_dir / f"rank{self.rank}.log").read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])


def _placement(device: torch.device, processes: int) -> tuple[str, list[torch.device]]:
    """The backend and each rank's device: the CPU for all (gloo), or one GPU each (NCCL),
    rank 0 on `device` and the next ones after it."""
    if device.type != "cuda":
        return "gloo", [torch.device("cpu")] * processes
    count = torch.cuda.device_count()
    if count < processes:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise MLError(
            f"data-parallel training on {processes} GPUs, one process each, but this worker sees {count} "
            f"(CUDA_VISIBLE_DEVICES={visible!r}); start the worker with `trainlab worker --gpus` naming "
            f"{processes} GPUs, or ask for fewer"
        )
    first = device.index if device.index is not None else torch.cuda.current_device()
    return "nccl", [torch.device("cuda", (first + r) % count) for r in range(processes)]


def _write_job(
    run_dir: Path,
    model: nn.Module,
    data: Tensors,
    shards: list[torch.Tensor],
    spec: TrainSpec,
    job: dict[str, Any],
    tensors: dict[str, torch.Tensor | None],
    objects: dict[str, Any],
) -> None:
    """What ranks 1..N-1 read: job.json, data.pt and shard<r>.pt (plain tensors, read with
    ``weights_only``), objects.pt (the model, batch transform and step hooks in one pickle, so
    that the hooks hold that model's parameters; cloudpickle for closures)."""
    (run_dir / "job.json").write_text(json.dumps({**job, "train": spec.model_dump(mode="json")}))
    torch.save({k: None if v is None else v.detach().cpu() for k, v in tensors.items()}, run_dir / "data.pt")
    for rank in range(1, len(shards)):
        part = _rank_data(data, shards[rank])
        torch.save({"X_train": part.X_train.cpu(), "y_train": part.y_train.cpu()}, run_dir / f"shard{rank}.pt")
    torch.save({"model": model, **objects}, run_dir / "objects.pt", pickle_module=cloudpickle)


def _start_rank(run_dir: Path, rank: int, world: int, port: int, threads: int) -> _Rank:
    root = str(Path(__file__).resolve().parents[2])  # where the `ml` package lives
    env = {
        **os.environ,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": str(threads),
        run_folders.PARENT_ENV: str(os.getpid()),  # the rank exits (and removes run_dir) once it is gone
        "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
    }
    log = (run_dir / f"rank{rank}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "ml.training.distributed_rank", str(run_dir)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a signal to the worker's process group is the worker's to handle
    )
    return _Rank(rank, process, log, run_dir)


def _wait_for_ranks(store: dist.TCPStore, ranks: list[_Rank], reporter: Reporter) -> None:
    """Until every rank has loaded its data and is connecting; a rank that exits first, a cancel
    or `JOIN_TIMEOUT` ends the wait."""
    deadline = time.monotonic() + JOIN_TIMEOUT.total_seconds()
    while store.add(JOINED, 0) < len(ranks):
        for rank in ranks:
            if rank.process.poll() is not None:
                raise _failure(ranks, len(ranks) + 1, None) or RankFailed(f"process {rank.rank} exited")
        if reporter.should_stop():
            raise Cancelled("cancelled while the data-parallel processes started")
        if time.monotonic() > deadline:
            raise RankFailed(
                f"the data-parallel processes did not start within {JOIN_TIMEOUT.total_seconds():g} s: "
                + "; ".join(f"process {r.rank}: {r.log_tail(3) or 'no output'}" for r in ranks)
            )
        time.sleep(0.1)


def _collective_error(exc: BaseException) -> bool:
    """Whether `exc` may be a failed collective (another rank died or stopped answering) rather
    than rank 0's own error (the reporter's database or broker, a user's ValueError, CUDA memory)."""
    return isinstance(exc, RuntimeError) and not isinstance(exc, torch.cuda.OutOfMemoryError)


def _failure(ranks: list[_Rank], world: int, cause: BaseException | None) -> BaseException | None:
    """The error that ended the run, as one of the other ranks reported it (its own type, for the
    run's outcome), else what is known of the rank that died or stopped answering; None when no
    rank exited or reported an error (`cause` is then rank 0's own, to raise unchanged)."""
    if cause is None or _collective_error(cause):
        deadline = time.monotonic() + 5.0  # a rank that broke a collective is usually exiting already
        while time.monotonic() < deadline and not any(r.ended() for r in ranks):
            time.sleep(0.1)
    errors = [(rank, rank.error()) for rank in ranks]
    for rank, error in errors:  # an error of the run's own (a data error, a divergence...)
        if error is not None and error["type"] in RANK_ERRORS:
            return RANK_ERRORS[error["type"]](f"{error['message']} (data-parallel process {rank.rank} of {world})")
    for rank, error in errors:  # a rank that died without a word (killed, out of memory)
        code = rank.process.poll()
        if error is None and code is not None and code != 0:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            return RankFailed(f"data-parallel process {rank.rank} of {world} {how}: {rank.log_tail() or 'no output'}")
    for rank, error in errors:
        if error is not None:
            return RankFailed(
                f"data-parallel process {rank.rank} of {world} failed: {error['type']}: {error['message']}"
            )
    if cause is None or isinstance(cause, dist.DistError):  # a timeout: a rank stopped answering
        return RankFailed(f"data-parallel training stopped: {cause} (no process reported an error)")
    return None


def _end_ranks(ranks: list[_Rank], grace: float) -> None:
    """Every rank started here has exited when this returns: given `grace` seconds, then killed."""
    deadline = time.monotonic() + grace
    for rank in ranks:
        with contextlib.suppress(subprocess.TimeoutExpired):
            rank.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for rank in ranks:
        if rank.process.poll() is None:
            rank.process.kill()
            rank.process.wait()
        rank.log.close()


def _fit_in_group(
    model: nn.Module,
    data: Tensors,
    spec: TrainSpec,
    task: Task,
    reporter: Reporter,
    generator: torch.Generator,
    processes: int,
    seed: int,
    class_weights: torch.Tensor | None,
    val_class_weights: torch.Tensor | None,
    batch_transform: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None,
) -> tuple[History, dict[str, Any]]:
    """`fit_distributed` on a rank of a group that torchrun set up (its step hooks are entered by
    the caller on every rank, as rank 0's are)."""
    world, rank = dist.get_world_size(), dist.get_rank()
    if world != processes:
        raise MLError(
            f"the spec asks for {processes} data-parallel processes and torchrun started {world}; make them equal "
            "(train.distributed.processes)"
        )
    shards, rank_spec = _split(data, spec, world, seed)
    history, digests = train_rank(
        model,
        _rank_data(data, shards[rank]),
        rank_spec,
        task,
        reporter if rank == 0 else None,
        generator,
        seed=seed,
        class_weights=class_weights,
        val_class_weights=val_class_weights,
        batch_transform=batch_transform,
    )
    devices: list[Any] = [None] * world
    dist.all_gather_object(devices, str(data.X_train.device))
    return history, _report(shards, rank_spec, str(dist.get_backend()), devices, digests, "torchrun")


def fit_distributed(
    model: nn.Module,
    data: object,
    spec: TrainSpec,
    task: Task,
    reporter: Reporter,
    generator: torch.Generator,
    *,
    processes: int,
    seed: int,
    class_weights: torch.Tensor | None = None,
    val_class_weights: torch.Tensor | None = None,
    batch_transform: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
    step_hooks: Sequence[StepHook] = (),
) -> tuple[History, dict[str, Any]]:
    """`fit` on `processes` data-parallel processes: this one (rank 0, on the device of `data`)
    and the ones it starts. Arguments as `fit`'s (`data`: `Tensors`; a streamed data set is
    refused); `spec.batch_size` is the total batch of a step.

    Args:
        processes: how many (2 or more); on CUDA one GPU each, from the device of `data` on.
        seed: seeds the shards and the other ranks' generators.
        step_hooks: the optimizer step hooks the caller has entered around this call (transfer
            learning's scaled updates, hypergradient descent); the other ranks enter them too.

    Returns:
        Rank 0's history (the curves are means over the ranks) and the summary's
        ``distributed`` block: processes, backend, devices, batch and rows per process and
        whether all ranks ended with identical weights.

    In a process that torchrun started (on one host or several: `ml.torchrun`, which marks it
    with `TORCHRUN_MARKER`), it starts nothing: every rank of that group calls it with
    the same data and trains its own shard; `reporter` is used on rank 0 only.

    Raises:
        Cancelled, TrainingDiverged, ...: as `fit`, whichever rank raised it.
        RankFailed: another rank died, did not start or stopped answering.
        Any error of rank 0's own (its reporter's database or broker, CUDA memory...), unchanged,
        when no other rank exited or reported an error.
    """
    if not isinstance(data, Tensors):
        raise MLError(
            "data-parallel training (train.distributed) needs the data set in memory; "
            "this one is streamed shard by shard: train it on one process"
        )
    if processes < 2:
        raise ValueError(f"fit_distributed needs at least 2 processes, not {processes}; use fit")
    if spec.batch_size % processes:
        raise MLError(f"train.batch_size {spec.batch_size} is not a multiple of the {processes} processes")
    if under_torchrun():
        if not dist.is_initialized():
            raise MLError("under torchrun, run the spec with ml.torchrun (it sets up the process group)")
        return _fit_in_group(
            model,
            data,
            spec,
            task,
            reporter,
            generator,
            processes,
            seed,
            class_weights,
            val_class_weights,
            batch_transform,
        )
    if not _LAUNCH_LOCK.acquire(blocking=False):  # e.g. a thread pool running two runs in one process
        raise MLError("this process is already running a data-parallel run; one at a time per process")
    try:
        if dist.is_initialized():
            raise MLError(
                "this process already belongs to a process group that fit_distributed did not set up; "
                "under torchrun, run the spec with ml.torchrun"
            )
        return _launch(
            model,
            data,
            spec,
            task,
            reporter,
            generator,
            processes=processes,
            seed=seed,
            class_weights=class_weights,
            val_class_weights=val_class_weights,
            batch_transform=batch_transform,
            step_hooks=step_hooks,
        )
    finally:
        _LAUNCH_LOCK.release()


def _launch(
    model: nn.Module,
    data: Tensors,
    spec: TrainSpec,
    task: Task,
    reporter: Reporter,
    generator: torch.Generator,
    *,
    processes: int,
    seed: int,
    class_weights: torch.Tensor | None,
    val_class_weights: torch.Tensor | None,
    batch_transform: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None,
    step_hooks: Sequence[StepHook],
) -> tuple[History, dict[str, Any]]:
    """`fit_distributed` in a process of its own (a worker's): start ranks 1..N-1, set up the
    group, train rank 0's shard, tear everything down (under `_LAUNCH_LOCK`)."""
    device = data.X_train.device
    backend, devices = _placement(device, processes)
    shards, rank_spec = _split(data, spec, processes, seed)
    threads = max(1, torch.get_num_threads() // processes)  # the worker's share of the cores, split
    previous_threads = torch.get_num_threads()
    run_dir = run_folders.create()
    ranks: list[_Rank] = []
    owned = False  # this call set up the process group
    try:
        _write_job(
            run_dir,
            model,
            data,
            shards,
            rank_spec,
            {"task": task, "seed": seed, "threads": threads, "backend": backend, "devices": [str(d) for d in devices]},
            {
                "X_val": data.X_val,
                "y_val": data.y_val,
                "class_weights": class_weights,
                "val_weights": val_class_weights,
            },
            {"batch_transform": batch_transform, "step_hooks": list(step_hooks)},
        )
        store = dist.TCPStore("127.0.0.1", 0, processes, is_master=True, timeout=JOIN_TIMEOUT, wait_for_workers=False)
        for rank in range(1, processes):  # one by one: those started before a failure are ended below
            ranks.append(_start_rank(run_dir, rank, processes, store.port, threads))
        _wait_for_ranks(store, ranks, reporter)
        torch.set_num_threads(threads)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, store=store, rank=0, world_size=processes, timeout=COLLECTIVE_TIMEOUT)
        owned = True
        try:
            history, digests = train_rank(
                model,
                _rank_data(data, shards[0]),
                rank_spec,
                task,
                reporter,
                generator,
                seed=seed,
                class_weights=class_weights,
                val_class_weights=val_class_weights,
                batch_transform=batch_transform,
            )
        except (MLError, MemoryError):
            raise  # agreed by all ranks (cancel, divergence), or rank 0's own
        except Exception as exc:  # a collective failed (another rank died or stopped answering), or rank 0's own
            failure = _failure(ranks, processes, exc)
            if failure is None:
                raise  # its own type: an infrastructure error re-queues the run, a user's error is theirs
            raise failure from exc
    finally:
        if owned:
            dist.destroy_process_group()  # the other ranks' pending collectives fail: they exit
        # Ranks of a group that never formed wait for it until JOIN_TIMEOUT: nothing to wait for.
        _end_ranks(ranks, EXIT_GRACE_SECONDS if owned else 0.0)
        torch.set_num_threads(previous_threads)
        shutil.rmtree(run_dir, ignore_errors=True)
    report = _report(shards, rank_spec, backend, devices, digests, "worker")
    if not report["identical_weights"]:
        reporter.log(f"the data-parallel processes ended with different weights: {digests}; the result is rank 0's")
    return history, report

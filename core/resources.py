"""Routing by resources: which Celery queue an experiment goes to, which queues a worker
consumes, and why a queued experiment may wait forever.

Queues per resource class:

- ``trainlab`` (the default queue): specs that ask for nothing in particular; every worker takes them.
- ``cpu``: ``resources: {cpu_only: true}`` (small runs that must not hold a GPU); consumed by
  workers without GPUs, and by GPU workers started with ``--cpu-runs``.
- ``gpuN``: ``resources: {gpus: N}`` (or a ``device: cuda`` spec, as ``gpus: 1``); consumed by
  workers with at least N GPUs (a worker with two GPUs takes ``gpu1`` and ``gpu2``).

Plain dictionaries only (the stored spec as JSON): core does not import ml, and the API process
never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

DEFAULT_QUEUE = "trainlab"
CPU_QUEUE = "cpu"
GPU_QUEUE_PREFIX = "gpu"


def gpu_queue(gpus: int) -> str:
    return f"{GPU_QUEUE_PREFIX}{gpus}"


def _wants_cuda(spec: Mapping[str, Any]) -> bool:
    """The spec pins CUDA (a train run's ``train.device``, a PINN's ``device``; a fan-out's base)."""
    if spec.get("kind") == "pinn":
        return spec.get("device") == "cuda"
    train = spec.get("train")
    if isinstance(train, Mapping) and train.get("device") == "cuda":
        return True
    base = spec.get("base")
    return isinstance(base, Mapping) and _wants_cuda(base)


def requirements(spec: Mapping[str, Any]) -> tuple[int, bool]:
    """(GPUs, CPU only) an experiment asks for: its ``resources`` block, or one GPU for a spec
    that pins ``device: cuda``."""
    resources = spec.get("resources")
    resources = resources if isinstance(resources, Mapping) else {}
    gpus, cpu_only = int(resources.get("gpus") or 0), bool(resources.get("cpu_only"))
    if gpus == 0 and not cpu_only and _wants_cuda(spec):
        gpus = 1
    return gpus, cpu_only


def queue_for(spec: Mapping[str, Any]) -> str:
    """The queue an experiment with this (stored) spec is sent to."""
    gpus, cpu_only = requirements(spec)
    if cpu_only:
        return CPU_QUEUE
    return gpu_queue(gpus) if gpus > 0 else DEFAULT_QUEUE


def worker_queues(gpus: int, cpu_runs: bool | None = None) -> list[str]:
    """The queues a worker with `gpus` GPUs consumes. `cpu_runs` (default: only without GPUs)
    also takes the ``cpu`` queue's runs, which then do not use the worker's GPUs."""
    queues = [DEFAULT_QUEUE] + [gpu_queue(n) for n in range(1, gpus + 1)]
    if cpu_runs or (cpu_runs is None and gpus == 0):
        queues.append(CPU_QUEUE)
    return queues


def parse_queues(text: str | None) -> list[str]:
    return [q.strip() for q in (text or "").split(",") if q.strip()]


def describe_needs(spec: Mapping[str, Any]) -> str:
    gpus, cpu_only = requirements(spec)
    if cpu_only:
        return "resources.cpu_only: a worker that takes CPU-only runs"
    if gpus:
        return f"{gpus} GPU{'s' if gpus > 1 else ''} (resources.gpus or device: cuda): a worker with at least that many"
    return "any worker"


def unservable_reason(spec: Mapping[str, Any], live_workers: Sequence[tuple[str, Iterable[str]]]) -> str | None:
    """Why no live worker can take this experiment, or None when one can.

    Args:
        spec: the stored spec.
        live_workers: (name, queues it consumes) of each worker seen alive recently.
    """
    queue = queue_for(spec)
    if queue == DEFAULT_QUEUE:
        return None  # every worker consumes it; no live worker at all is /health's problem
    served = {name: set(queues) for name, queues in live_workers}
    if any(queue in queues for queues in served.values()):
        return None
    offered = sorted({q for queues in served.values() for q in queues})
    where = f"the live workers consume {', '.join(offered)}" if offered else "no worker is alive"
    return (
        f"no live worker can run it: it needs {describe_needs(spec)} (queue {queue}); {where}. "
        f"It stays queued until such a worker starts (`trainlab worker --gpus ...`, `--cpu-runs`), "
        "or cancel it and change resources."
    )

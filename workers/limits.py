"""Per-process resource limits of a worker's run processes."""

from __future__ import annotations

import resource


def apply_memory_budget(megabytes: int) -> None:
    """Cap this process's data memory (heap and anonymous mappings: numpy, torch on the CPU) at
    `megabytes`, so a run that needs more fails with MemoryError, its own error, instead of the
    kernel's OOM killer taking the worker (or a neighbour) down. 0: no cap. GPU memory is not
    counted (CUDA's address-space reservations are not writable data)."""
    if megabytes <= 0:
        return
    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))

"""This host's GPUs as NVML sees them (utilization, memory), for the per-GPU gauges of `/metrics`.
Optional: without `nvidia-ml-py` (`pip install trainlab[gpu]`) or without a driver, there are
none and nothing is said. Never imports torch (the API process stays light)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    uuid: str
    utilization_percent: float
    memory_used_bytes: int
    memory_total_bytes: int


@lru_cache
def _nvml() -> Any | None:
    try:
        import pynvml  # nvidia-ml-py: optional
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver or no GPU
        return None
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_readings() -> list[GpuReading]:
    """One reading per GPU of this host (NVML's physical numbering); [] without NVML."""
    nvml = _nvml()
    if nvml is None:
        return []
    readings = []
    try:
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            readings.append(
                GpuReading(
                    index=index,
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    utilization_percent=float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                    memory_used_bytes=int(memory.used),
                    memory_total_bytes=int(memory.total),
                )
            )
    except Exception:  # a GPU fell off the bus, the driver was reloaded: say nothing rather than fail
        return []
    return readings

"""What a run on a GPU used of it: the peak memory torch allocated (always, on CUDA) and the
GPU's utilization sampled through NVML while the run trained (when `nvidia-ml-py` is installed;
`pip install trainlab[gpu]`). Nothing is measured on the CPU.

NVML numbers its GPUs physically, whatever ``CUDA_VISIBLE_DEVICES`` says: the run's GPU is found
by its UUID (or PCI bus id), never by torch's index. Utilization is the device's, so another
process on the same GPU counts too; the summary says how many samples it rests on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def nvml() -> Any | None:
    """The initialised `pynvml` module, or None when it is not installed or finds no driver."""
    try:
        import pynvml  # nvidia-ml-py: optional
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver, no GPU: NVML has nothing to say
        return None
    return pynvml


def nvml_handle(pynvml: Any, index: int) -> Any | None:
    """NVML's handle of torch's CUDA device ``index`` (by UUID, else PCI bus id), or None."""
    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        text = str(uuid)
        for candidate in (text if text.startswith("GPU-") else f"GPU-{text}", text):
            try:
                return pynvml.nvmlDeviceGetHandleByUUID(candidate)
            except Exception:
                continue
    if hasattr(props, "pci_bus_id"):
        domain, device = getattr(props, "pci_domain_id", 0), getattr(props, "pci_device_id", 0)
        bus = f"{domain:08x}:{props.pci_bus_id:02x}:{device:02x}.0"
        try:
            return pynvml.nvmlDeviceGetHandleByPciBusId(bus)
        except Exception:
            return None
    return None


class _Sampler(threading.Thread):
    """Reads the GPU's utilization every `interval` seconds until stopped."""

    def __init__(self, pynvml: Any, handle: Any, interval: float) -> None:
        super().__init__(name="gpu-telemetry", daemon=True)
        self.pynvml, self.handle, self.interval = pynvml, handle, interval
        self.samples: list[int] = []
        self.memory_used: list[int] = []
        self.done = threading.Event()

    def sample(self) -> None:
        try:
            rates = self.pynvml.nvmlDeviceGetUtilizationRates(self.handle)
            used = self.pynvml.nvmlDeviceGetMemoryInfo(self.handle).used
        except Exception:
            return
        self.samples.append(int(rates.gpu))
        self.memory_used.append(int(used))

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()


class GpuTelemetry:
    """Filled in while the run trains; `summary()` is the block for the run's summary."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes: int | None = None
        self.sampler: _Sampler | None = None
        self.nvml_available = False

    def summary(self) -> dict[str, Any]:
        if self.device.type != "cuda":
            return {}
        out: dict[str, Any] = {}
        if self.peak_bytes is not None:
            out["peak_memory_mb"] = round(self.peak_bytes / 2**20, 1)
        if self.sampler is not None:
            samples = self.sampler.samples
            out["utilization"] = {
                "mean_percent": round(sum(samples) / len(samples), 1) if samples else None,
                "max_percent": max(samples) if samples else None,
                "samples": len(samples),
                "interval_seconds": self.sampler.interval,
                "device_memory_used_max_mb": round(max(self.sampler.memory_used) / 2**20) if samples else None,
            }
        elif not self.nvml_available:
            out["utilization"] = None  # NVML not installed or not usable: nothing measured
        return out


@contextmanager
def gpu_telemetry(device: torch.device, interval: float = 0.5) -> Iterator[GpuTelemetry]:
    """Measure the run's peak GPU memory and its GPU's utilization while the block runs."""
    telemetry = GpuTelemetry(device)
    if device.type != "cuda":
        yield telemetry
        return
    index = device.index if device.index is not None else torch.cuda.current_device()
    torch.cuda.reset_peak_memory_stats(index)
    pynvml = nvml()
    handle = nvml_handle(pynvml, index) if pynvml is not None else None
    if handle is not None:
        telemetry.nvml_available = True
        telemetry.sampler = _Sampler(pynvml, handle, interval)
        telemetry.sampler.sample()  # at least one sample, even for a short run
        telemetry.sampler.start()
    try:
        yield telemetry
    finally:
        if telemetry.sampler is not None:
            telemetry.sampler.sample()
            telemetry.sampler.done.set()
            telemetry.sampler.join(timeout=5)
        torch.cuda.synchronize(index)
        telemetry.peak_bytes = int(torch.cuda.max_memory_allocated(index))

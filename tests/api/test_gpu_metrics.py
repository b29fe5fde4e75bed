"""Per-GPU gauges on /metrics: from NVML when it is installed and finds a GPU, silently absent
otherwise (a CPU-only API host shows none and fails nothing)."""

from __future__ import annotations

import pytest
from prometheus_client.utils import floatToGoString

from core.gpus import GpuReading, gpu_readings


def test_gauges_follow_nvml_readings(client, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.routes import monitoring

    reading = GpuReading(0, "NVIDIA Test", "GPU-abc", 42.0, 2**30, 2**34)
    monkeypatch.setattr(monitoring, "gpu_readings", lambda: [reading])
    scrape = client.get("/metrics").text
    labels = 'gpu="0",name="NVIDIA Test",uuid="GPU-abc"'
    assert f"trainlab_gpu_utilization_percent{{{labels}}} 42.0" in scrape
    assert f"trainlab_gpu_memory_total_bytes{{{labels}}} {floatToGoString(2**34)}" in scrape
    monkeypatch.setattr(monitoring, "gpu_readings", list)
    assert "trainlab_gpu_" not in client.get("/metrics").text  # no NVML: no gauges, no error


def test_real_readings_when_nvml_sees_a_gpu() -> None:
    readings = gpu_readings()
    if not readings:
        pytest.skip("NVML is not installed or sees no GPU on this host: no per-GPU gauges")
    assert all(0 <= r.utilization_percent <= 100 and r.memory_total_bytes > 0 for r in readings)

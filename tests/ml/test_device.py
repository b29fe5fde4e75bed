"""Every kind runs on the device its spec asks for (auto: CUDA when the worker has one), and the
summary says which device and which GPU; GPU telemetry on CUDA. Tests that need a GPU run when
one is present and are skipped, with the reason, otherwise."""

from __future__ import annotations

import pytest
import torch

from ml.reporter import RecordingReporter
from ml.run import run_experiment
from ml.spec.summary import PinnSummary, TrainSummary
from ml.training.device import as_device, device_summary, gpu_info, resolve_device
from ml.training.gpu_telemetry import gpu_telemetry, nvml

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
needs_no_cuda = pytest.mark.skipif(CUDA, reason="checks the answer of a machine without CUDA")

PINN = {
    "kind": "pinn",
    "name": "pinn-device",
    "network": {"hidden": [8, 8]},
    "collocation": {"interior": 64, "initial": 16, "boundary": 8},
    "optimizer": {"adam_steps": 4, "lbfgs_steps": 2},
    "log_every": 2,
    "evaluation_grid": {"nx": 11, "nt": 6},
}
TRAIN = {
    "name": "train-device",
    "data": {"source": "synthetic/moons", "options": {"n_samples": 200}},
    "model": {"hidden": [8]},
    "train": {"epochs": 2, "batch_size": 32},
    "evaluate": {"plots": False},
}


def with_device(spec: dict, device: str) -> dict:
    if spec.get("kind") == "pinn":
        return {**spec, "device": device}
    return {**spec, "train": {**spec["train"], "device": device}}


def test_cpu_is_honoured_everywhere() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert as_device(None, "cpu") == torch.device("cpu")
    assert device_summary(torch.device("cpu")) == {"device": "cpu"}
    assert gpu_info(torch.device("cpu")) is None


@needs_no_cuda
def test_without_cuda_auto_is_the_cpu_and_cuda_is_refused_with_the_reason() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")


@pytest.mark.parametrize("spec", [PINN, TRAIN], ids=["pinn", "train"])
def test_a_run_without_a_device_uses_its_specs_choice(spec: dict) -> None:
    """What a worker does: no device given, the spec decides (the PINN used to pick the CPU)."""
    summary = run_experiment(spec, RecordingReporter())
    expected = "cuda" if CUDA else "cpu"
    assert summary["device"].split(":")[0] == expected
    assert ("gpu" in summary) == CUDA
    pinned = run_experiment(with_device(spec, "cpu"), RecordingReporter())
    assert pinned["device"] == "cpu" and "gpu" not in pinned


@needs_no_cuda
def test_a_pinn_asking_for_cuda_on_a_cpu_worker_fails_with_the_reason() -> None:
    with pytest.raises(ValueError, match="asks for device 'cuda'"):
        run_experiment(with_device(PINN, "cuda"), RecordingReporter())


def test_telemetry_on_the_cpu_measures_nothing() -> None:
    with gpu_telemetry(torch.device("cpu")) as telemetry:
        torch.ones(3).sum()
    assert telemetry.summary() == {}


@needs_cuda
@pytest.mark.parametrize("spec,model", [(PINN, PinnSummary), (TRAIN, TrainSummary)], ids=["pinn", "train"])
def test_on_cuda_the_summary_names_the_gpu_and_its_peak_memory(spec: dict, model: type) -> None:
    summary = run_experiment(with_device(spec, "cuda"), RecordingReporter())
    gpu = summary["gpu"]
    assert summary["device"] == f"cuda:{gpu['index']}"
    assert gpu["name"] == torch.cuda.get_device_name(gpu["index"])
    assert gpu["total_memory_mb"] > 0 and gpu["peak_memory_mb"] > 0
    parsed = model.model_validate(summary)
    assert parsed.gpu is not None and parsed.gpu.name == gpu["name"]


@needs_cuda
def test_on_cuda_utilization_comes_from_nvml_when_installed() -> None:
    summary = run_experiment(with_device(TRAIN, "cuda"), RecordingReporter())
    if nvml() is None:
        assert summary["gpu"]["utilization"] is None  # said, not guessed
        pytest.skip("nvidia-ml-py is not installed (pip install trainlab[gpu]): no utilization")
    utilization = summary["gpu"]["utilization"]
    assert utilization["samples"] >= 1 and 0 <= utilization["max_percent"] <= 100


@needs_cuda
def test_mixed_precision_trains_on_cuda_without_the_cpu_note() -> None:
    spec = with_device(TRAIN, "cuda")
    spec["train"] = {**spec["train"], "mixed_precision": True, "epochs": 3}
    reporter = RecordingReporter()
    summary = run_experiment(spec, reporter)
    assert not any("mixed_precision ignored" in m for m in reporter.messages)
    assert summary["epochs_run"] == 3
    assert all(v == v for v in reporter.series("train", "loss"))  # finite (no NaN from the scaler)


def test_children_of_a_fan_out_run_on_their_specs_device() -> None:
    """k-fold children (and every fan-out's) run through the same runners: their base's device."""
    from ml.local import LocalHost

    host = LocalHost()
    spec = {**TRAIN, "name": "kfold-device", "data": {**TRAIN["data"], "split": {"folds": 2, "test": 0.2}}}
    parent = host.run(with_device(spec, "cpu"))
    children = [host.experiments[i] for i in parent.children]
    assert parent.status == "succeeded" and len(children) == 2
    assert all(c.summary is not None and c.summary["device"] == "cpu" for c in children)
    auto = host.run(spec)
    devices = {host.experiments[i].summary["device"].split(":")[0] for i in auto.children}  # type: ignore[index]
    assert devices == {"cuda" if CUDA else "cpu"}

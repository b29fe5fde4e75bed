"""Device choice: CUDA when present and asked for (or `auto`), CPU otherwise; and what a run's
summary says about the device it ran on (which GPU, by index and name)."""

from __future__ import annotations

from typing import Any

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """Map a spec's device name to a torch device.

    A CUDA device carries its index (the current device of this process: a worker started for
    one GPU sees only that GPU, as index 0 of its ``CUDA_VISIBLE_DEVICES``).

    Raises:
        ValueError: ``cuda`` was asked for and this machine has none.
    """
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if name == "cuda":
        raise ValueError("the spec asks for device 'cuda' but this worker has no CUDA device")
    return torch.device("cpu")


def as_device(device: torch.device | str | None, name: str = "auto") -> torch.device:
    """The device a runner was given, or the spec's choice ``name`` when it was given none.
    A bare ``cuda`` gets the current device's index."""
    if device is None:
        return resolve_device(name)
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def gpu_info(device: torch.device) -> dict[str, Any] | None:
    """For a CUDA device: its index (in this process's numbering), its physical index when
    ``CUDA_VISIBLE_DEVICES`` names GPUs by number, its name and memory; None on the CPU."""
    if device.type != "cuda":
        return None
    import os

    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    info: dict[str, Any] = {
        "index": index,
        "name": props.name,
        "total_memory_mb": round(props.total_memory / 2**20),
        "capability": f"{props.major}.{props.minor}",
    }
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if index < len(visible):
        info["visible_as"] = visible[index]  # the host's GPU id this process's index stands for
    return info


def device_summary(device: torch.device) -> dict[str, Any]:
    """The summary's ``device`` string and, on CUDA, its ``gpu`` block."""
    out: dict[str, Any] = {"device": str(device)}
    gpu = gpu_info(device)
    if gpu is not None:
        out["gpu"] = gpu
    return out

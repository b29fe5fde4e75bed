"""Device choice: CUDA when present and asked for (or `auto`), CPU otherwise."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """Map a spec's device name to a torch device.

    Raises:
        ValueError: ``cuda`` was asked for and this machine has none.
    """
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        raise ValueError("the spec asks for device 'cuda' but this worker has no CUDA device")
    return torch.device("cpu")

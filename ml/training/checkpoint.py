"""Training checkpoints: everything needed to resume a run exactly where it stopped.

A checkpoint holds the epoch, the model, optimizer, learning-rate schedule and mixed-precision
scaler states, both random-number generators (batch order, dropout), the learning curves so far
and the early-stopping state. It is a plain structure of tensors, numbers, strings, lists and
dicts, written with `torch.save` and read back with ``weights_only=True`` (never pickle).
Resuming on CPU with the same seed gives the same final result as an uninterrupted run.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch

FORMAT = 1


@dataclass
class LoopState:
    """What the training loop carries from one epoch to the next, besides the modules."""

    epoch: int
    series: dict[str, dict[str, list[float]]]
    best_epoch: int
    best_val: float
    best_state: dict[str, torch.Tensor] | None
    first_loss: float | None


def pack(
    loop: LoopState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    generator: torch.Generator,
) -> bytes:
    """Serialize the state after `loop.epoch` finished."""
    state = {
        "format": FORMAT,
        "epoch": loop.epoch,
        "series": loop.series,
        "best_epoch": loop.best_epoch,
        "best_val": loop.best_val,
        "best_state": loop.best_state,
        "first_loss": loop.first_loss,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if hasattr(scaler, "state_dict") else None,
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def with_random_states(raw: bytes, states: Any) -> bytes:
    """The checkpoint `raw` with its random states (the generator's, torch's) replaced by
    ``states(epoch)``: a data-parallel rank other than 0 resumes its own streams, not rank 0's."""
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    state["generator"], state["torch_rng"] = states(int(state["epoch"]))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def restore(
    raw: bytes,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    generator: torch.Generator,
) -> LoopState:
    """Load a checkpoint into the modules and return the loop's state (resume at epoch + 1)."""
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError("not a trainlab checkpoint (or one of another format version)")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if state["scaler"] is not None and hasattr(scaler, "load_state_dict"):
        scaler.load_state_dict(state["scaler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    device = next(model.parameters()).device
    best = state["best_state"]
    return LoopState(
        epoch=int(state["epoch"]),
        series=state["series"],
        best_epoch=int(state["best_epoch"]),
        best_val=float(state["best_val"]),
        best_state={k: v.to(device) for k, v in best.items()} if best is not None else None,
        first_loss=state["first_loss"],
    )

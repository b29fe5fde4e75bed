"""Transfer learning: start from another experiment's stored weights, then either freeze the first
layers and train the rest, or fine-tune everything with a lower rate for the pretrained layers.

The weights come from the host through `RunContext.load_weights` (experiment id or name ->
the bytes of its ``model.pt``), and are loaded with ``weights_only=True``: anything but a plain
mapping of names to tensors is refused. The output layer is replaced by a fresh one when the
number of outputs differs (or `new_head` asks for it).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ml.context import RunContext
from ml.errors import MLError
from ml.reporter import Reporter
from ml.spec.transfer import InitSpec
from ml.training.optimizer_hooks import ScaledUpdates

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def load_state_dict(raw: bytes, source: str) -> dict[str, torch.Tensor]:
    """Read a ``model.pt`` safely.

    Args:
        raw: the file's bytes.
        source: the experiment it came from (for the error message).

    Returns:
        The state dict, on the CPU.

    Raises:
        MLError: the file cannot be unpickled with ``weights_only=True``, or is not a non-empty
            mapping of str names to tensors.
    """
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; none may pass
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MLError(f"the weights of experiment {source} cannot be loaded safely (weights_only): {first}") from None
    if not isinstance(state, dict) or not state:
        raise MLError(f"experiment {source}'s model.pt is not a plain state dict: it holds a {type(state).__name__}")
    bad = [repr(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise MLError(
            f"experiment {source}'s model.pt is not a plain state dict of tensors: {', '.join(bad[:5])} "
            "are not name -> tensor entries; refusing it"
        )
    return state


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's dense and convolution layers, input side first (what `freeze` counts)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]


@dataclass
class TransferSetup:
    """What `apply_init` did: the summary's ``init`` block and the lr scaling of pretrained layers."""

    summary: dict[str, Any] | None = None
    scaled: ScaledUpdates | None = None

    def training(self) -> contextlib.AbstractContextManager[None]:
        """Wrap the training loop in this: pretrained layers then learn at the lower rate."""
        return self.scaled.active() if self.scaled is not None else contextlib.nullcontext()


def _fetch(spec: InitSpec, context: RunContext | None) -> dict[str, torch.Tensor]:
    source = str(spec.from_experiment)
    loader = context.load_weights if context is not None else None
    if loader is None:
        raise MLError("init.from_experiment needs stored weights, and this run's host cannot load them")
    try:
        raw = loader(source)
    except (LookupError, ValueError) as exc:
        raise MLError(f"init.from_experiment: {exc}") from None
    if raw is None:
        raise MLError(f"init.from_experiment: experiment {source} has no stored weights (model.pt)")
    return load_state_dict(raw, source)


def _check_shapes(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], wanted: set[str], source: str) -> None:
    missing = sorted(k for k in wanted if k not in state)
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in wanted
        if k in state and state[k].shape != own[k].shape
    )
    extra = sorted(k for k in state if k not in own)
    if missing or mismatched or extra:
        details = "; ".join(
            f"{label}: {', '.join(items[:4])}"
            for label, items in (("missing", missing), ("different shape", mismatched), ("unexpected", extra))
            if items
        )
        raise MLError(
            f"experiment {source}'s weights do not fit this model ({details}); the model block must match the "
            "source's (type, hidden, channels, batch_norm), except for the output layer"
        )


def _freeze(model: nn.Module, layers: list[tuple[str, nn.Module]], n: int) -> int:
    """Freeze every module before the (n+1)-th weight layer; return the number of frozen values."""
    if n == 0:
        return 0
    stop = layers[n][1] if n < len(layers) else None
    frozen = 0
    for module in model.modules():
        if module is stop:
            break
        for p in module.parameters(recurse=False):
            p.requires_grad_(False)
            frozen += p.numel()
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            # Frozen batch norm keeps its running statistics too: always in eval mode.
            module.register_forward_pre_hook(lambda m, args: setattr(m, "training", False))
    return frozen


def apply_init(
    model: nn.Module, spec: InitSpec | None, context: RunContext | None, reporter: Reporter
) -> TransferSetup:
    """Load the source's weights into `model` and set up freezing and the pretrained layers' rate.

    Args:
        model: the freshly built model (same architecture as the source, up to its output layer).
        spec: the train spec's `init` block (None: nothing to do).
        context: provides `load_weights`.
        reporter: gets a line saying what was loaded.

    Returns:
        The summary block and the context in which to train.

    Raises:
        MLError: no loader, an unknown source, a file that is not a plain state dict, an
            architecture that does not match, or a `freeze` that leaves nothing to train.
    """
    if spec is None:
        return TransferSetup()
    source = str(spec.from_experiment)
    state = _fetch(spec, context)
    own = model.state_dict()
    layers = weight_layers(model)
    head_name, head = layers[-1]
    head_keys = {f"{head_name}.{k}" for k in head.state_dict()}
    head_fits = all(k in state and state[k].shape == own[k].shape for k in head_keys)
    new_head = spec.new_head if spec.new_head is not None else not head_fits
    if not new_head and not head_fits:
        raise MLError(f"experiment {source}'s output layer does not fit this task's outputs: set init.new_head: true")
    wanted = {k for k in own if not (new_head and k in head_keys)}
    _check_shapes(own, {k: v for k, v in state.items() if k in wanted or k not in head_keys}, wanted, source)
    model.load_state_dict({**own, **{k: state[k] for k in wanted}})
    n = spec.freeze or 0
    if n >= len(layers):
        raise MLError(f"init.freeze {n} would freeze every layer: the model has {len(layers)} (the last is the output)")
    frozen = _freeze(model, layers, n)
    pretrained = [p for name, p in model.named_parameters() if name in wanted and p.requires_grad]
    scaled = ScaledUpdates(pretrained, spec.pretrained_lr_factor) if spec.pretrained_lr_factor < 1.0 else None
    summary = {
        "from_experiment": spec.from_experiment,
        "loaded_tensors": len(wanted),
        "new_head": new_head,
        "frozen_layers": n,
        "frozen_parameters": frozen,
        "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "pretrained_lr_factor": spec.pretrained_lr_factor,
    }
    reporter.log(
        f"transfer from experiment {source}: {len(wanted)} tensors loaded, {n} layers frozen, "
        f"{'new' if new_head else 'pretrained'} output layer"
    )
    return TransferSetup(summary, scaled)

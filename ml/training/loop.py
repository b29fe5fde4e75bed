"""The training loop: one readable function, top to bottom.

Why it looks the way it does:
- the data lives as tensors on the device and is batched by index (a shuffled index tensor),
  so there is no per-row DataLoader and no host<->device copy per batch; a data set larger than
  the memory budget comes as `Streamed` instead (shard by shard, `ml.training.shard_stream`),
  through the same loop;
- running sums stay on the device; the host reads them once per epoch (one sync per epoch);
- the reporter is polled between batches so a cancel takes effect within a batch;
- schedules, penalties, max-norm and clipping all stay on the device (no `.item()` per batch).
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import sklearn.metrics as skm
import torch
from torch import nn

from ml.errors import Cancelled, DataError, TrainingDiverged
from ml.reporter import Reporter
from ml.spec import TrainSpec
from ml.spec.base import Task
from ml.spec.training import CLASSIFICATION_MONITORS, REGRESSION_MONITORS, EarlyStoppingSpec
from ml.training import checkpoint
from ml.training.optimizers import build_optimizer
from ml.training.regularization import Regularizer
from ml.training.schedules import build_schedule

# A finite loss this many times larger than the first epoch's counts as diverged too.
EXPLOSION_FACTOR = 1e6


@dataclass
class Tensors:
    """The three parts of the data, already on the training device."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor


class RowStream(Protocol):
    """Rows read part by part (`ml.training.shard_stream.ShardStream`)."""

    rows: int

    def labels(self) -> np.ndarray:
        """The targets in the order an unshuffled pass yields them."""
        ...

    def batches(
        self, batch_size: int, seed: int | None = None, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches on the device: shuffled by `seed` (None: in order), `limit` rows at most."""
        ...


@dataclass
class Streamed:
    """The training and validation rows of a data set larger than the memory budget."""

    train: RowStream
    validation: RowStream
    device: torch.device


@dataclass
class History:
    """Per-epoch values by split and name, plus where the run ended."""

    series: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    best_epoch: int = 0
    epochs_run: int = 0
    stopped_early: bool = False
    resumed_from: int | None = None  # the checkpoint's epoch, when the run was resumed

    def add(self, split: str, name: str, value: float) -> None:
        self.series.setdefault(split, {}).setdefault(name, []).append(value)


class WeightedCrossEntropy(nn.CrossEntropyLoss):
    """Cross-entropy whose weighted mean is over the rows' weights for soft labels too.

    With class weights, `nn.CrossEntropyLoss` divides the sum by the weights of the rows' classes
    for hard labels, but by the number of rows for probability targets (cutmix's soft labels): the
    training loss of `balance: class_weight` with cutmix would be on another scale than the
    validation loss (`evaluate_batches`), which the bias-variance diagnosis compares. Here a soft
    label's row weighs its probabilities' mix of the class weights (`target @ weight`), so a one-hot
    soft label gives the hard label's loss."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002 (torch's name)
        if self.weight is None or self.reduction != "mean" or target.ndim != input.ndim:  # hard labels: as torch
            return super().forward(input, target)
        total = nn.functional.cross_entropy(
            input, target, weight=self.weight, reduction="sum", label_smoothing=self.label_smoothing
        )
        return total / _row_weights(target, self.weight).sum()


def _row_weights(target: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """Each row's weight: its class's (hard labels), its probabilities' mix of them (soft labels)."""
    if target.ndim == 2:
        return target.to(class_weights.dtype) @ class_weights
    return class_weights[target]


def loss_function(task: Task, class_weights: torch.Tensor | None = None, reduction: str = "mean") -> nn.Module:
    """Cross-entropy on logits for classification (with class weights, the mean over the rows'
    weights, soft labels included), mean squared error for regression."""
    if task == "classification":
        return WeightedCrossEntropy(weight=class_weights, reduction=reduction)
    return nn.MSELoss(reduction=reduction)


def _task_metric(task: Task, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum of correct predictions (classification) or of squared errors (regression)."""
    return _score(task, _prediction(task, output), target)


def _prediction(task: Task, output: torch.Tensor) -> torch.Tensor:
    return output.argmax(dim=1) if task == "classification" else output.squeeze(-1).float()


def _score(task: Task, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if task == "classification" and target.ndim == 2:  # soft labels (cutmix): their largest share
        target = target.argmax(dim=1)
    return (prediction == target).sum() if task == "classification" else ((prediction - target) ** 2).sum()


class _TrainingScore:
    """The epoch's training metric, summed on the device with as few operations per batch as possible.

    Without a batch transform every batch is a slice of the epoch's shuffled order, so a batch
    only writes its predictions into an epoch-long buffer (one device operation) and the buffer
    is scored once, at the end of the epoch, against the targets in the same order. A batch
    transform may change a batch's targets or size, so then each batch is scored on its own.
    """

    def __init__(self, task: Task, y_train: torch.Tensor, rows: int, per_batch: bool) -> None:
        self.task, self.y_train, self.rows, self.per_batch = task, y_train, rows, per_batch
        dtype = torch.long if task == "classification" else torch.float32
        self.predictions = torch.empty(0 if per_batch else rows, dtype=dtype, device=y_train.device)
        self.order = torch.empty(0, dtype=torch.long)
        self.total = torch.zeros((), device=y_train.device)

    def start_epoch(self, order: torch.Tensor) -> None:
        self.order, self.total = order, torch.zeros((), device=self.y_train.device)

    def add(self, output: torch.Tensor, target: torch.Tensor, start: int) -> None:
        output = output.detach()
        if self.per_batch:
            self.total += _task_metric(self.task, output, target)
        elif self.task == "classification":
            torch.argmax(output, dim=1, out=self.predictions[start : start + len(target)])
        else:
            self.predictions[start : start + len(target)] = output.squeeze(-1)

    def epoch_total(self) -> torch.Tensor:
        if self.per_batch:
            return self.total
        return _score(self.task, self.predictions, self.y_train[self.order[: self.rows]])


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    task: Task,
    batch_size: int = 8192,
    class_weights: torch.Tensor | None = None,
    keep_outputs: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Mean loss, summed task metric and (when asked) the outputs over a split, in eval mode.

    With `class_weights` the loss is the weighted mean (each row counts its class's weight), as
    the training loss under class balancing is."""
    batches = ((X[start : start + batch_size], y[start : start + batch_size]) for start in range(0, len(X), batch_size))
    return evaluate_batches(model, batches, task, X.device, class_weights, keep_outputs)


@torch.no_grad()
def evaluate_batches(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    task: Task,
    device: torch.device,
    class_weights: torch.Tensor | None = None,
    keep_outputs: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`evaluate_loss` over (inputs, targets) batches on `device` (a streamed split's)."""
    model.eval()
    criterion = loss_function(task, class_weights, reduction="sum")
    total = torch.zeros((), device=device)
    weight = torch.zeros((), device=device)
    metric = torch.zeros((), device=device)
    outputs = []
    for xb, target in batches:
        out = model(xb)
        total += criterion(fit_shape(out, task), target)
        weight += _row_weights(target, class_weights).sum() if class_weights is not None else len(target)
        metric += _task_metric(task, out, target)
        if keep_outputs:
            outputs.append(out)
    kept = (torch.cat(outputs) if outputs else torch.empty(0, device=device)) if keep_outputs else None
    return total / weight.clamp(min=1e-12), metric, kept


def validation_score(name: str, task: Task, y_true: np.ndarray, output: torch.Tensor) -> float:
    """A validation metric for early stopping (``roc_auc``, ``f1``, ``r2``...), from the model's
    raw outputs; nan when it is undefined (e.g. one class only in the split)."""
    if task == "regression":
        predicted = output.squeeze(-1).float().cpu().numpy()
        scorers = {
            "rmse": lambda: skm.mean_squared_error(y_true, predicted) ** 0.5,
            "mae": lambda: skm.mean_absolute_error(y_true, predicted),
            "r2": lambda: skm.r2_score(y_true, predicted),
        }
        return float(scorers[name]())
    proba = output.float().softmax(dim=1).cpu().numpy()
    labels = list(range(proba.shape[1]))
    binary = proba.shape[1] == 2
    if name in ("roc_auc", "pr_auc") and len(np.unique(y_true)) < 2:
        return math.nan
    scorers = {
        "accuracy": lambda: skm.accuracy_score(y_true, proba.argmax(1)),
        "balanced_accuracy": lambda: skm.balanced_accuracy_score(y_true, proba.argmax(1)),
        "f1": lambda: skm.f1_score(
            y_true, proba.argmax(1), labels=labels, average="binary" if binary else "macro", zero_division=0
        ),
        "roc_auc": lambda: (
            skm.roc_auc_score(y_true, proba[:, 1])
            if binary
            else skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
        ),
        "pr_auc": lambda: (
            skm.average_precision_score(y_true, proba[:, 1])
            if binary
            else skm.average_precision_score(np.eye(len(labels))[y_true], proba, average="macro")
        ),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(scorers[name]())
        except ValueError:  # e.g. a class of the problem absent from the validation split
            return math.nan


def fit_shape(output: torch.Tensor, task: Task) -> torch.Tensor:
    """The model's output as the loss wants it: (n, classes) logits, or (n,) values for regression."""
    return output if task == "classification" else output.squeeze(-1)


def _mixed_precision(
    wanted: bool, device: torch.device, reporter: Reporter
) -> tuple[contextlib.AbstractContextManager[object], torch.amp.GradScaler]:
    """The autocast context and gradient scaler of a run (both inert unless CUDA and wanted)."""
    if wanted and device.type != "cuda":
        reporter.log(f"mixed_precision ignored on {device.type}: autocast is used on CUDA only")
    if not wanted or device.type != "cuda":
        return contextlib.nullcontext(), torch.amp.GradScaler("cuda", enabled=False)
    # bfloat16 has float32's range, so it needs no loss scaling; float16 (older GPUs) does.
    bf16 = torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 else torch.float16
    reporter.log(f"mixed precision: autocast to {dtype}".replace("torch.", ""))
    return torch.autocast("cuda", dtype=dtype), torch.amp.GradScaler("cuda", enabled=not bf16)


def _batch_starts(n: int, batch_size: int, model: nn.Module) -> range:
    """Where each batch of an epoch starts.

    Batch norm cannot normalize a single row in training mode, so under batch norm a last batch
    of one row is left out (a different row each epoch, since the order is reshuffled).
    """
    has_batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if has_batch_norm and n > 1 and n % batch_size == 1:
        return range(0, n - 1, batch_size)
    return range(0, n, batch_size)


def fit(
    model: nn.Module,
    data: Tensors | Streamed,
    spec: TrainSpec,
    task: Task,
    reporter: Reporter,
    generator: torch.Generator,
    *,
    class_weights: torch.Tensor | None = None,
    val_class_weights: torch.Tensor | None = None,
    batch_transform: Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    | None = None,
    epoch_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> History:
    """Train `model` in place on `data` as `spec` says.

    Args:
        model: the network, already on the device of the tensors.
        data: train and validation tensors, or streams of them (a data set larger than memory:
            each epoch draws one seed from `generator` for the stream's shuffles).
        spec: epochs, batch size, optimizer, schedule, regularization, early stopping, precision.
        task: ``classification`` or ``regression``.
        reporter: receives per-epoch metrics and is polled for cancellation.
        generator: the seeded generator that shuffles batches (determinism).
        class_weights: per-class weights of the training loss (class balancing).
        val_class_weights: per-class weights of the validation loss, so that it measures the same
            class mix as the training loss (`validation_class_weights`).
        batch_transform: augments each training batch on the fly (every epoch anew).
        epoch_reduce: data-parallel training (`ml.training.distributed`): turns this process's
            epoch values (train loss, train metric sum, validation loss and metric sum, penalty)
            into the same values on every process, so that they all take the same decisions.

    Returns:
        The learning curves (``train/lr`` is the rate each epoch trained at) and where training
        stopped.

    Raises:
        Cancelled: the reporter asked to stop.
        TrainingDiverged: the loss became nan/inf or exploded.
    """
    streamed = isinstance(data, Streamed)
    device = data.device if isinstance(data, Streamed) else data.X_train.device
    n = data.train.rows if isinstance(data, Streamed) else len(data.X_train)
    n_val = data.validation.rows if isinstance(data, Streamed) else len(data.X_val)
    starts = _batch_starts(n, spec.batch_size, model)
    rows_per_epoch = min(n, starts[-1] + spec.batch_size) if len(starts) else 0
    optimizer = build_optimizer(model.parameters(), spec.optimizer)
    schedule = build_schedule(spec.schedule, optimizer, spec.epochs, len(starts))
    regularizer = Regularizer(model, spec.regularization)
    autocast, scaler = _mixed_precision(spec.mixed_precision, device, reporter)
    criterion = loss_function(task, class_weights)
    # A stream's batches are not slices of one order: each is scored on its own.
    y_scored = torch.empty(0, device=device) if isinstance(data, Streamed) else data.y_train
    score = _TrainingScore(task, y_scored, rows_per_epoch, per_batch=batch_transform is not None or streamed)
    metric_name = "accuracy" if task == "classification" else "rmse"
    history = History()
    stopping = spec.early_stopping
    monitor = _monitor(stopping, task, has_validation=n_val > 0)
    extra_metric = monitor not in ("loss", metric_name)  # computed only when monitored
    y_val = None
    if extra_metric:
        y_val = data.validation.labels() if isinstance(data, Streamed) else data.y_val.cpu().numpy()
    sign = -1.0 if stopping is not None and stopping.higher_is_better else 1.0
    best_val, best_state, first_loss = math.inf, None, None  # best_val: sign x the monitored value

    start_epoch = 1
    saved = reporter.load_checkpoint()
    if saved is not None:  # a re-queued run (its worker died or shut down): carry on from there
        loop = checkpoint.restore(saved, model, optimizer, schedule.scheduler, scaler, generator)
        history.series, history.best_epoch, history.epochs_run = loop.series, loop.best_epoch, loop.epoch
        best_val, best_state, first_loss = loop.best_val, loop.best_state, loop.first_loss
        start_epoch, history.resumed_from = loop.epoch + 1, loop.epoch
        reporter.log(f"resumed from the checkpoint of epoch {loop.epoch}")

    for epoch in range(start_epoch, spec.epochs + 1):
        model.train()
        # Read before the epoch: schedules change the rate after it (one_cycle after each batch).
        lr = optimizer.param_groups[0]["lr"]
        batches = _epoch_batches(data, n, starts, spec.batch_size, rows_per_epoch, generator, device, score)
        loss_sum = torch.zeros((), device=device)
        penalty_sum = torch.zeros((), device=device)
        seen = 0  # rows trained on (a batch transform may change a batch's size)
        for start, (xb, yb) in zip(starts, batches, strict=False):
            if reporter.should_stop():
                raise Cancelled(f"cancelled during epoch {epoch}")
            if batch_transform is not None:
                xb, yb = batch_transform(xb, yb, generator)
            xb = regularizer.drop_inputs(xb)
            with autocast:
                output = model(xb)
                loss = criterion(fit_shape(output, task), yb)
            # The penalty is minimized with the loss but reported apart, so that the training
            # loss stays comparable with the validation loss (the bias-variance diagnosis).
            objective = loss
            if regularizer.has_penalty:
                penalty = regularizer.penalty()
                objective = loss + penalty
                penalty_sum += penalty.detach()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(objective).backward()
            if spec.regularization.clip_grad_norm is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                regularizer.clip_gradients()
            scaler.step(optimizer)
            scaler.update()
            regularizer.constrain()  # max-norm acts on the weights the step just produced
            schedule.after_batch()
            loss_sum += loss.detach() * len(yb)
            score.add(output, yb, start)
            seen += len(yb)

        if isinstance(data, Streamed):
            val_batches = data.validation.batches(spec.batch_size)  # batches the memory budget allows
            val_loss, val_metric, val_output = evaluate_batches(
                model, val_batches, task, device, class_weights=val_class_weights, keep_outputs=extra_metric
            )
        else:
            val_loss, val_metric, val_output = evaluate_loss(
                model, data.X_val, data.y_val, task, class_weights=val_class_weights, keep_outputs=extra_metric
            )
        # The one host sync of the epoch.
        epoch_values = torch.stack(
            [loss_sum / seen, score.epoch_total(), val_loss, val_metric, penalty_sum / len(starts)]
        )
        if epoch_reduce is not None:
            epoch_values = epoch_reduce(epoch_values)
        train_loss, train_metric, v_loss, v_metric, penalty_mean = epoch_values.tolist()
        _check_divergence(train_loss, first_loss, epoch, lr)
        first_loss = train_loss if first_loss is None else first_loss

        values = {
            "train": {"loss": train_loss, metric_name: _finish_metric(task, train_metric, seen), "lr": lr},
        }
        if regularizer.has_penalty:
            values["train"]["penalty"] = penalty_mean
        if n_val:
            values["validation"] = {"loss": v_loss, metric_name: _finish_metric(task, v_metric, n_val)}
            if extra_metric and val_output is not None and y_val is not None:
                values["validation"][monitor] = validation_score(monitor, task, y_val, val_output)
        for split, named in values.items():
            for name, value in named.items():
                history.add(split, name, value)
        history.epochs_run = epoch
        reporter.on_epoch_end(epoch, values)

        schedule.after_epoch(v_loss if n_val else train_loss)
        monitored = sign * (values["validation"][monitor] if n_val else train_loss)
        if math.isnan(monitored):
            monitored = math.inf  # undefined this epoch (one class in the split): never the best
        if monitored < best_val - (stopping.min_delta if stopping else 0.0):
            best_val, history.best_epoch = monitored, epoch
            if stopping and stopping.restore_best:
                best_state = copy.deepcopy(model.state_dict())
        elif stopping and epoch - history.best_epoch >= stopping.patience:
            history.stopped_early = True
            reporter.log(f"early stop at epoch {epoch}: validation {monitor} best at epoch {history.best_epoch}")
            break
        if reporter.checkpoint_due():
            loop = checkpoint.LoopState(epoch, history.series, history.best_epoch, best_val, best_state, first_loss)
            reporter.save_checkpoint(checkpoint.pack(loop, model, optimizer, schedule.scheduler, scaler, generator))

    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def _epoch_batches(
    data: Tensors | Streamed,
    n: int,
    starts: range,
    batch_size: int,
    rows: int,
    generator: torch.Generator,
    device: torch.device,
    score: _TrainingScore,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The epoch's training batches: slices of a shuffled order of the tensors, or the stream's
    batches shuffled by a seed drawn from `generator` (so a checkpoint's generator state
    resumes the same way)."""
    if isinstance(data, Streamed):
        score.start_epoch(torch.empty(0, dtype=torch.long))
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        return data.train.batches(batch_size, seed, rows)
    # Shuffle on the CPU with the seeded generator (same order on every device).
    order = torch.randperm(n, generator=generator).to(device, non_blocking=True)
    score.start_epoch(order)
    X, y = data.X_train, data.y_train
    return ((X[idx], y[idx]) for idx in (order[start : start + batch_size] for start in starts))


def _monitor(stopping: EarlyStoppingSpec | None, task: Task, has_validation: bool) -> str:
    """The validation curve early stopping watches (``loss`` without early stopping)."""
    if stopping is None or stopping.monitor == "val_loss":
        return "loss"
    fits = CLASSIFICATION_MONITORS if task == "classification" else REGRESSION_MONITORS
    if stopping.monitor not in fits:
        raise DataError(
            f"train.early_stopping.monitor {stopping.monitor} does not apply to a {task} task; "
            f"use val_loss or one of {', '.join(fits)}"
        )
    if not has_validation:
        raise DataError(
            f"train.early_stopping.monitor {stopping.monitor} needs a validation split (data.split.validation > 0)"
        )
    return stopping.metric


def _finish_metric(task: Task, total: float, count: int) -> float:
    return total / count if task == "classification" else math.sqrt(total / count)


def _check_divergence(loss: float, first_loss: float | None, epoch: int, lr: float) -> None:
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"diverged at epoch {epoch}: loss is {loss}; the learning rate {lr:g} is probably too "
            "large (try 10x smaller, or a warm-up)"
        )
    if first_loss is not None and first_loss > 0 and loss > EXPLOSION_FACTOR * first_loss:
        raise TrainingDiverged(
            f"diverged at epoch {epoch}: loss exploded to {loss:.3g} from {first_loss:.3g}; the "
            f"learning rate {lr:g} is probably too large"
        )

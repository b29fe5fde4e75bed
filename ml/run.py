"""Run an experiment spec end to end: spec -> data -> preprocessing -> model -> training ->
evaluation -> summary. This is the entry point a worker (or a notebook) calls."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ml.context import RunContext
from ml.data.shards import ShardedDataset
from ml.data.sources import Dataset, Split, load_dataset, split_dataset
from ml.data.subsets import drop_cross_split_duplicates, select_classes, training_rows
from ml.models import build_model
from ml.preprocessing import fit_preprocessing
from ml.preprocessing.balance import validation_class_weights
from ml.reporter import Reporter
from ml.search.trial import trial_reporter
from ml.spec import PinnExperimentSpec, TrainExperimentSpec, parse_spec
from ml.spec.base import Task
from ml.training.device import as_device, device_summary
from ml.training.gpu_telemetry import gpu_telemetry
from ml.training.loop import Tensors, fit
from ml.training.lr_finder import run_lr_range_test
from ml.training.optimizer_hooks import Hypergradient
from ml.training.streamed import RunInputs, check_streamable, stream_report, streamed_inputs
from ml.training.transfer import apply_init

# A folder data set larger than the worker's memory budget comes back sharded (streamed).
UploadResolver = Callable[[str, Any], Dataset | ShardedDataset]


def seed_everything(seed: int) -> torch.Generator:
    """Seed numpy and torch; return the generator that orders batches."""
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _tensors(X: np.ndarray, y: np.ndarray, task: Task, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    target_dtype = torch.long if task == "classification" else torch.float32
    return (
        torch.as_tensor(X, dtype=torch.float32, device=device),
        torch.as_tensor(y, dtype=target_dtype, device=device),
    )


def state_dict_bytes(model: torch.nn.Module) -> bytes:
    """The model's weights as a plain state dict (loadable with ``weights_only=True``)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


@torch.no_grad()
def predict(model: torch.nn.Module, X: torch.Tensor, task: Task, batch_size: int = 8192) -> np.ndarray:
    """Class probabilities (classification) or predicted values (regression), as numpy."""
    model.eval()
    outs = [model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
    out = torch.cat(outs) if outs else torch.empty(0)
    out = out.softmax(dim=1) if task == "classification" else out.squeeze(-1)
    return out.float().cpu().numpy()


def _in_memory_inputs(spec: TrainExperimentSpec, data: Dataset, split: Split, device: torch.device) -> RunInputs:
    """The run's data as tensors on the device, preprocessed by a pipeline fitted on the training rows."""
    pipeline, X_train, y_train = fit_preprocessing(
        spec.preprocess,
        data.X[split.train],
        data.y[split.train],
        data.feature_names,
        task=data.task,
        seed=spec.seed,
        image_shape=data.image_shape,
        n_classes=data.n_classes if data.task == "classification" else None,
    )
    X_val, X_test = pipeline.transform(data.X[split.validation]), pipeline.transform(data.X[split.test])
    Xt, yt = _tensors(X_train, y_train, data.task, device)
    Xv, yv = _tensors(X_val, data.y[split.validation], data.task, device)
    tensors = Tensors(Xt, yt, Xv, yv)
    return RunInputs(
        pipeline=pipeline,
        y_train=y_train,
        fit_data=tensors,
        features=X_train.shape[1],
        validation_output=lambda model: predict(model, Xv, data.task),
        test_output=lambda model: predict(model, _tensors(X_test, data.y[split.test], data.task, device)[0], data.task),
        reference_rows=lambda: (X_train, y_train, X_val, data.y[split.validation]),
        raw_features=lambda rows: data.X[rows],
        evaluation_data=data,
        lr_range_data=tensors,
    )


def _sample_rows(rows: np.ndarray, y: np.ndarray, per_class: int = 2) -> np.ndarray:
    """The first `per_class` of `rows` of each class (what `plots.samples_png` draws), in order."""
    picks = [rows[y[rows] == c][:per_class] for c in np.unique(y[rows])]
    return np.sort(np.concatenate(picks)) if picks else rows[:0]


def _image_shape(pipeline: Any, data: Dataset | ShardedDataset) -> tuple[int, ...] | None:
    """The image shape survives only when preprocessing kept every pixel column."""
    if data.image_shape is None or list(pipeline.feature_names) != list(data.feature_names):
        return None
    return data.image_shape


def run_train(
    spec: TrainExperimentSpec,
    reporter: Reporter,
    device: torch.device | None = None,
    resolve_upload: UploadResolver | None = None,
    context: RunContext | None = None,
) -> dict[str, Any]:
    """Train and evaluate one model.

    Args:
        spec: a validated ``train`` spec.
        reporter: receives metrics and artifacts; polled for cancellation.
        device: where to train (default: the spec's choice).
        resolve_upload: loads ``dataset/<id>`` sources.

    Returns:
        The JSON-able summary (``test`` holds the final test metrics).
    """
    from ml.evaluation.diagnosis import constant_loss
    from ml.evaluation.evaluate import evaluate_run
    from ml.evaluation.reference import reference_loss

    started = time.perf_counter()
    reporter = trial_reporter(spec, reporter, context)  # a search trial reports to its study and may be pruned
    generator = seed_everything(spec.seed)
    device = as_device(device, spec_device(spec, spec.train.device))
    data = select_classes(load_dataset(spec.data, spec.seed, resolve_upload), spec.data.classes)
    if isinstance(data, ShardedDataset):
        check_streamable(spec, data)  # before anything is split or fitted
        reporter.log(f"data set of {data.describe_budget()}: {data.shards} shards of {data.shard_rows} rows")
    s = spec.data.split
    split = split_dataset(data, s.test, s.validation, s.stratify, spec.seed, s.folds, s.fold)
    deduplicated = None
    dedup = next((step for step in spec.preprocess if step.step == "deduplicate"), None)
    if dedup is not None and dedup.across_splits:  # type: ignore[attr-defined]
        assert isinstance(data, Dataset)  # a sharded data set refuses deduplicate (check_streamable, above)
        split, deduplicated = drop_cross_split_duplicates(data, split, dedup.tolerance, dedup.same_label)  # type: ignore[attr-defined]
    split = training_rows(split, data, spec.data, spec.seed)  # few-shot cap, ensemble member's sample
    if isinstance(data, ShardedDataset):
        inputs = streamed_inputs(spec, data, split, device)
    else:
        inputs = _in_memory_inputs(spec, data, split, device)
    pipeline, y_train = inputs.pipeline, inputs.y_train
    n_outputs = data.n_classes if data.task == "classification" else 1
    model = build_model(spec.model, inputs.features, n_outputs, image_shape=_image_shape(pipeline, data)).to(device)
    init = apply_init(model, spec.init, context, reporter)  # transfer learning: weights, freezing, lr factor
    hd = spec.trial.hypergradient if spec.trial else None
    hypergradient = Hypergradient(list(model.parameters()), hd) if hd else None
    reporter.log(f"training on {device}: {len(split.train)} train / {len(split.validation)} validation rows")
    class_weights = val_class_weights = None
    if pipeline.class_weights is not None:
        class_weights = torch.as_tensor(pipeline.class_weights, dtype=torch.float32, device=device)
    if data.task == "classification" and any(step.step == "balance" for step in spec.preprocess):
        weights = validation_class_weights(y_train, pipeline.class_weights, data.y[split.validation], n_outputs)
        val_class_weights = torch.as_tensor(weights, dtype=torch.float32, device=device)
    # Before training, on a copy of the model and with generators of its own: training is unchanged.
    lr_range = None
    if inputs.lr_range_data is not None:  # a streamed run refuses the range test (check_streamable)
        lr_range = run_lr_range_test(
            model,
            inputs.lr_range_data,
            spec.train,
            data.task,
            torch.Generator().manual_seed(spec.seed),
            reporter,
            class_weights=class_weights,
        )
    fit_started = time.perf_counter()
    with (
        init.training(),
        hypergradient.active() if hypergradient else contextlib.nullcontext(),
        gpu_telemetry(device) as telemetry,
    ):
        distributed = None
        fit_args = (model, inputs.fit_data, spec.train, data.task, reporter, generator)
        fit_options: dict[str, Any] = {
            "class_weights": class_weights,
            "val_class_weights": val_class_weights,
            "batch_transform": pipeline.batch_transform,
        }
        if spec.processes() > 1:  # train.distributed: one process per GPU (resources.gpus), or CPU processes
            from ml.training.distributed import fit_distributed

            hooks = [hook for hook in (init.scaled, hypergradient) if hook is not None]
            history, distributed = fit_distributed(
                *fit_args, processes=spec.processes(), seed=spec.seed, step_hooks=hooks, **fit_options
            )
        else:
            history = fit(*fit_args, **fit_options)
    training_seconds = time.perf_counter() - fit_started

    reporter.save_artifact("model.pt", state_dict_bytes(model), "application/octet-stream")
    # The picture depends on the data set only: drawn once by a top-level run, not again by every
    # search trial, k-fold fold and ensemble member of it.
    child = spec.trial is not None or s.fold is not None or spec.data.sample is not None
    if spec.evaluate.plots and not child and data.image_shape is not None and data.task == "classification":
        from ml import plots

        rows = _sample_rows(split.train, data.y)  # what the decoded inputs look like, before preprocessing
        samples = plots.samples_png(inputs.raw_features(rows), data.y[rows], data.image_shape, data.class_names)
        reporter.save_artifact("samples.png", samples, "image/png")
    summary = evaluate_run(
        spec=spec,
        data=inputs.evaluation_data,
        split=split,
        history=history,
        val_output=inputs.validation_output(model),
        test_output=inputs.test_output(model),
        reporter=reporter,
        seal_test=s.fold is not None,
        baseline_loss=constant_loss(data.task, y_train, pipeline.class_weights),
        reference=lambda: reference_loss(
            data.task,
            *inputs.reference_rows(),
            n_classes=n_outputs,
            class_weights=pipeline.class_weights,
            val_class_weights=None if val_class_weights is None else val_class_weights.cpu().numpy(),
            seed=spec.seed,
        ),
    )
    summary.update(
        {
            "task": data.task,
            "dataset": {
                "source": spec.data.source,
                "rows": int(len(data.y)),
                "features": int(data.n_features if isinstance(data, ShardedDataset) else data.X.shape[1]),
                "classes": data.class_names,
                "split": {k: int(len(getattr(split, k))) for k in ("train", "validation", "test")},
            },
            "preprocess": pipeline.reports,
            "epochs_run": history.epochs_run,
            "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early,
            "resumed_from_epoch": history.resumed_from,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            **run_device_summary(device, telemetry.summary()),
            "training_seconds": round(training_seconds, 3),
            "total_seconds": round(time.perf_counter() - started, 3),
        }
    )
    if deduplicated is not None:
        summary["leakage"]["deduplicated"] = deduplicated
    if isinstance(data, ShardedDataset):
        summary["dataset"]["streamed"] = stream_report(data, split)
    if lr_range is not None:
        summary["lr_range_test"] = {k: lr_range[k] for k in ("suggested_lr", "rule")} | {"steps": len(lr_range["lrs"])}
    if distributed is not None:
        summary["distributed"] = distributed
    if init.summary:
        summary["init"] = init.summary
    if hypergradient:
        summary["hypergradient"] = hypergradient.report()
    return summary


def spec_device(spec: Any, name: str) -> str:
    """The device a spec asks for: ``cpu`` when its resources say ``cpu_only`` (it was routed to a
    CPU-only worker's queue), else its ``device`` field."""
    resources = getattr(spec, "resources", None)
    if resources is not None and resources.cpu_only:
        if name == "cuda":
            raise ValueError("resources.cpu_only and device 'cuda' contradict each other; set one of them")
        return "cpu"
    return name


def run_device_summary(device: torch.device, telemetry: dict[str, Any]) -> dict[str, Any]:
    """The summary's ``device`` and, on CUDA, its ``gpu`` block (which GPU, what the run used of it)."""
    out = device_summary(device)
    if "gpu" in out:
        out["gpu"] = {**out["gpu"], **telemetry}
    return out


def _run_pinn(
    spec: PinnExperimentSpec, reporter: Reporter, device: torch.device | None = None, **_: Any
) -> dict[str, Any]:
    """The PINN on the given device, else the spec's ``device`` (auto: CUDA when the worker has one)."""
    from ml.pinn.trainer import run_pinn

    return run_pinn(spec, reporter, as_device(device, spec_device(spec, spec.device)))


def _run_analytic(spec: Any, reporter: Reporter, **kwargs: Any) -> dict[str, Any]:
    from ml.search.objectives import run_analytic

    return run_analytic(spec, reporter, **kwargs)


# kind -> runner. Fan-out kinds (kfold, search, ensemble, compare) are planned by the host,
# which runs each child through this same table.
RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "train": run_train,
    "pinn": _run_pinn,
    "analytic": _run_analytic,
}


def run_experiment(
    spec: Any,
    reporter: Reporter | None = None,
    device: torch.device | None = None,
    resolve_upload: UploadResolver | None = None,
    context: RunContext | None = None,
) -> dict[str, Any]:
    """Run any single-run experiment kind from a spec model or dict; returns its summary.

    Args:
        spec: the spec (fan-out kinds are planned with `ml.planners.planner_for` instead).
        reporter: receives metrics and artifacts; polled for cancellation.
        device: where to train (default: the spec's choice).
        resolve_upload: loads ``dataset/<id>`` sources.
        context: where the run lives (experiment id, Optuna storage for search trials).
    """
    if isinstance(spec, dict):
        spec = parse_spec(spec)
    return RUNNERS[spec.kind](
        spec, reporter or Reporter(), device=device, resolve_upload=resolve_upload, context=context or RunContext()
    )

"""What a finished run reports: the typed `summary` of each experiment kind.

The contract between the `ml` runners and the summary's readers (the API's schema, the client,
the CLI and the dashboard). Pydantic only, like the rest of `ml.spec`: importing this never
imports torch. Every model allows extra keys, so a runner may report more than is listed here
without breaking a reader; what is listed is what readers may rely on. A model dumps only the
keys its summary had (`SummaryModel`), so a summary read through these models and written back
out is the summary that was stored.

`parse_summary(kind, status, data)` picks the model: the kind's own for a succeeded run, the
children table for a fan-out parent that did not succeed, and the plain `Summary` for anything
else (an older run's summary is shown as it is rather than refused: `AnySummary`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_serializer

from ml.spec.base import Task

# Metrics by name: numbers (accuracy, f1, rmse...) or structured ones (confusion_matrix, per_class).
Metrics = dict[str, Any]


class SummaryModel(BaseModel):
    """Base of every summary block: extra keys allowed, and only the keys given are dumped (a
    summary without ``test`` is served without it, not with ``"test": null``)."""

    model_config = ConfigDict(extra="allow")

    # Unannotated on purpose: with a return annotation pydantic would publish that type as the
    # model's serialization schema instead of the model's fields.
    @model_serializer(mode="wrap")
    def _only_given(self, handler):  # type: ignore[no-untyped-def]
        data = handler(self)
        if not isinstance(data, dict):
            return data
        given = self.model_fields_set | set(self.model_extra or {})
        return {k: v for k, v in data.items() if k in given}


class AnySummary(SummaryModel):
    """A summary of any shape (what a model refuses is still shown, as it is)."""


# --- blocks ------------------------------------------------------------------------------------


class Diagnosis(SummaryModel):
    """The bias-variance verdict from the learning curves, with its evidence and advice."""

    verdict: Literal["underfit", "overfit", "good"]
    confidence: Literal["low", "medium", "high"]
    evidence: dict[str, Any]
    advice: list[str]
    explanation: str


class Threshold(SummaryModel):
    """A binary classifier's decision threshold and where it was chosen."""

    value: float
    method: str
    chosen_on: str | None


class SplitSizes(SummaryModel):
    train: int
    validation: int
    test: int


class StreamedInfo(SummaryModel):
    """How a data set larger than the worker's data memory budget was read: shard by shard."""

    decoded_bytes: int
    budget_bytes: int | None
    shards: int
    shard_rows: int
    shard_bytes: int
    train_rows: int
    note: str


class DatasetInfo(SummaryModel):
    source: str
    rows: int
    features: int
    classes: list[str]
    split: SplitSizes
    streamed: StreamedInfo | None = None  # present when the data set was streamed


class Leakage(SummaryModel):
    """Rows of validation and test whose features also appear in the training part."""

    validation_rows_in_train: int
    test_rows_in_train: int


class LrRangeTest(SummaryModel):
    suggested_lr: float | None
    rule: str
    steps: int


class TransferInit(SummaryModel):
    """What transfer learning (`init`) loaded and froze."""

    from_experiment: int | str
    loaded_tensors: int
    new_head: bool
    frozen_layers: int
    frozen_parameters: int
    trainable_parameters: int
    pretrained_lr_factor: float


class HypergradientReport(SummaryModel):
    """Where hypergradient descent took the learning rate."""

    rule: str
    beta: float
    steps: int
    initial_lr: float | None = None
    final_lr: float | None = None
    min_lr: float | None = None
    max_lr: float | None = None


class ChildRow(SummaryModel):
    """One child of a fan-out parent (every fan-out summary has the table)."""

    id: int
    name: str
    status: str
    seconds: float | None
    error: str | None


class MeanStd(SummaryModel):
    mean: float
    std: float
    n: int


class Spread(MeanStd):
    min: float
    max: float


class Summary(SummaryModel):
    """Any summary whose common keys have their usual types: the keys readers look for in every
    kind, none required."""

    test: Metrics | None = None
    validation: dict[str, Any] | None = None
    diagnosis: Diagnosis | None = None
    warnings: list[Any] | None = None


# --- single runs --------------------------------------------------------------------------------


class TrainSummary(Summary):
    """A `train` run (a k-fold fold, an ensemble member and a transfer run too). ``test`` is
    absent for a k-fold fold (its parent evaluates the test split once); ``threshold`` and
    ``baseline`` are a classifier's."""

    task: Task
    dataset: DatasetInfo
    preprocess: list[dict[str, Any]]
    diagnosis: Diagnosis
    final: dict[str, dict[str, float]]
    leakage: Leakage
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    resumed_from_epoch: int | None
    parameters: int
    device: str
    gpu: GpuReport | None = None
    training_seconds: float
    total_seconds: float
    threshold: Threshold | None = None
    baseline: dict[str, Any] | None = None
    lr_range_test: LrRangeTest | None = None
    init: TransferInit | None = None
    hypergradient: HypergradientReport | None = None
    distributed: DataParallelReport | None = None


class DataParallelReport(SummaryModel):
    """How a data-parallel run (`train.distributed.processes` > 1) trained: DDP over
    `processes` processes talking through `backend` (nccl on GPUs, gloo on the CPU)."""

    processes: int
    backend: str
    devices: list[str]
    batch_size_per_process: int
    rows_per_process: int
    identical_weights: bool
    launcher: str  # worker: the run's process started the others; torchrun: it started them all


class GpuUtilization(SummaryModel):
    """The GPU's utilization sampled through NVML while the run trained (the whole device's)."""

    mean_percent: float | None
    max_percent: int | None
    samples: int
    interval_seconds: float


class GpuReport(SummaryModel):
    """Which GPU a run used (torch's index in the worker's process, the host's id it stands for
    when `CUDA_VISIBLE_DEVICES` names one) and what it used of it."""

    index: int
    name: str
    total_memory_mb: int
    visible_as: str | None = None
    peak_memory_mb: float | None = None
    utilization: GpuUtilization | None = None


class PinnSteps(SummaryModel):
    adam: int
    lbfgs: int
    total: int


class PinnSummary(Summary):
    """A physics-informed network: its losses, and its error against the exact solution."""

    final_loss: float
    loss_terms: dict[str, float]
    validation_loss: float
    relative_l2_error: float
    max_abs_error: float
    steps: PinnSteps
    lbfgs_evaluations: int
    training_seconds: float
    time_limit_reached: bool
    parameters: int
    collocation_points: dict[str, int]
    device: str
    gpu: GpuReport | None = None
    dtype: str
    torch_threads: int


class Point(SummaryModel):
    h1: float
    h2: float


class AnalyticMinimum(Point):
    value: float


class AnalyticSummary(Summary):
    """The analytic objective f(h1, h2) (after a gradient descent when the spec has one)."""

    value: float
    function: str
    minimum: AnalyticMinimum
    h1: float
    h2: float
    evaluations: int
    total_seconds: float
    start: Point | None = None
    hypergradient: HypergradientReport | None = None


# --- fan-out parents ----------------------------------------------------------------------------


class FanoutSummary(Summary):
    """A fan-out parent: the table of its children, which the workers' host adds to every parent
    (all a parent has when it did not succeed; `ml.LocalHost` adds none)."""

    children: list[ChildRow] | None = None


class FoldRow(SummaryModel):
    """One fold's validation metrics (extra keys: the metrics by name)."""

    fold: int
    experiment: int


class KFoldSummary(FanoutSummary):
    """Validation metrics as mean and spread over folds; the test split evaluated once."""

    folds: int
    validation: dict[str, MeanStd]  # narrower than Summary's
    per_fold: list[FoldRow]
    diagnosis_by_fold: list[str | None]
    test: Metrics
    test_rows: int
    test_model: str


class CompareRow(SummaryModel):
    """One variant, ranked (extra key: the `rank_by` metric's value)."""

    label: str
    experiment: int
    status: str
    rank: int
    best_validation_loss: float | None
    final_train_loss: float | None
    gap: float | None
    test: dict[str, float]
    verdict: str | None
    seconds: float | None
    error: str | None


class CompareSummary(FanoutSummary):
    ranking: list[CompareRow]
    rank_by: str
    best: str


class Objective(SummaryModel):
    metric: str
    direction: Literal["minimize", "maximize"]


class TrialRow(SummaryModel):
    """One trial of a search."""

    trial: int
    experiment: int
    params: dict[str, Any]
    value: float | None
    state: Literal["complete", "pruned", "failed"]
    seconds: float | None
    adapted: dict[str, Any] | None = None
    pruned_at_epoch: int | None = None
    last_value: float | None = None
    error: str | None = None


class BestTrial(SummaryModel):
    trial: int
    experiment: int
    value: float
    params: dict[str, Any]
    adapted: dict[str, Any] | None = None


class TrialCounts(SummaryModel):
    complete: int
    pruned: int
    failed: int


class SearchSummary(FanoutSummary):
    """A hyperparameter search: the best trial, every trial, parameter importances. ``test`` is
    the best trial's (chosen on validation)."""

    method: str
    study: str
    objective: Objective
    budget: int
    best: BestTrial
    counts: TrialCounts
    trials: list[TrialRow]
    importances: dict[str, float] | None
    importances_note: str | None = None
    evaluations: int | None = None


class MemberRow(SummaryModel):
    member: int
    experiment: int
    train_rows: int | None
    test: dict[str, float]


class EnsembleResult(SummaryModel):
    members: int
    sampling: str
    combine: str
    test: Metrics


class EnsembleSummary(FanoutSummary):
    """Bagging: each member's test metrics, their spread, and the combined model's."""

    members: list[MemberRow]
    member_spread: dict[str, Spread]
    ensemble: EnsembleResult
    test: Metrics
    gain_over_member_mean: dict[str, float]
    test_rows: int
    failed_members: list[str] | None = None


# The summary of a succeeded run, by the experiment's kind (`ml.spec.experiment_kind`).
SUMMARY_MODELS: dict[str, type[Summary]] = {
    "train": TrainSummary,
    "kfold": KFoldSummary,
    "pinn": PinnSummary,
    "analytic": AnalyticSummary,
    "search": SearchSummary,
    "ensemble": EnsembleSummary,
    "compare": CompareSummary,
}
FANOUT_KINDS = frozenset({"kfold", "search", "ensemble", "compare"})

# Any stored summary, as the API publishes it (most specific first).
RunSummary = (
    TrainSummary
    | KFoldSummary
    | PinnSummary
    | AnalyticSummary
    | SearchSummary
    | EnsembleSummary
    | CompareSummary
    | FanoutSummary
    | Summary
    | AnySummary
)


def summary_model(kind: str, status: str) -> type[Summary]:
    """The model of a summary of this kind and status (see the module's docstring)."""
    if status == "succeeded" and kind in SUMMARY_MODELS:
        return SUMMARY_MODELS[kind]
    if kind in FANOUT_KINDS:
        return FanoutSummary
    return Summary


def parse_summary(kind: str, status: str, data: dict[str, Any] | None) -> RunSummary | None:
    """A stored summary read through its model; a summary its model refuses (written by an older
    release) is read as the plain `Summary`, or as `AnySummary` if even that refuses it, every
    key kept.

    Args:
        kind: the experiment's kind (``train``, ``kfold``, ``search``...).
        status: its status; only a succeeded run's summary is complete.
        data: the summary as stored (None while there is none).
    """
    if data is None:
        return None
    from pydantic import ValidationError

    for model in (summary_model(kind, status), Summary):
        try:
            return model.model_validate(data)
        except ValidationError:
            continue
    return AnySummary.model_validate(data)

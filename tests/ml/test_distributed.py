"""Data-parallel training (DistributedDataParallel) on the CPU: two gloo processes, the second
started by `fit_distributed` as a real subprocess, train one model: the loss decreases, both
end with identical weights, the result is close to one process on the same total batch,
checkpoints resume, a cancel stops every process and a rank that dies fails the run. The spec's
refusals of impossible process counts are here too."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import yaml
from pydantic import ValidationError
from torch import nn

from ml import torchrun
from ml.errors import Cancelled, MLError
from ml.reporter import RecordingReporter
from ml.run import run_experiment
from ml.spec import TrainSpec, parse_spec
from ml.spec.summary import TrainSummary
from ml.training.distributed import RankFailed, fit_distributed, shard_rows, weights_digest
from ml.training.loop import Tensors, fit

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds rank processes in /proc (Linux)")
SPEC = TrainSpec.model_validate(
    {"epochs": 6, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}, "device": "cpu"}
)


def blobs(seed: int = 0) -> Tensors:
    """Three Gaussian classes in 4 dimensions, 384 training and 128 validation rows (sorted by class)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    y = torch.arange(3).repeat_interleave(512 // 3 + 1)[:512]
    X = centers[y] + torch.randn(512, 4, generator=g)
    validation = torch.arange(0, 512, 4)
    train = torch.ones(512, dtype=torch.bool)
    train[validation] = False
    return Tensors(X[train], y[train], X[validation], y[validation])


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def rank_processes() -> list[int]:
    """The rank processes this test process started that still exist (zombies included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"ml.training.distributed_rank" in command:
            found.append(int(entry.name))
    return found


class StopAfter(RecordingReporter):
    """Asks to stop once epoch `epoch` has ended (a cancel, or a worker's graceful shutdown)."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def should_stop(self) -> bool:
        return any(int(row["step"]) >= self.epoch for row in self.rows)


def train_two(model: nn.Module, reporter: RecordingReporter, spec: TrainSpec = SPEC) -> tuple:
    return fit_distributed(
        model, blobs(), spec, "classification", reporter, torch.Generator().manual_seed(0), processes=2, seed=0
    )


@pytest.fixture(scope="module")
def two_processes() -> tuple:
    """One uninterrupted two-process run: (model, history, report, reporter)."""
    model, reporter = mlp(), RecordingReporter()
    history, report = train_two(model, reporter)
    assert rank_processes() == []
    return model, history, report, reporter


def test_shards_are_equal_sized_disjoint_and_cover_every_row() -> None:
    shards = shard_rows(385, 2, seed=0)
    assert [len(s) for s in shards] == [193, 193]
    rows = torch.cat(shards)
    assert set(rows.tolist()) == set(range(385))  # one row repeated to even them out
    assert len(set(shards[0].tolist()) & set(shards[1].tolist())) <= 1
    labels = torch.arange(385) // 193  # rows sorted by class: each shard gets both classes
    assert 0.3 < float(labels[shards[0]].float().mean()) < 0.7


def test_two_gloo_processes_learn_one_model(two_processes: tuple) -> None:
    model, history, report, reporter = two_processes
    assert report["processes"] == 2 and report["backend"] == "gloo" and report["devices"] == ["cpu", "cpu"]
    assert report["batch_size_per_process"] == 16 and report["rows_per_process"] == 192
    assert report["identical_weights"]  # SHA-256 of both ranks' final state dicts, gathered
    losses = reporter.series("train", "loss")
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0]
    assert history.series["train"]["loss"] == losses  # the curves are the mean over both ranks
    assert reporter.series("validation", "accuracy")[-1] > 0.85
    assert reporter.checkpoint is not None  # rank 0 saved them


def test_two_processes_end_close_to_one_process_on_the_same_total_batch(two_processes: tuple) -> None:
    _, history, _, _ = two_processes
    single = RecordingReporter()
    fit(mlp(), blobs(), SPEC, "classification", single, torch.Generator().manual_seed(0))
    two_loss, one_loss = history.series["validation"]["loss"][-1], single.series("validation", "loss")[-1]
    assert abs(two_loss - one_loss) < 0.1 * one_loss
    two_acc, one_acc = history.series["validation"]["accuracy"][-1], single.series("validation", "accuracy")[-1]
    assert abs(two_acc - one_acc) <= 0.03


def test_resume_from_a_checkpoint_ends_as_the_uninterrupted_run(two_processes: tuple) -> None:
    uninterrupted = two_processes[0]
    stopped = StopAfter(3)
    with pytest.raises(Cancelled):
        train_two(mlp(), stopped)
    assert max(int(r["step"]) for r in stopped.rows) == 3 and stopped.checkpoint is not None

    resumed = RecordingReporter()
    resumed.checkpoint = stopped.checkpoint
    model = mlp(seed=1)  # other initial weights: the checkpoint's replace them
    history, report = train_two(model, resumed)
    assert history.resumed_from == 3 and report["identical_weights"]
    assert sorted({int(r["step"]) for r in resumed.rows}) == [4, 5, 6]
    assert history.series["train"]["loss"][:3] == stopped.series("train", "loss")
    for name, value in uninterrupted.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=1e-5, atol=1e-6)
    assert rank_processes() == []


def test_every_process_draws_its_own_random_numbers(tmp_path: Path) -> None:
    """Dropout masks, shuffles and augmentation differ between the ranks: each has its streams."""

    class Record:  # a batch transform (augmentation) that writes down its draws, on every rank
        def __init__(self, folder: str) -> None:
            self.folder = folder

        def __call__(self, xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator) -> tuple:
            with open(f"{self.folder}/rank{torch.distributed.get_rank()}", "a") as out:
                out.write(f"{torch.rand(1).item()} {torch.rand(1, generator=generator).item()}\n")
            return xb, yb

    torch.manual_seed(0)  # rank 0's global stream, as a run seeds it
    spec = SPEC.model_copy(update={"epochs": 2})
    fit_distributed(
        mlp(), blobs(), spec, "classification", RecordingReporter(), torch.Generator().manual_seed(0),
        processes=2, seed=0, batch_transform=Record(str(tmp_path)),
    )  # fmt: skip
    draws = [[line.split() for line in (tmp_path / f"rank{r}").read_text().splitlines()] for r in (0, 1)]
    assert len(draws[0]) == len(draws[1]) == 2 * 192 // 16
    for stream in (0, 1):  # torch's global one (dropout), the run's generator (shuffles, augmentation)
        assert not {d[stream] for d in draws[0]} & {d[stream] for d in draws[1]}


def test_a_cancel_stops_every_process_promptly() -> None:
    reporter = StopAfter(2)
    spec = SPEC.model_copy(update={"epochs": 500})
    with pytest.raises(Cancelled):
        train_two(mlp(), reporter, spec)
    assert max(int(r["step"]) for r in reporter.rows) == 2  # stopped at the next epoch's first batch
    assert rank_processes() == []


class StopAtOnce(RecordingReporter):
    def should_stop(self) -> bool:
        return True


def test_a_cancel_before_the_group_forms_ends_the_ranks_started() -> None:
    """The ranks wait for a group that will never form: they are ended at once, none is left."""
    with pytest.raises(Cancelled, match="while the data-parallel processes started"):
        spec = SPEC.model_copy(update={"batch_size": 48})
        fit_distributed(mlp(), blobs(), spec, "classification", StopAtOnce(), torch.Generator(), processes=3, seed=0)
    assert rank_processes() == []


class KillRankOne(RecordingReporter):
    """Kills the other rank with SIGKILL after epoch 2 (an out-of-memory kill, a crash)."""

    def on_epoch_end(self, step: int, metrics) -> None:
        super().on_epoch_end(step, metrics)
        if step == 2:
            for pid in rank_processes():
                os.kill(pid, signal.SIGKILL)


def test_a_rank_that_dies_fails_the_run_and_nothing_is_left_behind() -> None:
    reporter = KillRankOne()
    with pytest.raises(RankFailed, match="process 1 of 2 was killed by signal 9"):
        train_two(mlp(), reporter, SPEC.model_copy(update={"epochs": 500}))
    assert max(int(r["step"]) for r in reporter.rows) <= 3
    assert rank_processes() == []


class DatabaseGone(RecordingReporter):
    """Rank 0's reporter loses its connection after epoch 2 (the database or the broker went away)."""

    def on_epoch_end(self, step: int, metrics) -> None:
        super().on_epoch_end(step, metrics)
        if step == 2:
            raise ConnectionError("the database went away")


def test_an_error_of_rank_zero_itself_keeps_its_type() -> None:
    """An infrastructure error re-queues the run (workers.tasks.INFRASTRUCTURE_ERRORS): it is not
    turned into a failure of another rank."""
    with pytest.raises(ConnectionError, match="the database went away"):
        train_two(mlp(), DatabaseGone(), SPEC.model_copy(update={"epochs": 500}))
    assert rank_processes() == []


class StartsAnother(RecordingReporter):
    """While its run's ranks start (before their process group exists) it starts a second run in
    the same process: a thread pool's other run, at the worst moment."""

    def __init__(self) -> None:
        super().__init__()
        self.second: str | None = None

    def should_stop(self) -> bool:
        if self.second is None:
            try:
                train_two(mlp(), RecordingReporter(), SPEC.model_copy(update={"epochs": 1}))
                self.second = "it ran"
            except MLError as exc:
                self.second = str(exc)
        return False


def test_a_second_run_in_the_same_process_is_refused_even_while_the_first_starts() -> None:
    reporter = StartsAnother()
    train_two(mlp(), reporter, SPEC.model_copy(update={"epochs": 1}))
    assert reporter.second is not None and "already running a data-parallel run" in reporter.second
    assert rank_processes() == []


def test_a_process_group_that_torchrun_did_not_start_is_not_taken_for_torchrun() -> None:
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        with pytest.raises(MLError, match="did not set up"):
            train_two(mlp(), RecordingReporter())
    finally:
        dist.destroy_process_group()


def test_a_train_spec_with_two_processes_runs_and_says_so() -> None:
    spec = {
        "name": "ddp",
        "data": {"source": "synthetic/moons", "options": {"n_samples": 400}},
        "model": {"hidden": [16]},
        "train": {"epochs": 3, "batch_size": 32, "device": "cpu", "distributed": {"processes": 2}},
        "evaluate": {"plots": False},
    }
    reporter = RecordingReporter()
    summary = run_experiment(copy.deepcopy(spec), reporter)
    assert summary["distributed"]["processes"] == 2 and summary["distributed"]["backend"] == "gloo"
    assert summary["distributed"]["identical_weights"] and summary["device"] == "cpu"
    assert summary["distributed"]["launcher"] == "worker"
    typed = TrainSummary.model_validate(summary)  # the published summary model holds it
    assert typed.distributed is not None and typed.distributed.backend == "gloo"
    assert summary["epochs_run"] == 3 and "accuracy" in summary["test"]
    assert "model.pt" in reporter.artifacts and len(reporter.series("train", "loss")) == 3


TRAIN = {"name": "r", "data": {"source": "builtin/iris"}}


@pytest.mark.parametrize(
    "spec,message",
    [
        ({**TRAIN, "train": {"distributed": {"processes": 2}}}, "say so with train.device: cpu"),
        ({**TRAIN, "train": {"device": "cpu", "batch_size": 63, "distributed": {"processes": 2}}}, "use e.g. 62"),
        ({**TRAIN, "resources": {"gpus": 3}, "train": {"distributed": {"processes": 3}}}, "64 is not a multiple"),
        ({**TRAIN, "resources": {"gpus": 2}, "train": {"distributed": {"processes": 4}}}, "differ"),
        ({**TRAIN, "resources": {"gpus": 2}, "train": {"device": "cpu", "distributed": {"processes": 2}}}, "is cpu"),
        ({**TRAIN, "train": {"device": "cpu", "distributed": {"processes": 17}}}, "less than or equal to 16"),
        ({**TRAIN, "train": {"device": "cpu", "distributed": {"processes": 0}}}, "greater than or equal to 1"),
    ],
)
def test_impossible_process_counts_are_refused(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_spec(spec)


def test_process_counts_a_spec_asks_for() -> None:
    assert parse_spec(TRAIN).processes() == 1  # type: ignore[union-attr]
    assert parse_spec({**TRAIN, "resources": {"gpus": 2}}).processes() == 1  # type: ignore[union-attr]
    two = {**TRAIN, "resources": {"gpus": 2}, "train": {"distributed": {"processes": 2}}}
    assert parse_spec(two).processes() == 2  # type: ignore[union-attr]
    assert parse_spec({**TRAIN, "resources": {"gpus": 1}}).processes() == 1  # type: ignore[union-attr]
    cpu = {**TRAIN, "resources": {"cpu_only": True}, "train": {"distributed": {"processes": 4}}}
    assert parse_spec(cpu).processes() == 4  # type: ignore[union-attr]


def test_a_v1_spec_that_asks_for_two_gpus_still_routes_and_trains_one_process() -> None:
    """resources.gpus meant 'a worker with N GPUs' before data-parallel training existed; stored
    specs (an odd batch, device: cpu) still parse and mean that (tests/ml/spec_fixtures/v1/)."""
    stored = json.loads((Path(__file__).parent / "spec_fixtures" / "v1" / "two-gpus.json").read_text())
    spec = parse_spec(stored)
    assert spec.spec_version == 1 and spec.resources is not None and spec.resources.gpus == 2
    assert spec.processes() == 1 and spec.train.batch_size == 25 and spec.train.device == "cpu"  # type: ignore[union-attr]


def test_weights_digest_tells_weights_apart() -> None:
    a, b = mlp(0), mlp(0)
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        b[0].weight[0, 0] += 1e-7
    assert weights_digest(a) != weights_digest(b)


def test_torchrun_runs_a_train_spec_on_its_processes(tmp_path: Path) -> None:
    """The multi-host path on one host: torchrun's c10d rendezvous (--standalone) starts both
    processes; each prepares the data, trains its shard, and rank 0 writes the results."""
    spec = {
        "name": "torchrun",
        "data": {"source": "synthetic/moons", "options": {"n_samples": 400}},
        "model": {"hidden": [16]},
        "train": {"epochs": 3, "batch_size": 32, "device": "cpu", "distributed": {"processes": 2}},
        "evaluate": {"plots": False},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "ml.torchrun", str(tmp_path / "spec.yaml"), str(tmp_path / "out")]
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["distributed"]["launcher"] == "torchrun" and summary["distributed"]["processes"] == 2
    assert summary["distributed"]["backend"] == "gloo" and summary["distributed"]["identical_weights"]
    assert summary["epochs_run"] == 3 and (tmp_path / "out" / "model.pt").exists()
    assert done.stdout.count("[train]") == 3  # rank 0 alone prints its epochs


def test_torchrun_refuses_a_spec_whose_process_count_is_not_its_world_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Else every rank would train the whole data set alone (a spec without train.distributed)."""
    spec = {**TRAIN, "train": {"device": "cpu", "distributed": {"processes": 2}}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc-per-node 1
    assert torchrun.main([str(tmp_path / "spec.yaml"), str(tmp_path / "out")]) == 2
    assert "asks for 2 data-parallel process(es) (train.distributed.processes) and torchrun started 1" in (
        capsys.readouterr().err
    )
    assert not dist.is_initialized()


def test_the_ranks_exit_when_the_process_that_started_them_is_killed(tmp_path: Path) -> None:
    """A worker killed with SIGKILL (no cleanup of its own) leaves no rank behind."""
    marker = tmp_path / "epoch"
    script = f"""
import sys, torch
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from ml.reporter import Reporter
from tests.ml.test_distributed import SPEC, blobs, mlp
from ml.training.distributed import fit_distributed

class Mark(Reporter):
    def on_epoch_end(self, step, metrics):
        open({str(marker)!r}, "w").write(str(step))

fit_distributed(mlp(), blobs(), SPEC.model_copy(update={{"epochs": 5000}}), "classification", Mark(),
                torch.Generator().manual_seed(0), processes=2, seed=0)
"""
    worker = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:] if worker.stderr else ""
            assert time.monotonic() < deadline, "no epoch within 300 s"
            time.sleep(0.2)
        ranks = [pid for pid in all_rank_processes() if parent_of(pid) == worker.pid]
        assert len(ranks) == 1
        folders = list(Path(tempfile.gettempdir()).glob(f"trainlab-ddp-{worker.pid}-*"))
        assert len(folders) == 1 and folders[0].stat().st_mode & 0o777 == 0o700  # the users' rows in it
    finally:
        worker.kill()
        worker.wait()
    deadline = time.monotonic() + 60
    while alive(ranks[0]):
        assert time.monotonic() < deadline, "the rank outlived its parent by 60 s"
        time.sleep(0.2)
    assert not folders[0].exists()  # the rank removed what its killed parent could not


def parent_of(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def all_rank_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"ml.training.distributed_rank" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found

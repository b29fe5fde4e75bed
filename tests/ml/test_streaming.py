"""Folder data sets larger than the memory budget: decoded into shards member by member, trained
shard by shard through the same loop, with the same summary.

The proof the issue asks for is `test_an_archive_four_times_the_budget_trains_in_bounded_memory`:
a subprocess decodes and trains an image archive whose features are 4x the data memory budget
it is given, and its peak RSS grows by far less than the decoded features."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from ml.data.perceptual import load_folder_dataset
from ml.data.shards import (
    ShardedDataset,
    feature_bytes,
    in_memory_bytes,
    load_sharded,
    shard_rows_for,
    should_stream,
    write_shards,
)
from ml.data.uploads import DatasetError
from ml.errors import Cancelled, DataError
from ml.preprocessing import fit_preprocessing
from ml.preprocessing.pipeline import fit_streamed_preprocessing
from ml.reporter import RecordingReporter
from ml.run import run_experiment
from ml.spec import AudioSpec, ImageSpec, PreprocessStep
from ml.spec.summary import TrainSummary
from ml.training.shard_stream import ShardStream

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("horizontal", "vertical", "checker")


def pattern(label: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size, 3) uint8: stripes one way or the other, or a checkerboard, of a random period,
    phase and colour, on a random background with noise."""
    period = int(rng.integers(3, 7))
    phase = int(rng.integers(0, period))
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    if label == "horizontal":
        on = ((i + phase) // period) % 2 == 0
    elif label == "vertical":
        on = ((j + phase) // period) % 2 == 0
    else:
        on = (((i + phase) // period) + ((j + phase) // period)) % 2 == 0
    background, colour = rng.uniform(0, 120, 3), rng.uniform(130, 255, 3)
    picture = np.where(on[..., None], colour, background) + rng.normal(0, 25, (size, size, 3))
    return np.clip(picture, 0, 255).astype(np.uint8)


def write_archive(path: Path, per_class: int, size: int, seed: int = 0) -> Path:
    """A zip of ``patterns/<class>/<class>.000NN.png`` (written member by member)."""
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as archive:
        for label in CLASSES:
            for k in range(per_class):
                buffer = io.BytesIO()
                Image.fromarray(pattern(label, size, rng)).save(buffer, "PNG", compress_level=1)
                archive.writestr(f"patterns/{label}/{label}.{k:05d}.png", buffer.getvalue())
    return path


def spec(**train: object) -> dict[str, object]:
    return {
        "name": "streamed",
        "seed": 3,
        "data": {"source": "dataset/1", "split": {"test": 0.25, "validation": 0.2}},
        "preprocess": [{"step": "standardize"}, {"step": "image", "flip": True, "probability": 0.5}],
        "model": {"type": "mlp", "hidden": [32]},
        "train": {"epochs": 6, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.002}, "device": "cpu", **train},
        "evaluate": {"metrics": ["accuracy", "confusion_matrix"], "plots": False},
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 120-image archive and its shards of 8 rows (a budget of 64 KB: 15 shards, each smaller
    than a batch)."""
    folder = tmp_path_factory.mktemp("small")
    archive = write_archive(folder / "patterns.zip", per_class=40, size=16)
    write_shards(archive, "image", folder / "shards", image=ImageSpec(size=(16, 16)), budget_bytes=64 * 1024)
    return archive, folder / "shards"


def test_shards_hold_exactly_the_in_memory_features(small: tuple[Path, Path]) -> None:
    archive, shards = small
    memory = load_folder_dataset(archive, "image", image=ImageSpec(size=(16, 16)))
    sharded = load_sharded(shards, 64 * 1024)
    assert sharded.shards == 15 and sharded.shard_rows == 8 and sharded.class_names == memory.class_names
    assert np.array_equal(sharded.y, memory.y) and sharded.image_shape == memory.image_shape
    assert np.array_equal(sharded.gather(np.arange(len(sharded.y))), memory.X)
    rows = np.array([119, 3, 70, 3])
    assert np.array_equal(sharded.gather(rows), memory.X[rows])


def test_a_shard_of_another_size_is_refused_never_paired_with_other_labels(
    small: tuple[Path, Path], tmp_path: Path
) -> None:
    """A shard whose rows are not those the set's description says (another writer's, of other
    rows per shard; a truncated last one) is an error naming it, not rows read against wrong labels."""
    archive, shards = small
    other = write_shards(archive, "image", tmp_path / "other", image=ImageSpec(size=(16, 16)), budget_bytes=384 * 1024)
    assert other["shard_rows"] == 16
    mixed = tmp_path / "mixed"
    shutil.copytree(shards, mixed)
    shutil.copy(tmp_path / "other" / "shard-00001.npy", mixed / "shard-00001.npy")  # the same width
    data, intact = load_sharded(mixed), load_sharded(shards)
    assert np.array_equal(data.gather(np.arange(8)), intact.gather(np.arange(8)))
    with pytest.raises(DatasetError, match=r"shard-00001\.npy .* holds \(16, 768\) float32 values, not 8 rows of 768"):
        data.gather(np.array([8]))
    np.save(mixed / "shard-00014.npy", np.load(shards / "shard-00014.npy")[:5])  # the last one: 120 - 14 x 8 rows
    with pytest.raises(DatasetError, match=r"shard-00014\.npy .* \(5, 768\) float32 values, not 8 rows"):
        data.gather(np.array([119]))


@pytest.mark.parametrize("features", ["log_mel", "mfcc", "waveform"])
def test_audio_shards_hold_exactly_the_in_memory_features(tmp_path: Path, features: str) -> None:
    """70 clips: more than one feature batch of 64, so the batches must be the same as in memory."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        for k in range(70):
            label = "low" if k % 2 else "high"
            t = np.arange(int(rng.uniform(0.3, 0.5) * 8000)) / 8000
            clip = 0.5 * np.sin(2 * np.pi * (300 if label == "low" else 2000) * t) + rng.normal(0, 0.05, len(t))
            buffer = io.BytesIO()
            soundfile.write(buffer, clip.astype(np.float32), 8000, format="WAV")
            archive.writestr(f"s/{label}/{k}.wav", buffer.getvalue())
    spectrum = {"n_mels": 24, "n_fft": 256, "hop_length": 128} if features != "waveform" else {}
    audio = AudioSpec.model_validate({"sample_rate": 16000, "features": features, **spectrum})
    memory = load_folder_dataset(tmp_path / "a.zip", "audio", audio=audio)
    meta = write_shards(tmp_path / "a.zip", "audio", tmp_path / "shards", audio=audio, budget_bytes=1)
    sharded = load_sharded(tmp_path / "shards")
    assert meta["shards"] == 2 and sharded.image_shape == memory.image_shape
    assert np.array_equal(sharded.gather(np.arange(70)), memory.X) and np.array_equal(sharded.y, memory.y)


def test_the_budget_decides_and_data_stream_overrides() -> None:
    images = ImageSpec(size=(32, 32))
    assert feature_bytes("image", images, 1000, None) == 1000 * 3 * 32 * 32 * 4
    need = in_memory_bytes("image", images, 1000, None)
    assert should_stream("auto", need, need - 1) and not should_stream("auto", need, need)
    assert not should_stream("auto", need, None) and should_stream(True, 10, None)
    assert not should_stream(False, need, need)
    with pytest.raises(DataError, match="TRAINLAB_WORKER_DATA_MEMORY_MB"):
        should_stream(False, need, need // 2)
    # Audio in memory also holds every clip's samples while it decodes them.
    clips = AudioSpec(clip_seconds=3.0)
    assert in_memory_bytes("audio", clips, 10, None) > 4 * feature_bytes("audio", clips, 10, None)
    assert shard_rows_for(1000, 8 * 1024**2) == 1048 and shard_rows_for(10**6, 1) == 8
    assert shard_rows_for(1000, 8 * 1024**2, 64) == 1024


def test_a_stream_yields_every_row_once_per_epoch_in_full_batches(small: tuple[Path, Path]) -> None:
    data = load_sharded(small[1])
    rows = np.arange(5, 117)  # both shards, a part of each
    stream = ShardStream(data, rows, lambda X: X, torch.device("cpu"))
    expected = data.gather(rows)
    for seed in (1, 2):
        batches = list(stream.batches(16, seed=seed))
        assert [len(y) for _, y in batches] == [16] * 7  # batches span shards: all full
        seen = torch.cat([x for x, _ in batches]).numpy()
        assert sorted(map(bytes, seen)) == sorted(map(bytes, expected))
    first, again = (torch.cat([x for x, _ in stream.batches(16, seed=7)]) for _ in range(2))
    assert torch.equal(first, again)  # a seed gives the same order, whatever the prefetching thread does
    assert not torch.equal(first, torch.cat([x for x, _ in stream.batches(16, seed=8)]))
    in_order = torch.cat([x for x, _ in stream.batches(50)]).numpy()
    assert np.array_equal(in_order, expected) and np.array_equal(stream.labels(), data.y[rows])
    assert sum(len(y) for _, y in stream.batches(16, seed=1, limit=97)) == 97


def test_streamed_scaling_statistics_match_the_whole_matrix(small: tuple[Path, Path]) -> None:
    data = load_sharded(small[1])
    rows = np.arange(0, 120, 2)
    steps = [PreprocessStep.model_validate({"step": s}) for s in ("standardize", "minmax")]

    def chunks() -> Iterator[np.ndarray]:
        for number, inside, _ in data.groups(rows):
            yield data.shard(number)[inside]

    streamed = fit_streamed_preprocessing(steps, chunks, data.y[rows], data.feature_names, streamed="streamed")
    whole, X_train, _ = fit_preprocessing(steps, data.gather(rows), data.y[rows], data.feature_names)
    assert np.allclose(streamed.transform(data.gather(rows)), X_train, atol=1e-5)
    assert [r["streamed"] for r in streamed.reports] == [True, True]


@pytest.mark.parametrize(
    ("steps", "train", "message"),
    [
        ([{"step": "pca", "n_components": 5}], {}, "preprocess step pca is fitted on every training row in memory"),
        ([{"step": "balance", "method": "smote"}], {}, "balance smote is fitted on every training row"),
        ([{"step": "deduplicate"}], {}, "deduplicate compares every row"),
        ([{"step": "deduplicate", "across_splits": True}], {}, "deduplicate compares every row"),  # before the split
        ([], {"lr_range_test": {}}, "lr_range_test sweeps batches of rows held in memory"),
        ([], {"distributed": {"processes": 2}}, "data-parallel training .* needs the data set in memory"),
    ],
)
def test_steps_that_need_every_row_are_refused_by_name_with_the_budget(
    small: tuple[Path, Path], steps: list[dict[str, object]], train: dict[str, object], message: str
) -> None:
    data = load_sharded(small[1], 64 * 1024)
    bad = spec(**train) | {"preprocess": steps}
    with pytest.raises(DataError, match=message) as caught:
        run_experiment(bad, RecordingReporter(), resolve_upload=lambda *_: data)
    assert "streamed shard by shard (the worker's budget of 0.1 MB)" in str(caught.value)


def test_streamed_and_in_memory_training_reach_similar_accuracy(small: tuple[Path, Path]) -> None:
    archive, shards = small
    memory = load_folder_dataset(archive, "image", image=ImageSpec(size=(16, 16)))
    sharded = load_sharded(shards, 64 * 1024)
    results = {}
    for name, data in (("memory", memory), ("streamed", sharded)):
        reporter = RecordingReporter()
        results[name] = run_experiment(spec(), reporter, resolve_upload=lambda *_, d=data: d)
    a, b = results["memory"], results["streamed"]
    assert a["dataset"]["split"] == b["dataset"]["split"]  # the split needs the labels only
    assert b["dataset"]["streamed"]["shards"] == 15 and "streamed" not in a["dataset"]
    assert TrainSummary.model_validate(b).dataset.streamed.shard_rows == 8  # type: ignore[union-attr]
    for summary in (a, b):
        assert summary["test"]["accuracy"] > summary["baseline"]["accuracy"] + 0.3
        assert summary["test"]["confusion_matrix"]["labels"] == sorted(CLASSES)
        assert summary["leakage"]["test_rows_in_train"] == 0 and summary["diagnosis"]["verdict"]
    assert abs(a["test"]["accuracy"] - b["test"]["accuracy"]) <= 0.15
    assert [r["streamed"] for r in b["preprocess"]] == [True, True]


def test_a_streamed_run_resumes_from_its_checkpoint_as_if_uninterrupted(small: tuple[Path, Path]) -> None:
    data = load_sharded(small[1], 64 * 1024)
    whole = run_experiment(spec(), RecordingReporter(), resolve_upload=lambda *_: data)

    class StopAfter(RecordingReporter):
        def should_stop(self) -> bool:
            return len({r["step"] for r in self.rows}) >= 3

    first = StopAfter()
    with pytest.raises(Cancelled):
        run_experiment(spec(), first, resolve_upload=lambda *_: data)
    second = RecordingReporter()
    second.checkpoint = first.checkpoint
    resumed = run_experiment(spec(), second, resolve_upload=lambda *_: data)
    assert resumed["final"] == whole["final"] and resumed["test"] == whole["test"]


def test_a_subset_of_classes_streams_its_rows_only(small: tuple[Path, Path]) -> None:
    data = load_sharded(small[1], 64 * 1024)
    chosen = spec() | {"data": {"source": "dataset/1", "classes": [2, 0], "split": {"test": 0.25, "validation": 0.2}}}
    summary = run_experiment(chosen, RecordingReporter(), resolve_upload=lambda *_: data)
    assert summary["dataset"]["classes"] == ["vertical", "checker"] and summary["dataset"]["rows"] == 80


MEASURE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from ml.data.shards import load_sharded, write_shards
    from ml.reporter import Reporter
    from ml.run import run_experiment
    from ml.spec import ImageSpec

    def status_mb(field):  # Linux: VmRSS (resident now), VmHWM (its peak)
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field + ":"))) / 1024

    folder, budget, spec = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    image = ImageSpec(size=(48, 48))

    def train(archive, name):
        write_shards(folder / archive, "image", folder / name, image=image, budget_bytes=budget)
        data = load_sharded(folder / name, budget)
        # A reporter that keeps nothing, as a worker's (its checkpoints and artifacts go to the store).
        return data, run_experiment(spec, Reporter(), resolve_upload=lambda *_: data)

    train("warm.zip", "warm")  # every module and thread pool of a run loaded
    Path("/proc/self/clear_refs").write_text("5")  # the peak RSS starts again from the RSS now
    baseline = status_mb("VmRSS")
    data, summary = train("big.zip", "big")
    print(json.dumps({
        "baseline_mb": baseline, "growth_mb": status_mb("VmHWM") - baseline, "decoded_mb": data.nbytes / 2**20,
        "budget_mb": budget / 2**20, "accuracy": summary["test"]["accuracy"],
        "majority": summary["baseline"]["accuracy"], "shards": data.shards,
    }))
    """
)


def test_an_archive_four_times_the_budget_trains_in_bounded_memory(tmp_path: Path) -> None:
    """The issue's proof: decoded features 4x the data memory budget, decoded and trained in a
    fresh process; its peak RSS grows by much less than the features (printed). The growth is
    measured from the resident memory after a small warm-up run (every module loaded), the
    kernel's peak (VmHWM) reset there, to that peak after the big run."""
    write_archive(tmp_path / "warm.zip", per_class=30, size=48, seed=1)
    write_archive(tmp_path / "big.zip", per_class=400, size=48, seed=2)
    decoded = 3 * 400 * 3 * 48 * 48 * 4  # 33 MB
    budget = decoded // 4
    run = spec(epochs=2, batch_size=32)
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path), str(budget), json.dumps(run)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"\nstreamed {measured['decoded_mb']:.1f} MB of features with a {measured['budget_mb']:.1f} MB budget: "
        f"peak RSS +{measured['growth_mb']:.1f} MB above {measured['baseline_mb']:.0f} MB, "
        f"{measured['shards']} shards, test accuracy {measured['accuracy']:.3f} (majority {measured['majority']:.3f})"
    )
    assert measured["decoded_mb"] >= 4 * measured["budget_mb"]
    assert measured["accuracy"] > measured["majority"] + 0.2
    # In memory the same run grows by about 4x the features (benchmarks/streaming_memory.py: 3.9x).
    assert measured["growth_mb"] < 0.5 * measured["decoded_mb"]


def test_sharded_data_sets_say_what_they_hold(small: tuple[Path, Path]) -> None:
    data = load_sharded(small[1], 64 * 1024)
    assert isinstance(data, ShardedDataset) and data.n_features == 3 * 16 * 16 and data.nbytes == 120 * 768 * 4
    assert (
        data.describe_budget() == "0.4 MB of decoded features, streamed shard by shard (the worker's budget of 0.1 MB)"
    )


def test_every_augmentation_step_streams(small: tuple[Path, Path]) -> None:
    """Augmentation learns nothing from the rows: cutmix (soft labels) and mixup run on streamed batches."""
    data = load_sharded(small[1], 64 * 1024)
    steps = [{"step": "cutmix", "probability": 1.0}, {"step": "augment", "method": "mixup", "alpha": 0.4}]
    summary = run_experiment(
        spec(epochs=2) | {"preprocess": steps}, RecordingReporter(), resolve_upload=lambda *_: data
    )
    assert [(r["step"], r["streamed"]) for r in summary["preprocess"]] == [("cutmix", True), ("augment", True)]
    assert summary["epochs_run"] == 2

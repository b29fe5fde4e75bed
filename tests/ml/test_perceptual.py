"""Folder data sets: archive checks, audio and image decoding, log-mel features, SpecAugment on
training batches only, and the ResNet models."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from ml.data.folders import FolderLimits, scan_archive
from ml.data.perceptual import (
    audio_features,
    dataset_from_npz,
    dataset_to_npz,
    decode_audio,
    decode_image,
    fix_length,
    load_folder_dataset,
    mel_filter_bank,
)
from ml.data.uploads import DatasetError
from ml.models import build_model
from ml.preprocessing import fit_preprocessing
from ml.spec import AudioSpec, ImageSpec, ModelSpec, PreprocessStep

RATE = 22050


def _wav(freq: float, seconds: float = 1.0, rate: int = RATE, fmt: str = "WAV") -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format=fmt)
    return buffer.getvalue()


def _png(color: tuple[int, int, int], size: tuple[int, int] = (20, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_a_sine_lands_in_the_mel_band_of_its_frequency() -> None:
    spec = AudioSpec(n_mels=40, n_fft=1024, hop_length=256)
    bank = mel_filter_bank(RATE, spec.n_fft, spec.n_mels)
    assert bank.shape == (40, 513) and (bank >= 0).all()
    peaks = bank.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()  # filters ordered by frequency
    bins = np.linspace(0, RATE / 2, 513)
    for freq in (220.0, 1000.0, 4000.0):
        clip = decode_audio(_wav(freq), "tone.wav", RATE)
        features = audio_features(clip[None], spec)[0]
        band = int(features.mean(axis=1).argmax())
        assert abs(bins[peaks[band]] - freq) / freq < 0.15, (freq, bins[peaks[band]])


def test_mfcc_shape_and_resampling_and_fixed_length() -> None:
    clip = decode_audio(_wav(440.0, rate=44100, fmt="FLAC"), "a.flac", RATE)
    assert abs(len(clip) - RATE) <= 2  # 1 s at 44.1 kHz -> 1 s at 22.05 kHz
    spec = AudioSpec(features="mfcc", n_mfcc=13, hop_length=512)
    assert audio_features(clip[None], spec).shape == (1, 13, len(clip) // 512 + 1)
    long = np.arange(10.0)
    assert fix_length(long, 4, "center").tolist() == [3.0, 4.0, 5.0, 6.0]
    assert fix_length(long, 4, "start").tolist() == [0.0, 1.0, 2.0, 3.0]
    assert fix_length(long, 12, "center").tolist()[-2:] == [0.0, 0.0]


def test_an_image_is_decoded_resized_and_scaled() -> None:
    rgb = decode_image(_png((255, 0, 128)), "a.png", ImageSpec(size=(8, 6)))
    assert rgb.shape == (3, 8, 6)
    assert np.allclose(rgb[:, 0, 0], [1.0, 0.0, 128 / 255], atol=1e-6)
    gray = decode_image(_png((255, 255, 255)), "a.png", ImageSpec(size=(4, 4), color="gray"))
    assert gray.shape == (1, 4, 4) and np.allclose(gray, 1.0)


def test_an_audio_folder_becomes_a_spectrogram_data_set_named_by_folders(tmp_path: Path) -> None:
    members = {
        f"genres/{c}/{c}.{i:05d}.wav": _wav(f, seconds=1.0 + 0.1 * i)
        for c, f in (("low", 200.0), ("high", 3000.0))
        for i in range(3)
    }
    archive = _zip(tmp_path / "g.zip", members)
    info = scan_archive(archive)
    assert info["kind"] == "audio" and info["class_counts"] == {"high": 3, "low": 3}
    data = load_folder_dataset(archive, "audio", AudioSpec(n_mels=32, hop_length=512))
    assert data.class_names == ["high", "low"]
    frames = RATE // 512 + 1  # clipped to the shortest clip, 1 s
    assert data.image_shape == (1, 32, frames) and data.X.shape == (6, 32 * frames)
    assert sorted(data.y.tolist()) == [0, 0, 0, 1, 1, 1]
    back = dataset_from_npz(dataset_to_npz(data))
    assert (
        np.array_equal(back.X, data.X) and back.class_names == data.class_names and back.image_shape == data.image_shape
    )


def test_an_image_folder_in_a_tar_gz(tmp_path: Path) -> None:
    path = tmp_path / "s.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for c, color in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
            for i in range(2):
                data = _png(color)
                entry = tarfile.TarInfo(f"{c}/{i}.png")
                entry.size = len(data)
                tar.addfile(entry, io.BytesIO(data))
    assert scan_archive(path)["images"] == {"sizes": {"20x12 RGB": 4}}
    data = load_folder_dataset(path, "image", image=ImageSpec(size=(8, 8)))
    assert data.image_shape == (3, 8, 8) and data.class_names == ["blue", "red"]


@pytest.mark.parametrize(
    ("members", "problem", "words"),
    [
        ({"../evil/a.wav": b"x", "b/a.wav": b"x"}, "malformed", "leave its folder"),
        ({"/abs/a.wav": b"x"}, "malformed", "absolute"),
        ({"a.wav": b"x"}, "malformed", "class folder"),
        ({"a/x.wav": b"not audio", "b/y.wav": b"not audio"}, "unusable", "a/x.wav"),
        ({"a/x.txt": b"hello"}, "unusable", "unsupported"),
        ({"only/x.wav": None, "only/y.wav": None}, "unusable", "one class"),
    ],
)
def test_bad_archives_are_refused_naming_the_problem(
    tmp_path: Path, members: dict[str, bytes | None], problem: str, words: str
) -> None:
    archive = _zip(tmp_path / "bad.zip", {k: v if v is not None else _wav(440.0) for k, v in members.items()})
    with pytest.raises(DatasetError, match=words) as caught:
        scan_archive(archive)
    assert caught.value.problem == problem


def test_links_too_many_files_and_bombs_are_refused(tmp_path: Path) -> None:
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as tar:
        entry = tarfile.TarInfo("a/evil.wav")
        entry.type, entry.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(entry)
    with pytest.raises(DatasetError, match="links are not allowed"):
        scan_archive(link)
    many = _zip(tmp_path / "many.zip", {f"{c}/{i}.wav": _wav(440.0, 0.1) for c in "ab" for i in range(3)})
    with pytest.raises(DatasetError, match="more than 5 files") as caught:
        scan_archive(many, FolderLimits(max_files=5))
    assert caught.value.problem == "too_large"
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/x.wav", b"\0" * (8 * 1024**2))
    with pytest.raises(DatasetError, match="compressed") as caught:
        scan_archive(bomb)
    assert caught.value.problem == "too_large"


def test_spec_augment_changes_training_batches_only() -> None:
    shape = (1, 16, 40)
    X = np.random.default_rng(0).normal(size=(32, 640)).astype(np.float32)
    y = np.arange(32) % 2
    steps = [PreprocessStep(step="spec_augment", time_masks=2, freq_masks=2, shift=0.2, gain_db=3.0)]
    pipeline, X_fit, _ = fit_preprocessing(steps, X, y, [f"f{i}" for i in range(640)], image_shape=shape)
    assert np.array_equal(pipeline.transform(X), X)  # validation/test rows pass through
    transform = pipeline.batch_transform
    assert transform is not None
    xb = torch.as_tensor(X_fit)
    out1, _ = transform(xb, torch.as_tensor(y), torch.Generator().manual_seed(1))
    out2, _ = transform(xb, torch.as_tensor(y), torch.Generator().manual_seed(1))
    assert torch.equal(out1, out2) and not torch.equal(out1, xb)  # seeded, and it does something
    assert out1.shape == xb.shape


def test_spec_augment_needs_spectrograms() -> None:
    from ml.errors import DataError

    with pytest.raises(DataError, match="spectrogram"):
        fit_preprocessing([PreprocessStep(step="spec_augment")], np.zeros((4, 3)), np.arange(4) % 2, ["a", "b", "c"])


def test_resnets_take_images_and_spectrograms() -> None:
    r18 = build_model(ModelSpec(type="resnet", width=8), 1 * 32 * 50, 10, (1, 32, 50))
    r34 = build_model(ModelSpec(type="resnet", depth=34, width=8), 3 * 16 * 16, 4, (3, 16, 16))
    assert r18(torch.randn(2, 1600)).shape == (2, 10) and r34(torch.randn(2, 768)).shape == (2, 4)
    assert sum(p.numel() for p in r34.parameters()) > sum(p.numel() for p in r18.parameters())
    with pytest.raises(ValueError, match="applies to type 'resnet' only"):
        ModelSpec(type="cnn", depth=18)


def test_image_shaped_runs_draw_samples_by_class() -> None:
    from ml.reporter import RecordingReporter
    from ml.run import run_experiment

    reporter = RecordingReporter()
    spec = {"name": "d", "data": {"source": "builtin/digits"}, "model": {"type": "cnn"}, "train": {"epochs": 1}}
    run_experiment(spec, reporter)
    png = reporter.artifacts["samples.png"]
    assert png.startswith(b"\x89PNG") and Image.open(io.BytesIO(png)).size[1] > 300

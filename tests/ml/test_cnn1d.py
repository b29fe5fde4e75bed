"""Raw audio: waveform features (resampled, fixed length, normalised per clip), the cnn1d model
and the spec combinations it refuses."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image
from pydantic import ValidationError
from torch import nn

from ml.data.perceptual import feature_key, load_folder_dataset, waveform_features
from ml.models import build_model
from ml.reporter import RecordingReporter
from ml.run import run_experiment
from ml.spec import AudioSpec, ModelSpec, parse_spec

RATE = 8000


def _wav(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples.astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


def _tone_archive(path: Path, per_class: int, seconds: float, seed: int = 0) -> Path:
    """Three classes of noisy tones (300, 900, 2400 Hz, each +-10 %), random phase and loudness.

    Loudness says nothing about the class (the clips are normalised anyway); the pitch does."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    with zipfile.ZipFile(path, "w") as z:
        for name, freq in (("low", 300.0), ("mid", 900.0), ("high", 2400.0)):
            for i in range(per_class):
                f = freq * rng.uniform(0.9, 1.1)
                tone = np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
                clip = rng.uniform(0.05, 0.8) * (tone + rng.normal(scale=0.5, size=len(t)))
                z.writestr(f"tones/{name}/{name}.{i:03d}.wav", _wav(np.clip(clip, -1, 1)))
    return path


def test_waveforms_are_normalised_per_clip_and_silence_stays_silent() -> None:
    rng = np.random.default_rng(0)
    clips = np.stack([3.0 + 0.01 * rng.normal(size=500), 0.5 * rng.normal(size=500), np.zeros(500)])
    out = waveform_features(clips.astype(np.float32))
    assert out.dtype == np.float32 and out.shape == (3, 500)
    assert np.allclose(out[:2].mean(axis=1), 0.0, atol=1e-5)
    assert np.allclose(np.sqrt((out[:2] ** 2).mean(axis=1)), 1.0, atol=1e-4)  # a quiet clip is scaled up
    assert np.array_equal(out[2], np.zeros(500))


def test_an_audio_folder_becomes_resampled_fixed_length_waveforms(tmp_path: Path) -> None:
    t = np.arange(int(0.5 * 16000)) / 16000
    with zipfile.ZipFile(tmp_path / "w.zip", "w") as z:
        for name, seconds in (("a/long.wav", 0.5), ("a/short.wav", 0.2), ("b/x.wav", 0.5), ("b/y.wav", 0.5)):
            n = int(seconds * 16000)
            z.writestr(name, _wav(0.3 * np.sin(2 * np.pi * 440 * t[:n]), rate=16000))
    spec = AudioSpec(sample_rate=RATE, clip_seconds=0.4, features="waveform")
    data = load_folder_dataset(tmp_path / "w.zip", "audio", spec)
    assert data.image_shape == (1, 1, int(0.4 * RATE)) and data.X.shape == (4, int(0.4 * RATE))
    short = data.X[1]  # 0.2 s zero-padded to 0.4 s: the padding is (shifted) silence, the rest normalised
    assert np.ptp(short[-500:]) == 0.0 and np.ptp(short[:1000]) > 1.0
    assert feature_key("audio", spec) != feature_key("audio", AudioSpec(sample_rate=RATE, clip_seconds=0.4))


def test_cnn1d_shapes_front_end_and_blocks() -> None:
    spec = ModelSpec(type="cnn1d", channels=[8, 16, 16], front_kernel=40, front_stride=4, batch_norm=True, dropout=0.2)
    model = build_model(spec, 4000, 5, (1, 1, 4000))
    assert model(torch.randn(3, 4000)).shape == (3, 5)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (1, 8, 40, 4),
        (8, 16, 3, 1),
        (16, 16, 3, 1),
    ]
    kinds = {type(m) for m in model.modules()}
    assert {nn.BatchNorm1d, nn.MaxPool1d, nn.Dropout, nn.AdaptiveAvgPool1d} <= kinds
    # Any length (global pooling), a spectrogram's bands as channels, and short inputs that stop pooling.
    spectro = build_model(ModelSpec(type="cnn1d", pooling="avg"), 32 * 20, 2, (1, 32, 20))
    assert spectro(torch.randn(2, 640)).shape == (2, 2)
    assert [m for m in spectro.modules() if isinstance(m, nn.Conv1d)][0].in_channels == 32
    assert build_model(ModelSpec(type="cnn1d"), 6, 2, (1, 1, 6))(torch.randn(2, 6)).shape == (2, 2)
    assert ModelSpec(type="cnn1d").conv_channels == [32, 32, 64, 64]


def test_cnn1d_needs_sequence_data() -> None:
    with pytest.raises(ValueError, match="cnn1d model needs sequence data"):
        build_model(ModelSpec(type="cnn1d"), 30, 2, None)
    with pytest.raises(ValueError, match="the cnn1d model got 30 input columns"):
        build_model(ModelSpec(type="cnn1d"), 30, 2, (1, 1, 40))


def _waveform_spec(model: dict, **extra: object) -> dict:
    audio = {"sample_rate": RATE, "clip_seconds": 1, "features": "waveform"}
    return {"name": "w", "data": {"source": "dataset/1", "audio": audio}, "model": model, **extra}


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (_waveform_spec({"type": "cnn"}), "model.type cnn convolves 2D inputs"),
        (_waveform_spec({"type": "resnet"}), "needs type cnn1d"),
        (
            _waveform_spec({"type": "cnn1d"}, preprocess=[{"step": "spec_augment", "gain_db": 6}]),
            "gain_db and noise are in dB of a spectrogram",
        ),
        (
            {"name": "w", "data": {"source": "dataset/1", "audio": {"features": "waveform", "hop_length": 256}}},
            "hop_length applies to features log_mel and mfcc, not waveform",
        ),
        (
            {"name": "w", "data": {"source": "dataset/1", "audio": {"features": "waveform", "sample_rate": 48000}}},
            "lower sample_rate or shorten clip_seconds",
        ),
        (_waveform_spec({"type": "mlp", "front_stride": 2}), "front_stride applies to type 'cnn1d' only"),
        (
            {
                "name": "w",
                "data": {"source": "dataset/1", "audio": {"features": "waveform", "clip_seconds": 30}},
                "model": {"type": "cnn1d", "front_stride": 1},
                "train": {"batch_size": 64},
            },
            r"the output of the front end \(block 1\) of model.channels \[32, 32, 64, 64\], is 1354754048 values",
        ),
        (  # the front end is small; the later blocks, unpooled, are not
            {
                "name": "w",
                "data": {"source": "dataset/1", "audio": {"features": "waveform", "clip_seconds": 30}},
                "model": {"type": "cnn1d", "channels": [1, 4096, 4096], "pooling": "none"},
                "train": {"batch_size": 32},
            },
            r"the output of block 2 of model.channels \[1, 4096, 4096\], is 21676163072 values a batch "
            r"\(train.batch_size 32 x 4096 channels x 165376 samples, of 661500 a clip\); at most 67108864 on a "
            r"shared worker: use fewer model.channels or model.pooling max or avg",
        ),
        (
            _waveform_spec(
                {"type": "cnn1d", "channels": [4096, 4096, 4096], "kernel_size": 5, "front_stride": 256},
                train={"batch_size": 1},
            ),
            r"the cnn1d's convolutions hold 168099840 weights .* at most 80000000 on a shared worker: use fewer "
            r"model.channels or a smaller model.kernel_size",
        ),
        (_waveform_spec({"type": "resnet", "channels": [8]}), "channels applies to types 'cnn' and 'cnn1d' only"),
    ],
)
def test_spec_combinations_a_waveform_cannot_run_are_refused(spec: dict, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        parse_spec(spec)


def test_the_spec_bounds_the_blocks_the_model_builds() -> None:
    """`ModelSpec.cnn1d_blocks` (the submission's bound) says each block's output length and
    convolution weights as `build_model` makes them, pooled or not, odd and even front kernels."""
    for model, samples in [
        ({"type": "cnn1d"}, 8000),
        ({"type": "cnn1d", "channels": [8, 16, 4], "pooling": "none", "front_kernel": 7, "front_stride": 3}, 1001),
        ({"type": "cnn1d", "channels": [4, 4, 4, 4], "kernel_size": 5, "front_kernel": 64, "front_stride": 8}, 300),
    ]:
        spec = ModelSpec.model_validate(model)
        net = build_model(spec, samples, 3, (1, 1, samples))
        convs = [m for m in net.modules() if isinstance(m, nn.Conv1d)]
        lengths: list[int] = []
        for conv in convs:
            conv.register_forward_hook(lambda _m, _i, out, seen=lengths: seen.append(out.shape[-1]))
        net.eval()(torch.zeros(2, samples))
        built = [(c.out_channels, n, c.weight.numel()) for c, n in zip(convs, lengths, strict=True)]
        assert spec.cnn1d_blocks(samples) == built


def test_the_shipped_waveform_example_fits() -> None:
    import yaml

    path = Path(__file__).resolve().parents[2] / "examples" / "tp2-genres-waveform.yaml"
    spec = parse_spec(yaml.safe_load(path.read_text()))
    assert spec.model.type == "cnn1d"  # type: ignore[union-attr]


def test_waveform_specs_that_fit_are_accepted_and_round_trip() -> None:
    spec = parse_spec(
        _waveform_spec(
            {"type": "cnn1d", "channels": [16, 32], "front_kernel": 64, "front_stride": 8},
            preprocess=[{"step": "spec_augment", "time_masks": 2, "time_mask": 0.1, "shift": 0.2}],
        )
    )
    again = parse_spec(spec.model_dump(mode="json"))  # a stored spec lists every field, defaults included
    assert again == spec and again.model.conv_front_stride == 8


def test_cnn1d_learns_generated_tones_above_the_majority_baseline(tmp_path: Path) -> None:
    archive = _tone_archive(tmp_path / "tones.zip", per_class=30, seconds=0.25)
    spec = {
        "name": "tones",
        "seed": 0,
        "data": {
            "source": "dataset/1",
            "audio": {"sample_rate": RATE, "clip_seconds": 0.25, "features": "waveform"},
            "split": {"test": 0.25, "validation": 0.2},
        },
        "preprocess": [{"step": "spec_augment", "time_masks": 1, "time_mask": 0.1, "shift": 0.2}],
        "model": {"type": "cnn1d", "channels": [8, 16], "front_kernel": 32, "batch_norm": True, "hidden": []},
        "train": {"epochs": 12, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}},
    }
    reporter = RecordingReporter()
    summary = run_experiment(
        spec, reporter, resolve_upload=lambda _id, s: load_folder_dataset(archive, "audio", s.audio)
    )
    majority = summary["baseline"]["accuracy"]
    assert majority < 0.4  # three balanced classes
    assert summary["test"]["accuracy"] >= majority + 0.4
    loss = reporter.series("train", "loss")
    assert loss[-1] < 0.5 * loss[0]
    png = reporter.artifacts["samples.png"]  # drawn as waveforms, one row a class
    assert Image.open(io.BytesIO(png)).size[1] > 300

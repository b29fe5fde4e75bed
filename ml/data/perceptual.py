"""Audio clips and images of a folder data set (`ml.data.folders`) as model inputs.

Audio: decoded with soundfile, mixed to mono, resampled (scipy's polyphase filter), cut or
zero-padded to a fixed length, then a log-mel spectrogram (torch.stft and a Slaney mel filter
bank, in dB) or its MFCCs (DCT-II of the log-mel bands), computed in batches, or the raw
waveform normalised per clip (a 1 x 1 x samples row, for the cnn1d model). Images: decoded
with Pillow, converted to RGB or gray, resized (bilinear), scaled to [0, 1]. Each sample becomes
one flattened C x H x W row with `image_shape` set, so the cnn/resnet models, image
augmentation and SpecAugment apply, and so does everything else a table gets (splits, k-fold,
metrics per class with the folder names).

The features depend only on the archive and the `audio`/`image` settings, so the host caches
them (`feature_key`) and decodes a data set once.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.data.folders import FolderLimits, read_members
from ml.data.sources import Dataset
from ml.data.uploads import DatasetError
from ml.spec import AudioSpec, ImageSpec

DEFAULT_MAX_CLIP_SECONDS = 30.0
FEATURE_BATCH = 64  # clips per STFT batch
FEATURE_VERSION = 1  # bump when the features change: old caches are then ignored


def feature_key(kind: str, settings: AudioSpec | ImageSpec) -> str:
    """A short digest of what the cached features depend on (kind, settings, code version)."""
    blob = json.dumps([FEATURE_VERSION, kind, settings.model_dump(mode="json")], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- audio ------------------------------------------------------------------------------------


def decode_audio(data: bytes, name: str, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at `sample_rate`."""
    import soundfile
    from scipy.signal import resample_poly

    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile's own error types
        raise DatasetError(f"{name}: not a readable WAV/FLAC file ({exc})", "unusable") from exc
    mono = samples.mean(axis=1)
    if rate != sample_rate:
        ratio = Fraction(sample_rate, rate).limit_denominator(1000)
        mono = resample_poly(mono, ratio.numerator, ratio.denominator).astype(np.float32)
    return mono


def fix_length(samples: np.ndarray, length: int, crop: str) -> np.ndarray:
    """Cut (centre or start) or zero-pad a clip to exactly `length` samples."""
    if len(samples) >= length:
        start = (len(samples) - length) // 2 if crop == "center" else 0
        return samples[start : start + length]
    return np.pad(samples, (0, length - len(samples)))


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default)."""
    f = np.asarray(f, dtype=np.float64)
    linear = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, linear)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def mel_filter_bank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, area-normalised (Slaney), as librosa makes them."""
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def audio_features(clips: np.ndarray, spec: AudioSpec) -> np.ndarray:
    """(n, bands, frames) log-mel spectrograms in dB (or MFCCs) of equal-length clips."""
    mel = torch.as_tensor(mel_filter_bank(spec.sample_rate, spec.n_fft, spec.n_mels))
    window = torch.hann_window(spec.n_fft)
    out = []
    for start in range(0, len(clips), FEATURE_BATCH):
        batch = torch.as_tensor(clips[start : start + FEATURE_BATCH])
        stft = torch.stft(batch, spec.n_fft, spec.hop_length, window=window, center=True, return_complex=True)
        power = stft.abs() ** 2  # (n, freq, frames)
        bands = 10.0 * torch.log10(torch.clamp(mel @ power, min=1e-10))
        if spec.features == "mfcc":
            from scipy.fft import dct

            bands = torch.as_tensor(dct(bands.numpy(), type=2, axis=1, norm="ortho")[:, : spec.n_mfcc])
        out.append(bands.float().numpy())
    return np.concatenate(out) if out else np.zeros((0, spec.n_mels, 0), dtype=np.float32)


def waveform_features(clips: np.ndarray) -> np.ndarray:
    """(n, samples) raw clips, each normalised to zero mean and unit RMS (silence stays zero).

    In float64 a batch at a time (exact means, without a float64 copy of the whole set)."""
    out = np.empty(clips.shape, dtype=np.float32)
    for start in range(0, len(clips), FEATURE_BATCH):
        batch = clips[start : start + FEATURE_BATCH].astype(np.float64)
        batch -= batch.mean(axis=1, keepdims=True)
        batch /= np.maximum(np.sqrt((batch**2).mean(axis=1, keepdims=True)), 1e-5)
        out[start : start + FEATURE_BATCH] = batch
    return out


def _clip_seconds(durations: list[float], spec: AudioSpec) -> float:
    if spec.clip_seconds is not None:
        return spec.clip_seconds
    return min(min(durations), DEFAULT_MAX_CLIP_SECONDS)


# --- images -----------------------------------------------------------------------------------


def decode_image(data: bytes, name: str, spec: ImageSpec) -> np.ndarray:
    """(channels, height, width) float32 in [0, 1]."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            converted = image.convert("RGB" if spec.color == "rgb" else "L")
            resized = converted.resize((spec.size[1], spec.size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(resized, dtype=np.float32) / 255.0
    except Exception as exc:  # Pillow raises many types on bad files
        raise DatasetError(f"{name}: not a readable PNG/JPEG image ({exc})", "unusable") from exc
    return pixels.transpose(2, 0, 1) if pixels.ndim == 3 else pixels[None]


# --- the data set ------------------------------------------------------------------------------


def load_folder_dataset(
    path: str | Path,
    kind: str,
    audio: AudioSpec | None = None,
    image: ImageSpec | None = None,
    limits: FolderLimits | None = None,
) -> Dataset:
    """Decode every sample of a folder archive into one `Dataset` (classes = folder names, in
    sorted order; `image_shape` = the features' C x H x W)."""
    labels: list[str] = []
    if kind == "audio":
        spec = audio or AudioSpec()
        clips, names = [], []
        for label, name, data in read_members(path, limits):
            clips.append(decode_audio(data, name, spec.sample_rate))
            labels.append(label)
            names.append(name)
        if not clips:
            raise DatasetError("the archive holds no audio clips", "unusable")
        seconds = _clip_seconds([len(c) / spec.sample_rate for c in clips], spec)
        waveform = spec.features == "waveform"
        length = max(1 if waveform else spec.n_fft, int(round(seconds * spec.sample_rate)))
        fixed = np.stack([fix_length(c, length, spec.crop) for c in clips]).astype(np.float32)
        del clips
        # (n, 1, 1, samples) or (n, 1, bands, frames)
        features = waveform_features(fixed)[:, None, None] if waveform else audio_features(fixed, spec)[:, None]
    elif kind == "image":
        ispec = image or ImageSpec()
        rows = []
        for label, name, data in read_members(path, limits):
            rows.append(decode_image(data, name, ispec))
            labels.append(label)
        if not rows:
            raise DatasetError("the archive holds no images", "unusable")
        features = np.stack(rows)
    else:
        raise DatasetError(f"unknown folder data set kind {kind!r}", "unusable")
    classes = sorted(set(labels))
    y = np.searchsorted(np.asarray(classes), np.asarray(labels)).astype(np.int64)
    shape = tuple(int(d) for d in features.shape[1:])
    X = features.reshape(len(features), -1).astype(np.float32)
    names_out = [f"f{i}" for i in range(X.shape[1])]
    return Dataset(X, y, "classification", names_out, classes, image_shape=shape)


def dataset_to_npz(data: Dataset) -> bytes:
    """A decoded folder data set as NPZ bytes (the host's feature cache)."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        X=data.X,
        y=data.y,
        classes=np.asarray(data.class_names),
        shape=np.asarray(data.image_shape or (), dtype=np.int64),
    )
    return buffer.getvalue()


def dataset_from_npz(raw: bytes) -> Dataset:
    """The inverse of `dataset_to_npz`."""
    arrays = np.load(io.BytesIO(raw), allow_pickle=False)
    X = arrays["X"]
    shape = tuple(int(d) for d in arrays["shape"]) or None
    if shape is not None and math.prod(shape) != X.shape[1]:
        raise DatasetError("the cached features do not match their shape; they are rebuilt", "malformed")
    return Dataset(
        X,
        arrays["y"],
        "classification",
        [f"f{i}" for i in range(X.shape[1])],
        [str(c) for c in arrays["classes"]],
        shape,
    )


def describe_features(data: Dataset) -> dict[str, Any]:
    """What the decoded data set looks like (for logs and the summary)."""
    return {"samples": int(len(data.y)), "image_shape": list(data.image_shape or ()), "classes": data.class_names}

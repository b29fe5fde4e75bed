"""Write a GTZAN-shaped folder of synthetic music: ``genres/<genre>/<genre>.000NN.wav`` (22,050 Hz
mono, 16-bit), ten "genres" that differ in tempo, rhythm pattern, timbre, melody and noise, the
way the course's practical (TP2) expects the real GTZAN set.

Every clip draws its own tempo (genres overlap), key, loudness, mix and background noise, so
neither loudness nor any one summary statistic tells the genres apart; the pattern of onsets in
time and of energy across frequencies does -- what a CNN on mel spectrograms sees.

    python examples/data/make_genres.py OUT_DIR [--clips 30] [--seconds 3] [--seed 0]

The real GTZAN (1,000 30-second clips) has the same layout: upload either folder with
``trainlab datasets upload OUT_DIR/genres`` and run ``examples/tp2-genres.yaml`` unchanged.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 22050


@dataclass(frozen=True)
class Genre:
    tempo: float  # beats per minute (each clip varies it by +-12 %)
    kick: tuple[int, ...]  # 16th-note steps of a bar with a kick drum
    snare: tuple[int, ...]
    hat: tuple[int, ...]
    harmonics: tuple[float, ...]  # timbre of the melody instrument
    notes_per_bar: int
    octave: int  # MIDI note of the melody's lowest pitch
    scale: tuple[int, ...]
    distortion: float  # 0 clean .. 1 heavily clipped
    noise: float  # background noise level
    swing: float  # delay of off-beat 16ths, fraction of a step


GENRES: dict[str, Genre] = {
    "blues": Genre(
        92, (0, 10), (4, 12), (0, 3, 6, 8, 11, 14), (1, 0.6, 0.4, 0.2), 4, 52, (0, 3, 5, 6, 7, 10), 0.2, 0.02, 0.33
    ),
    "classical": Genre(80, (), (), (), (1, 0.3, 0.1, 0.05), 8, 60, (0, 2, 4, 5, 7, 9, 11), 0.0, 0.01, 0.0),
    "country": Genre(
        112, (0, 8), (4, 12), (0, 4, 8, 12), (1, 0.7, 0.5, 0.35, 0.2), 6, 55, (0, 2, 4, 7, 9), 0.1, 0.02, 0.1
    ),
    "disco": Genre(
        120, (0, 4, 8, 12), (4, 12), (2, 6, 10, 14), (1, 0.5, 0.25), 8, 57, (0, 2, 3, 5, 7, 10), 0.1, 0.02, 0.0
    ),
    "hiphop": Genre(
        90, (0, 3, 10), (4, 12), (0, 2, 4, 6, 8, 10, 12, 14), (1, 0.2), 2, 40, (0, 3, 5, 7, 10), 0.3, 0.03, 0.25
    ),
    "jazz": Genre(
        135,
        (0,),
        (6, 14),
        (0, 3, 4, 7, 8, 11, 12, 15),
        (1, 0.4, 0.2, 0.1),
        7,
        58,
        (0, 2, 3, 5, 7, 9, 10),
        0.0,
        0.02,
        0.33,
    ),
    "metal": Genre(
        150,
        (0, 2, 4, 6, 8, 10, 12, 14),
        (4, 12),
        (0, 2, 4, 6, 8, 10, 12, 14),
        (1, 0.9, 0.8, 0.7, 0.6),
        16,
        40,
        (0, 1, 3, 5, 7, 8),
        0.9,
        0.05,
        0.0,
    ),
    "pop": Genre(
        116, (0, 8), (4, 12), (0, 2, 4, 6, 8, 10, 12, 14), (1, 0.5, 0.3), 4, 60, (0, 2, 4, 5, 7, 9), 0.1, 0.015, 0.0
    ),
    "reggae": Genre(76, (8,), (8,), (2, 6, 10, 14), (1, 0.3, 0.3), 3, 50, (0, 2, 4, 7, 9), 0.1, 0.02, 0.15),
    "rock": Genre(
        126,
        (0, 6, 8),
        (4, 12),
        (0, 2, 4, 6, 8, 10, 12, 14),
        (1, 0.8, 0.6, 0.4),
        8,
        45,
        (0, 3, 5, 7, 10),
        0.6,
        0.03,
        0.0,
    ),
}


def _decay(n: int, tau: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (tau * RATE))


def _drums(rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(int(0.25 * RATE)) / RATE
    sweep = np.sin(2 * np.pi * (55 + 60 * np.exp(-t / 0.03)) * t) * _decay(len(t), 0.08)
    snare = (rng.normal(size=len(t)) * 0.7 + np.sin(2 * np.pi * 190 * t)) * _decay(len(t), 0.05)
    hat_noise = rng.normal(size=int(0.06 * RATE))
    hat = np.diff(hat_noise, prepend=0.0) * _decay(len(hat_noise), 0.015) * 0.5
    return {"kick": sweep, "snare": snare * 0.6, "hat": hat}


def _add(track: np.ndarray, sound: np.ndarray, at: int, gain: float) -> None:
    end = min(len(track), at + len(sound))
    if at < end:
        track[at:end] += gain * sound[: end - at]


def clip(genre: Genre, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One clip of `genre`, with its own tempo, key, mix, loudness and noise."""
    n = int(seconds * RATE)
    tempo = genre.tempo * rng.uniform(0.88, 1.12)
    step = 60.0 / tempo / 4  # a 16th note, seconds
    drums, track, melody = _drums(rng), np.zeros(n), np.zeros(n)
    mix = {"kick": rng.uniform(0.6, 1.0), "snare": rng.uniform(0.5, 0.9), "hat": rng.uniform(0.3, 0.7)}
    start = rng.uniform(0, 16 * step)  # the clip starts anywhere in a bar
    steps = int((seconds + start) / step) + 1
    for k in range(steps):
        s = k % 16
        at = (k * step - start + (genre.swing * step if s % 2 else 0.0)) / 1.0
        if at < 0:
            continue
        at_sample = int(at * RATE)
        for name, where in (("kick", genre.kick), ("snare", genre.snare), ("hat", genre.hat)):
            if s in where and rng.random() > 0.05:  # a drummer misses a hit now and then
                _add(track, drums[name], at_sample, mix[name])
    key = int(rng.integers(-3, 4))
    note_len = 16 * step / genre.notes_per_bar
    t_note = np.arange(int(note_len * RATE)) / RATE
    envelope = np.minimum(1.0, t_note / 0.01) * _decay(len(t_note), note_len * 0.6)
    for k in range(int(seconds / note_len) + 1):
        pitch = genre.octave + key + genre.scale[rng.integers(len(genre.scale))] + 12 * int(rng.integers(0, 2))
        freq = 440.0 * 2 ** ((pitch - 69) / 12)
        tone = sum(a * np.sin(2 * np.pi * freq * (h + 1) * t_note) for h, a in enumerate(genre.harmonics))
        _add(melody, tone * envelope, int(k * note_len * RATE), 1.0)
    if genre.distortion:
        melody = np.tanh(melody * (1 + 8 * genre.distortion)) / np.tanh(1 + 8 * genre.distortion)
    melody *= rng.uniform(0.25, 0.5) / max(np.abs(melody).max(), 1e-9)
    track = track / max(np.abs(track).max(), 1e-9) * rng.uniform(0.3, 0.6) if np.abs(track).max() > 0 else track
    noise = rng.normal(scale=genre.noise * rng.uniform(0.5, 2.0), size=n)
    out = (track + melody + noise) * rng.uniform(0.3, 1.0)
    return (out / max(1.0, np.abs(out).max())).astype(np.float32)


def write_genres(root: Path, clips: int = 30, seconds: float = 3.0, seed: int = 0) -> Path:
    """Write ``root/genres/<genre>/<genre>.000NN.wav``; returns the ``genres`` folder."""
    import soundfile

    rng = np.random.default_rng(seed)
    folder = root / "genres"
    for name, genre in GENRES.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(clips):
            soundfile.write(folder / name / f"{name}.{i:05d}.wav", clip(genre, seconds, rng), RATE, subtype="PCM_16")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--clips", type=int, default=30, help="clips per genre")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each clip")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_genres(args.out, args.clips, args.seconds, args.seed))


if __name__ == "__main__":
    main()

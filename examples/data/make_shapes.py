"""Write a folder of small RGB images, one folder per class: ``shapes/<class>/<class>.000NN.png``.

Six classes -- circle, square, triangle, cross, stripes, dots -- drawn at a random position,
size, rotation and colour on a random textured background with noise, so that colour and mean
brightness say nothing about the class; the shape's outline or texture does.

    python examples/data/make_shapes.py OUT_DIR [--images 60] [--size 32] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

CLASSES = ("circle", "square", "triangle", "cross", "stripes", "dots")


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(40, 256, size=3))  # type: ignore[return-value]


def image(label: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One (size, size, 3) uint8 picture of `label`."""
    from PIL import Image, ImageDraw

    scale = 4  # draw large, then shrink: smooth edges
    big = size * scale
    background = tuple(int(c) for c in rng.integers(0, 200, size=3))
    picture = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(picture)
    for _ in range(int(rng.integers(0, 4))):  # clutter: random lines
        x0, y0, x1, y1 = (int(v) for v in rng.integers(0, big, size=4))
        draw.line((x0, y0, x1, y1), fill=_colour(rng), width=scale)
    colour = _colour(rng)
    r = rng.uniform(0.22, 0.38) * big
    cx, cy = rng.uniform(r, big - r, size=2)
    angle = rng.uniform(0, 2 * math.pi)

    def polygon(n: int, radius: float) -> list[tuple[float, float]]:
        return [
            (cx + radius * math.cos(angle + 2 * math.pi * k / n), cy + radius * math.sin(angle + 2 * math.pi * k / n))
            for k in range(n)
        ]

    if label == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif label == "square":
        draw.polygon(polygon(4, r * 1.2), fill=colour)
    elif label == "triangle":
        draw.polygon(polygon(3, r * 1.3), fill=colour)
    elif label == "cross":
        w = r * 0.35
        for a in (angle, angle + math.pi / 2):
            dx, dy = math.cos(a), math.sin(a)
            corners = [
                (cx + s * r * dx + t * w * -dy, cy + s * r * dy + t * w * dx)
                for s, t in ((-1, -1), (1, -1), (1, 1), (-1, 1))
            ]
            draw.polygon(corners, fill=colour)
    elif label == "stripes":
        period = rng.uniform(0.12, 0.2) * big
        for k in range(-10, 11):
            offset = k * period
            dx, dy = math.cos(angle), math.sin(angle)
            x, y = cx + offset * -dy, cy + offset * dx
            draw.line((x - big * dx, y - big * dy, x + big * dx, y + big * dy), fill=colour, width=int(period / 3))
    else:  # dots
        for _ in range(int(rng.integers(8, 16))):
            x, y = rng.uniform(0, big, size=2)
            d = rng.uniform(0.04, 0.07) * big
            draw.ellipse((x - d, y - d, x + d, y + d), fill=colour)
    small = picture.resize((size, size), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64) + rng.normal(scale=8.0, size=(size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_shapes(root: Path, images: int = 60, size: int = 32, seed: int = 0) -> Path:
    """Write ``root/shapes/<class>/<class>.000NN.png``; returns the ``shapes`` folder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = root / "shapes"
    for label in CLASSES:
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(images):
            Image.fromarray(image(label, size, rng)).save(folder / label / f"{label}.{i:05d}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=60, help="images per class")
    parser.add_argument("--size", type=int, default=32, help="side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_shapes(args.out, args.images, args.size, args.seed))


if __name__ == "__main__":
    main()

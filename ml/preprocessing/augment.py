"""On-the-fly augmentation: each training batch is changed anew every epoch.

A step returns a batch transform ``(xb, yb, generator) -> (xb, yb)`` working on torch tensors.
Every random draw comes from the given generator (on the generator's device, then moved to the
batch's), so a seed gives the same augmented batches run after run. Validation and test rows
are never augmented: the step's `transform` passes them through.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ml.errors import DataError
from ml.preprocessing.base import BatchTransform, FittedStep, StepContext, StepFit, TrainingOnly
from ml.spec.preprocess import AugmentStep, CutMixStep, ImageAugmentStep, SpecAugmentStep

TRAINING_BATCHES = "training batches, anew every epoch"


def _uniform(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def _chosen(n: int, probability: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A (n,) bool mask of the rows to augment."""
    return _uniform(n, generator, device) < probability


def _only_chosen(
    changed: torch.Tensor, original: torch.Tensor, probability: float, generator: torch.Generator
) -> torch.Tensor:
    """`changed` for a fraction `probability` of the rows, `original` for the others."""
    if probability >= 1.0:
        return changed
    rows = _chosen(len(original), probability, generator, original.device).unsqueeze(1)
    return torch.where(rows, changed, original)


def gaussian_noise(std: float, probability: float = 1.0) -> BatchTransform:
    """Add N(0, std^2) noise to a fraction `probability` of the batch's rows."""

    def apply(xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(xb.shape, generator=generator, device=generator.device).to(xb.device, xb.dtype)
        rows = _chosen(len(xb), probability, generator, xb.device).unsqueeze(1)
        return xb + noise * std * rows, yb

    return apply


def mixup(alpha: float, probability: float, classification: bool) -> BatchTransform:
    """Move each row towards a random partner of its batch by a fraction 1 - lam <= 1/2.

    lam ~ Beta(alpha, alpha), folded to [1/2, 1]: the new point is nearer its own row, whose
    hard label it keeps (classification); regression targets are mixed with the same lam.
    """

    def apply(xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(xb)
        partner = torch.randperm(n, generator=generator, device=generator.device).to(xb.device)
        # torch has no seeded Beta sampler: draw a seed from the generator for numpy's.
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        lam_np = np.random.default_rng(seed).beta(alpha, alpha, size=n)
        lam = torch.as_tensor(np.maximum(lam_np, 1.0 - lam_np), dtype=xb.dtype, device=xb.device)
        lam = torch.where(_chosen(n, probability, generator, xb.device), lam, torch.ones_like(lam))
        mixed = lam.unsqueeze(1) * xb + (1 - lam.unsqueeze(1)) * xb[partner]
        if classification:
            return mixed, yb
        return mixed, lam.to(yb.dtype) * yb + (1 - lam.to(yb.dtype)) * yb[partner]

    return apply


def fit_augment(spec: AugmentStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext) -> FittedStep:
    """Table augmentation: Gaussian noise or mixup on every training batch."""
    report: dict[str, Any] = {"method": spec.method, "probability": spec.probability, "applies_to": TRAINING_BATCHES}
    if spec.method == "gaussian_noise":
        transform, report["std"] = gaussian_noise(spec.std, spec.probability), spec.std
    else:
        transform, report["alpha"] = mixup(spec.alpha, spec.probability, ctx.task == "classification"), spec.alpha
        report["labels"] = "kept from the nearer row" if ctx.task == "classification" else "mixed like the inputs"
    return FittedStep(TrainingOnly(), X, y, list(names), report, batch_transform=transform)


# ITU-R BT.601 luma weights: the grey of an RGB pixel (as torchvision's rgb_to_grayscale).
LUMA = (0.299, 0.587, 0.114)


def _factors(n: int, amount: float, generator: torch.Generator, device: torch.device, dtype: torch.dtype) -> Any:
    """(n, 1, 1, 1) factors drawn uniformly from [max(0, 1 - amount), 1 + amount]."""
    low = max(0.0, 1.0 - amount)
    return (low + (1.0 + amount - low) * _uniform(n, generator, device)).to(dtype).view(n, 1, 1, 1)


def _grey(images: torch.Tensor) -> torch.Tensor:
    """(n, 1, H, W) grey of (n, C, H, W) images: luma for RGB, the channel mean otherwise."""
    if images.shape[1] == 3:
        weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images * weights).sum(dim=1, keepdim=True)
    return images.mean(dim=1, keepdim=True)


def color_jitter(images: torch.Tensor, spec: ImageAugmentStep, generator: torch.Generator) -> torch.Tensor:
    """Per-image brightness, contrast and saturation of (n, C, H, W) images, in that order.

    Brightness scales each value's distance from black (the batch's lowest value), contrast
    its distance from the image's mean grey, saturation a pixel's distance from its own grey
    (RGB only); the result is clipped to the batch's range, so values never leave it."""
    n, device, dtype = len(images), images.device, images.dtype
    low, high = images.min(), images.max()
    if spec.brightness:
        images = low + (images - low) * _factors(n, spec.brightness, generator, device, dtype)
    if spec.contrast:
        mean = _grey(images).mean(dim=(1, 2, 3), keepdim=True)
        images = mean + (images - mean) * _factors(n, spec.contrast, generator, device, dtype)
    if spec.saturation:
        grey = _grey(images)
        images = grey + (images - grey) * _factors(n, spec.saturation, generator, device, dtype)
    return images.clamp(low, high)


def image_augmentation(spec: ImageAugmentStep, image_shape: tuple[int, ...]) -> BatchTransform:
    """Random colour jitter, flips, shifts, rotations and noise of flattened (channels, height,
    width) rows."""
    channels, height, width = image_shape if len(image_shape) == 3 else (1, *image_shape)

    def apply(xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n, device = len(xb), xb.device
        images = xb.reshape(n, channels, height, width)
        if spec.color_jitter:
            images = color_jitter(images, spec, generator)
        if spec.flip:
            flipped = _uniform(n, generator, device) < 0.5
            images = torch.where(flipped.view(n, 1, 1, 1), images.flip(-1), images)
        if spec.shift or spec.rotate:
            angle = (2 * _uniform(n, generator, device) - 1) * math.radians(spec.rotate)
            shifts = torch.randint(-spec.shift, spec.shift + 1, (2, n), generator=generator, device=generator.device)
            shifts = shifts.to(device, xb.dtype)
            cos, sin = torch.cos(angle), torch.sin(angle)
            # Normalised coordinates span 2 over the image: a pixel is 2/width (2/height).
            # A rotation in pixel units, written in normalised units (x spans 2 over the width,
            # y over the height: non-square images are not sheared).
            theta = torch.stack(
                [
                    torch.stack([cos, -sin * height / width, 2 * shifts[0] / width], dim=1),
                    torch.stack([sin * width / height, cos, 2 * shifts[1] / height], dim=1),
                ],
                dim=1,
            ).to(xb.dtype)
            grid = F.affine_grid(theta, list(images.shape), align_corners=False)
            # "border" repeats the edge pixels (the background), whatever the scaling.
            images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if spec.noise:
            noise = torch.randn(images.shape, generator=generator, device=generator.device).to(device, xb.dtype)
            images = images + spec.noise * noise
        return _only_chosen(images.reshape(n, -1), xb, spec.probability, generator), yb

    return apply


def _whole_input_step(
    spec: ImageAugmentStep | SpecAugmentStep | CutMixStep,
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    shape: tuple[int, ...],
    transform: BatchTransform,
    words: tuple[str, str, str, str],
) -> FittedStep:
    """A batch transform that needs every column of the C x H x W input in place.

    `words`: (step as named in errors, the columns, the inputs, the report's key for the shape)."""
    who, columns, inputs, shape_key = words
    if len(names) != int(np.prod(shape)):
        raise DataError(
            f"{who} needs the {int(np.prod(shape))} {columns} of {tuple(shape)} {inputs}; "
            f"there are {len(names)} columns at this point of the pipeline"
        )
    report: dict[str, Any] = {
        shape_key: list(shape),
        **spec.model_dump(exclude={"step"}),
        "applies_to": TRAINING_BATCHES,
    }
    return FittedStep(TrainingOnly(), X, y, list(names), report, batch_transform=transform, needs_names=list(names))


def fit_image(spec: ImageAugmentStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext) -> FittedStep:
    """Image augmentation of the training batches; needs every pixel column."""
    shape = ctx.image_shape
    if shape is None or len(shape) not in (2, 3):
        raise DataError("image augmentation needs image data (e.g. builtin/digits); this data set has no image shape")
    channels = shape[0] if len(shape) == 3 else 1
    if spec.saturation and channels != 3:
        raise DataError(
            f"image augmentation's saturation needs RGB images (3 channels); these have {channels}: "
            "use brightness and contrast"
        )
    words = ("image augmentation", "pixel columns", "images", "image_shape")
    return _whole_input_step(spec, X, y, names, shape, image_augmentation(spec, shape), words)


def _beta(alpha: float, n: int, generator: torch.Generator) -> np.ndarray:
    """n draws of Beta(alpha, alpha); torch has no seeded Beta sampler: numpy's, seeded from `generator`."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    return np.random.default_rng(seed).beta(alpha, alpha, size=n)


def cutmix(spec: CutMixStep, image_shape: tuple[int, ...], n_classes: int | None, task: str) -> BatchTransform:
    """CutMix of flattened (channels, height, width) rows: for a fraction `probability` of the
    batch, a rectangle of a random partner's image (area 1 - lam, lam ~ Beta(alpha, alpha), a
    random centre, clipped at the borders) replaces the same rectangle of the image, and the
    label becomes (kept area) x own + (pasted area) x partner's, from the box as clipped.

    Classification targets come back as (n, n_classes) probabilities (rows left alone: one-hot);
    regression targets are mixed the same way."""
    channels, height, width = image_shape

    def apply(xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n, device = len(xb), xb.device
        images = xb.reshape(n, channels, height, width)
        partner = torch.randperm(n, generator=generator, device=generator.device).to(device)
        cut = torch.as_tensor(np.sqrt(1.0 - _beta(spec.alpha, n, generator)), dtype=torch.float32)
        centre_y = (_uniform(n, generator, device) * height).floor().long()
        centre_x = (_uniform(n, generator, device) * width).floor().long()
        chosen = _chosen(n, spec.probability, generator, device)
        half_h = (cut.to(device) * height / 2).round().long()
        half_w = (cut.to(device) * width / 2).round().long()
        top, bottom = (centre_y - half_h).clamp(0, height), (centre_y + half_h).clamp(0, height)
        left, right = (centre_x - half_w).clamp(0, width), (centre_x + half_w).clamp(0, width)
        rows = torch.arange(height, device=device).view(1, height, 1)
        cols = torch.arange(width, device=device).view(1, 1, width)
        box = (
            (rows >= top.view(n, 1, 1))
            & (rows < bottom.view(n, 1, 1))
            & (cols >= left.view(n, 1, 1))
            & (cols < right.view(n, 1, 1))
            & chosen.view(n, 1, 1)
        )
        mixed = torch.where(box.unsqueeze(1), images[partner], images).reshape(n, -1)
        pasted = box.sum(dim=(1, 2)).to(torch.float32) / (height * width)  # the partner's share, exact
        if task != "classification":
            share = pasted.to(yb.dtype)
            return mixed, (1 - share) * yb + share * yb[partner]
        classes = n_classes or int(yb.max().item()) + 1
        own = yb.to(torch.float32) if yb.ndim == 2 else F.one_hot(yb, classes).to(torch.float32)  # mixed already
        return mixed, (1 - pasted).unsqueeze(1) * own + pasted.unsqueeze(1) * own[partner]

    return apply


def fit_cutmix(spec: CutMixStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext) -> FittedStep:
    """CutMix on the training batches of image-shaped data; needs every pixel column."""
    shape = ctx.image_shape
    if shape is None or len(shape) not in (2, 3):
        raise DataError(
            "cutmix needs image data (e.g. builtin/digits, an image or audio folder); this data set has no image shape"
        )
    dims = tuple(shape) if len(shape) == 3 else (1, *shape)
    n_classes = ctx.n_classes
    if ctx.task == "classification" and n_classes is None and len(y):
        n_classes = int(np.max(y)) + 1
    words = ("cutmix", "pixel columns", "images", "image_shape")
    fitted = _whole_input_step(spec, X, y, names, dims, cutmix(spec, dims, n_classes, ctx.task), words)
    fitted.report["labels"] = "mixed by area (soft labels)" if ctx.task == "classification" else "targets mixed by area"
    return fitted


def _masks(
    n: int, count: int, largest: int, size: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(n, size) bool: for each row, `count` random spans of 0..largest positions each."""
    positions = torch.arange(size, device=device)
    mask = torch.zeros(n, size, dtype=torch.bool, device=device)
    for _ in range(count):
        width = torch.randint(0, largest + 1, (n,), generator=generator, device=generator.device).to(device)
        start = (_uniform(n, generator, device) * (size - width + 1).clamp(min=1)).long()
        mask |= (positions[None] >= start[:, None]) & (positions[None] < (start + width)[:, None])
    return mask


def spec_augmentation(spec: SpecAugmentStep, image_shape: tuple[int, ...]) -> BatchTransform:
    """Time/frequency masks, circular time shift, gain and noise on flattened C x bands x frames rows."""
    channels, bands, frames = image_shape

    def apply(xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n, device = len(xb), xb.device
        spec_batch = xb.reshape(n, channels, bands, frames)
        if spec.shift:
            largest = int(spec.shift * frames)
            offsets = torch.randint(-largest, largest + 1, (n,), generator=generator, device=generator.device)
            index = (torch.arange(frames)[None] - offsets.cpu()[:, None]) % frames
            spec_batch = torch.gather(spec_batch, 3, index.to(device).view(n, 1, 1, frames).expand_as(spec_batch))
        if spec.gain_db:
            gain = (2 * _uniform(n, generator, device) - 1) * spec.gain_db
            spec_batch = spec_batch + gain.view(n, 1, 1, 1).to(xb.dtype)
        if spec.noise:
            noise = torch.randn(spec_batch.shape, generator=generator, device=generator.device).to(device, xb.dtype)
            spec_batch = spec_batch + spec.noise * noise
        fill = spec_batch.mean()
        if spec.time_masks and spec.time_mask:
            masked = _masks(n, spec.time_masks, int(spec.time_mask * frames), frames, generator, device)
            spec_batch = torch.where(masked.view(n, 1, 1, frames), fill, spec_batch)
        if spec.freq_masks and spec.freq_mask:
            masked = _masks(n, spec.freq_masks, int(spec.freq_mask * bands), bands, generator, device)
            spec_batch = torch.where(masked.view(n, 1, bands, 1), fill, spec_batch)
        return _only_chosen(spec_batch.reshape(n, -1), xb, spec.probability, generator), yb

    return apply


def fit_spec_augment(
    spec: SpecAugmentStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext
) -> FittedStep:
    """SpecAugment on the training batches of spectrogram data; needs every band x frame column."""
    shape = ctx.image_shape
    if shape is None or len(shape) != 3:
        raise DataError("spec_augment needs spectrogram data (an audio folder data set); this data set has none")
    words = ("spec_augment", "columns", "spectrograms", "input_shape")
    return _whole_input_step(spec, X, y, names, shape, spec_augmentation(spec, shape), words)


AUGMENT_STEPS: dict[str, StepFit] = {
    "augment": fit_augment,
    "image": fit_image,
    "spec_augment": fit_spec_augment,
    "cutmix": fit_cutmix,
}

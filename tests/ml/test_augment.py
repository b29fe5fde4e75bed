"""On-the-fly augmentation: deterministic for a seed, training batches only, labels kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ml.errors import DataError
from ml.preprocessing import fit_preprocessing
from ml.spec import PreprocessStep

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pipeline_of(*steps: dict, X: np.ndarray | None = None, image_shape=None, task: str = "classification"):
    if X is None:
        X = np.random.default_rng(0).normal(size=(64, 4))
    names = [f"p{i}" for i in range(X.shape[1])]
    y = np.arange(len(X)) % 3
    y = y if task == "classification" else y.astype(np.float32)
    return fit_preprocessing([PreprocessStep(**s) for s in steps], X, y, names, image_shape=image_shape, task=task)


def batch(n: int = 32, d: int = 4, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(99)
    return torch.randn(n, d, generator=g).to(device), (torch.arange(n) % 3).to(device)


def digits_like(n: int = 16) -> np.ndarray:
    """n 8x8 images: a bright bar in a dark frame, one per row (asymmetric, with a background)."""
    images = np.zeros((n, 1, 8, 8))
    for i in range(n):
        images[i, 0, 2:6, 2 + i % 3] = 1.0
    return images.reshape(n, -1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "step",
    [
        {"step": "augment", "method": "gaussian_noise", "std": 0.3},
        {"step": "augment", "method": "mixup", "alpha": 0.4},
    ],
    ids=lambda s: s["method"],
)
def test_table_augmentation_is_deterministic_for_a_seed(step: dict, device: str) -> None:
    pipeline, Xt, _ = pipeline_of({"step": "standardize"}, step)
    xb, yb = batch(device=device)
    first = pipeline.batch_transform(xb, yb, torch.Generator().manual_seed(1))
    again = pipeline.batch_transform(xb, yb, torch.Generator().manual_seed(1))
    other = pipeline.batch_transform(xb, yb, torch.Generator().manual_seed(2))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0]) and not torch.equal(first[0], xb)
    assert first[0].device == xb.device and first[0].shape == xb.shape
    # a new epoch (the same generator, further on) augments the same rows differently
    g = torch.Generator().manual_seed(1)
    assert not torch.equal(pipeline.batch_transform(xb, yb, g)[0], pipeline.batch_transform(xb, yb, g)[0])


def test_augmentation_changes_training_batches_only() -> None:
    X_val = np.random.default_rng(5).normal(size=(10, 4))
    plain, Xt_plain, _ = pipeline_of({"step": "standardize"})
    pipeline, Xt, _ = pipeline_of({"step": "standardize"}, {"step": "augment", "std": 1.0})
    assert np.array_equal(pipeline.transform(X_val), plain.transform(X_val))
    assert np.array_equal(Xt, Xt_plain)  # the stored training rows too: only batches change, each epoch
    assert pipeline.reports[1]["applies_to"] == "training batches, anew every epoch"


def test_gaussian_noise_has_the_asked_spread_on_the_asked_fraction() -> None:
    pipeline, _, _ = pipeline_of({"step": "augment", "std": 0.5, "probability": 0.25})
    xb, yb = torch.zeros(4000, 4), torch.zeros(4000, dtype=torch.long)
    out, labels = pipeline.batch_transform(xb, yb, torch.Generator().manual_seed(0))
    changed = (out != 0).any(dim=1)
    assert changed.float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert out[changed].std().item() == pytest.approx(0.5, rel=0.05) and torch.equal(labels, yb)


def test_mixup_keeps_the_label_of_the_nearer_row() -> None:
    pipeline, _, _ = pipeline_of({"step": "augment", "method": "mixup", "alpha": 1.0})
    xb, yb = batch(n=256)
    out, labels = pipeline.batch_transform(xb, yb, torch.Generator().manual_seed(0))
    assert torch.equal(labels, yb)
    # each new point lies on the segment from its own row to another row, at most halfway
    step = out - xb  # (n, d)
    towards = xb.unsqueeze(0) - xb.unsqueeze(1)  # [i, j] = x_j - x_i
    t = (step.unsqueeze(1) * towards).sum(-1) / towards.pow(2).sum(-1).clamp_min(1e-12)
    off_segment = (step.unsqueeze(1) - t.unsqueeze(-1) * towards).norm(dim=-1)
    on_some_segment = ((off_segment < 1e-4) & (t >= -1e-6) & (t <= 0.5 + 1e-6)).any(dim=1)
    assert on_some_segment.all() and (step.norm(dim=1) > 0).float().mean() > 0.9


def test_mixup_mixes_regression_targets_like_the_inputs() -> None:
    pipeline, _, _ = pipeline_of({"step": "augment", "method": "mixup"}, task="regression")
    xb = torch.linspace(0, 1, 64).unsqueeze(1).repeat(1, 4)
    yb = 3.0 * xb[:, 0]  # a linear target stays on its line when both are mixed alike
    out, target = pipeline.batch_transform(xb, yb, torch.Generator().manual_seed(0))
    assert not torch.equal(out, xb) and torch.allclose(target, 3.0 * out[:, 0], atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_image_flip_mirrors_about_half_the_images(device: str) -> None:
    X = digits_like(64)
    pipeline, _, _ = pipeline_of({"step": "image", "flip": True}, X=X, image_shape=(1, 8, 8))
    xb = torch.as_tensor(X, dtype=torch.float32, device=device)
    out, _ = pipeline.batch_transform(xb, torch.zeros(64, device=device), torch.Generator().manual_seed(0))
    images, mirrored = xb.view(64, 1, 8, 8), xb.view(64, 1, 8, 8).flip(-1)
    flipped = (out.view(64, 1, 8, 8) == mirrored).flatten(1).all(dim=1)
    same = (out.view(64, 1, 8, 8) == images).flatten(1).all(dim=1)
    assert (flipped | same).all() and 20 < int((flipped & ~same).sum()) < 44
    assert out.device == xb.device


def test_image_shift_moves_whole_pixels_within_the_limit() -> None:
    X = digits_like(32)
    pipeline, _, _ = pipeline_of({"step": "image", "shift": 1}, X=X, image_shape=(1, 8, 8))
    xb = torch.as_tensor(X, dtype=torch.float32)
    out, _ = pipeline.batch_transform(xb, torch.zeros(32), torch.Generator().manual_seed(0))
    padded = F.pad(xb.view(32, 1, 8, 8), (1, 1, 1, 1), mode="replicate")
    shifts = {(dy, dx): padded[:, :, 1 + dy : 9 + dy, 1 + dx : 9 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    matched = torch.zeros(32, dtype=torch.bool)
    for candidate in shifts.values():
        matched |= torch.isclose(out.view(32, 1, 8, 8), candidate, atol=1e-5).flatten(1).all(dim=1)
    assert matched.all() and not torch.equal(out, xb)


def test_image_rotation_turns_images_and_spares_round_ones() -> None:
    yy, xx = np.mgrid[0:16, 0:16] - 7.5
    disc = np.exp(-(xx**2 + yy**2) / 8.0).reshape(1, -1)
    bar = np.exp(-(xx**2) / 2.0 - yy**2 / 20.0)
    X = np.vstack([np.repeat(disc, 8, axis=0), np.repeat(bar.reshape(1, -1), 8, axis=0)])
    pipeline, _, _ = pipeline_of({"step": "image", "rotate": 45}, X=X, image_shape=(1, 16, 16))
    xb = torch.as_tensor(X, dtype=torch.float32)
    out, _ = pipeline.batch_transform(xb, torch.zeros(16), torch.Generator().manual_seed(0))
    change = (out - xb).abs().sum(dim=1)
    assert change[:8].max() < 0.3 * change[8:].mean()
    assert torch.allclose(out.sum(dim=1), xb.sum(dim=1), rtol=0.15)  # turned, not lost


def test_image_steps_compose_with_table_noise_in_order() -> None:
    X = digits_like(8)
    steps = ({"step": "image", "flip": True}, {"step": "augment", "std": 0.1})
    pipeline, _, _ = pipeline_of(*steps, X=X, image_shape=(1, 8, 8))
    xb = torch.as_tensor(X, dtype=torch.float32)
    out, _ = pipeline.batch_transform(xb, torch.zeros(8), torch.Generator().manual_seed(0))
    assert out.shape == xb.shape and ((out - xb).abs() > 0).float().mean() > 0.9


def test_image_augmentation_needs_images_and_their_pixels() -> None:
    with pytest.raises(DataError, match="needs image data"):
        pipeline_of({"step": "image", "flip": True})
    X = digits_like(16)
    with pytest.raises(DataError, match="every pixel column in place"):
        pipeline_of({"step": "image", "flip": True}, {"step": "pca", "n_components": 3}, X=X, image_shape=(1, 8, 8))
    with pytest.raises(DataError, match="the 64 pixel columns"):
        pipeline_of({"step": "pca", "n_components": 3}, {"step": "image", "flip": True}, X=X, image_shape=(1, 8, 8))


def test_a_run_with_augmentation_is_reproducible() -> None:
    from ml.run import run_experiment

    spec = {
        "name": "aug",
        "seed": 4,
        "data": {"source": "builtin/digits", "split": {"test": 0.3, "validation": 0.3}},
        "preprocess": [{"step": "minmax", "per_feature": False}, {"step": "image", "shift": 1, "rotate": 10}],
        "model": {"type": "mlp", "hidden": [16]},
        "train": {"epochs": 2, "batch_size": 128, "device": "cpu"},  # bitwise: CPU kernels only
        "evaluate": {"plots": False},
    }
    first, second = run_experiment(spec), run_experiment(spec)
    assert first["test"] == second["test"] and first["final"] == second["final"]


# --- colour jitter and cutmix ------------------------------------------------------------------


def rgb_images(n: int = 32, side: int = 6, seed: int = 0) -> np.ndarray:
    """n random RGB images in [0, 1], flattened; the batch holds an exact 0 and an exact 1."""
    X = np.random.default_rng(seed).uniform(0.05, 0.95, size=(n, 3 * side * side))
    X[0, 0], X[1, 0] = 0.0, 1.0
    return X


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "step",
    [
        {"step": "image", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4},
        {"step": "cutmix", "alpha": 1.0, "probability": 1.0},
    ],
    ids=lambda s: s["step"],
)
def test_colour_jitter_and_cutmix_are_seeded_and_stay_on_the_batch_device(step: dict, device: str) -> None:
    X = rgb_images()
    pipeline, _, _ = pipeline_of(step, X=X, image_shape=(3, 6, 6))
    xb = torch.as_tensor(X, dtype=torch.float32, device=device)
    yb = (torch.arange(32) % 3).to(device)
    first = pipeline.batch_transform(xb, yb, torch.Generator().manual_seed(1))
    again = pipeline.batch_transform(xb, yb, torch.Generator().manual_seed(1))
    other = pipeline.batch_transform(xb, yb, torch.Generator().manual_seed(2))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0]) and not torch.equal(first[0], xb)
    assert first[0].device == xb.device and first[1].device == xb.device and first[0].shape == xb.shape


@pytest.mark.parametrize("step", [{"step": "image", "brightness": 0.5}, {"step": "cutmix"}], ids=lambda s: s["step"])
def test_colour_jitter_and_cutmix_change_training_batches_only(step: dict) -> None:
    X, X_val = rgb_images(), rgb_images(8, seed=1)
    pipeline, Xt, yt = pipeline_of(step, X=X, image_shape=(3, 6, 6))
    assert np.array_equal(pipeline.transform(X_val), X_val.astype(np.float32))  # validation/test rows pass
    assert np.array_equal(Xt, X.astype(np.float32))  # the stored training rows too: batches change
    assert pipeline.reports[0]["applies_to"] == "training batches, anew every epoch"


def test_colour_jitter_values_stay_in_the_batch_range() -> None:
    X = rgb_images(64)
    step = {"step": "image", "brightness": 0.8, "contrast": 0.8, "saturation": 0.8}
    pipeline, _, _ = pipeline_of(step, X=X, image_shape=(3, 6, 6))
    xb = torch.as_tensor(X, dtype=torch.float32)
    out, labels = pipeline.batch_transform(xb, torch.zeros(64, dtype=torch.long), torch.Generator().manual_seed(0))
    assert out.min() >= 0.0 and out.max() <= 1.0 and torch.equal(labels, torch.zeros(64, dtype=torch.long))
    assert (out == 1.0).sum() > 1 and (out - xb).abs().mean() > 0.05  # it pushed values to the edge and clipped


def test_brightness_scales_each_image_by_its_own_factor() -> None:
    X = rgb_images(32)
    pipeline, _, _ = pipeline_of({"step": "image", "brightness": 0.3}, X=X, image_shape=(3, 6, 6))
    xb = torch.as_tensor(X, dtype=torch.float32)
    out, _ = pipeline.batch_transform(xb, torch.zeros(32), torch.Generator().manual_seed(3))
    factors = []
    for image, changed in zip(xb, out, strict=True):
        inside = (changed < 1.0) & (image > 0.0)  # not clipped, black (0) stays black
        ratios = changed[inside] / image[inside]
        assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-4)
        factors.append(ratios[0].item())
    assert min(factors) >= 0.7 - 1e-4 and max(factors) <= 1.3 + 1e-4
    assert np.std(factors) > 0.05  # per sample, not one factor for the batch


def test_saturation_keeps_each_pixels_grey_and_needs_rgb() -> None:
    X = np.random.default_rng(0).uniform(0.3, 0.7, size=(16, 3 * 4 * 4))
    X[0, :] = 0.0  # the batch spans [0, 1]: nothing reaches the clip for these mid-range pixels
    X[1, :] = 1.0
    pipeline, _, _ = pipeline_of({"step": "image", "saturation": 0.2}, X=X, image_shape=(3, 4, 4))
    xb = torch.as_tensor(X, dtype=torch.float32)
    out, _ = pipeline.batch_transform(xb, torch.zeros(16), torch.Generator().manual_seed(0))
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1)
    grey_in = (xb.view(16, 3, 16) * luma).sum(1)
    grey_out = (out.view(16, 3, 16) * luma).sum(1)
    assert torch.allclose(grey_in, grey_out, atol=1e-5) and not torch.equal(out, xb)
    with pytest.raises(DataError, match="saturation needs RGB images"):
        pipeline_of({"step": "image", "saturation": 0.2}, X=digits_like(8), image_shape=(1, 8, 8))


def test_cutmix_mixes_labels_by_the_pasted_area() -> None:
    n, side = 40, 8
    # each image one constant value, its own: a pasted pixel says which partner it came from
    X = np.repeat(np.arange(n, dtype=np.float64)[:, None], side * side, axis=1)
    y = np.arange(n) % 5
    names = [f"p{i}" for i in range(side * side)]
    from ml.preprocessing import fit_preprocessing

    steps = [PreprocessStep(step="cutmix", alpha=1.0, probability=0.75)]
    pipeline, _, _ = fit_preprocessing(steps, X, y, names, image_shape=(1, side, side), n_classes=5)
    xb, yb = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    out, soft = pipeline.batch_transform(xb, yb, torch.Generator().manual_seed(0))
    assert soft.shape == (n, 5) and soft.dtype == torch.float32
    assert torch.allclose(soft.sum(dim=1), torch.ones(n))
    mixed = 0
    for i in range(n):
        values = out[i].view(side, side)
        pasted = values != i
        if pasted.any():
            mixed += 1
            partner = int(values[pasted][0].item())
            assert (values[pasted] == partner).all()  # one partner a row
            rows, cols = pasted.nonzero(as_tuple=True)  # ... pasted as one rectangle
            assert pasted.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        share = pasted.float().mean()
        expected = torch.zeros(5)
        expected[y[i]] += 1 - share
        if pasted.any():
            expected[y[partner]] += share
        assert torch.allclose(soft[i], expected, atol=1e-6), i
    assert 0.4 * n < mixed <= n  # about `probability` of the rows (a few draw an empty box or themselves)


def test_cutmix_mixes_regression_targets_by_area() -> None:
    X = np.repeat(np.arange(16, dtype=np.float64)[:, None], 36, axis=1)
    pipeline, _, _ = pipeline_of({"step": "cutmix", "probability": 1.0}, X=X, image_shape=(1, 6, 6), task="regression")
    xb = torch.as_tensor(X, dtype=torch.float32)
    out, target = pipeline.batch_transform(xb, 10.0 * xb[:, 0], torch.Generator().manual_seed(0))
    # a row's target is 10 x the mean of its pixels (each pixel an image index, mixed by area)
    assert torch.allclose(target, 10.0 * out.mean(dim=1), atol=1e-4) and not torch.equal(out, xb)


def test_cutmix_needs_image_data() -> None:
    with pytest.raises(DataError, match="cutmix needs image data"):
        pipeline_of({"step": "cutmix"})


def test_a_cnn_learns_with_cutmix_soft_labels_and_colour_jitter() -> None:
    from ml.reporter import RecordingReporter
    from ml.run import run_experiment

    spec = {
        "name": "cutmix",
        "seed": 0,
        "data": {"source": "builtin/digits"},
        "preprocess": [
            {"step": "minmax", "per_feature": False},
            {"step": "image", "brightness": 0.3, "contrast": 0.3},
            {"step": "cutmix", "alpha": 1.0, "probability": 0.5},
        ],
        "model": {"type": "cnn", "channels": [8, 16], "hidden": [32]},
        "train": {"epochs": 8, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.003}, "device": "cpu"},
        "evaluate": {"plots": False},
    }
    reporter = RecordingReporter()
    summary = run_experiment(spec, reporter)
    assert summary["test"]["accuracy"] > 0.85
    accuracy = reporter.series("train", "accuracy")  # scored against each row's larger share
    assert all(0.0 <= a <= 1.0 for a in accuracy) and accuracy[-1] > accuracy[0]
    assert [r["step"] for r in summary["preprocess"]][-1] == "cutmix"


def test_class_weighted_loss_of_soft_labels_is_a_mean_over_the_rows_weights() -> None:
    """`balance: class_weight` with cutmix: the training loss on soft labels is on the scale of the
    hard-label (and validation) loss, the sum over the rows' weights, not over their number."""
    from ml.training.loop import evaluate_batches, loss_function

    torch.manual_seed(0)
    logits, labels = torch.randn(12, 3), torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    weights = torch.tensor([0.5, 3.0, 2.0])  # the rows weigh 14 in all, not 12
    criterion = loss_function("classification", weights)
    hard = criterion(logits, labels)
    one_hot = criterion(logits, F.one_hot(labels, 3).float())
    assert torch.allclose(one_hot, hard) and torch.allclose(hard, F.cross_entropy(logits, labels, weight=weights))
    # Mixed rows weigh their labels' mix of the class weights.
    soft = torch.softmax(torch.randn(12, 3), dim=1)
    rows = -(soft * weights * torch.log_softmax(logits, dim=1)).sum(dim=1)
    assert torch.allclose(criterion(logits, soft), rows.sum() / (soft @ weights).sum())
    # Evaluation's weighted mean is the same, for hard and soft labels.
    model = torch.nn.Identity()
    evaluated, _, _ = evaluate_batches(model, [(logits, labels)], "classification", torch.device("cpu"), weights)
    assert torch.allclose(evaluated, hard)
    evaluated, _, _ = evaluate_batches(model, [(logits, soft)], "classification", torch.device("cpu"), weights)
    assert torch.allclose(evaluated, criterion(logits, soft))
    # Without weights, or summed, it is torch's loss.
    assert torch.allclose(loss_function("classification")(logits, soft), F.cross_entropy(logits, soft))
    summed = loss_function("classification", weights, reduction="sum")(logits, soft)
    assert torch.allclose(summed, F.cross_entropy(logits, soft, weight=weights, reduction="sum"))

"""Audio and image folder data sets through the service: upload an archive of class folders,
train a CNN on log-mel spectrograms / a ResNet on images in a real worker, read the per-class
results by folder name; decoded features are cached once per data set and settings."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "data"))

from make_genres import GENRES, write_genres  # noqa: E402
from make_shapes import write_shapes  # noqa: E402

GENRES_USED = ["classical", "metal", "reggae", "disco"]


def _zip_folder(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder.parent))
    return out


@pytest.fixture(scope="module")
def genres_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("genres")
    folder = write_genres(root, clips=10, seconds=1.0, seed=3)
    for name in GENRES:
        if name not in GENRES_USED:
            for file in (folder / name).iterdir():
                file.unlink()
            (folder / name).rmdir()
    return _zip_folder(folder, root / "genres.zip")


@pytest.fixture(scope="module")
def shapes_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    return _zip_folder(write_shapes(root, images=12, size=16, seed=1), root / "shapes.zip")


def _upload(service, path: Path) -> dict:
    answer = service.http.post("/api/v1/datasets", files={"file": (path.name, path.read_bytes())})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_an_audio_folder_trains_a_spectrogram_cnn_with_class_names(service, genres_zip: Path) -> None:
    dataset = _upload(service, genres_zip)
    assert dataset["format"] == "folder" and dataset["info"]["kind"] == "audio"
    assert dataset["info"]["class_counts"] == {g: 10 for g in sorted(GENRES_USED)}
    spec = {
        "name": "genres-cnn",
        "data": {
            "source": f"dataset/{dataset['id']}",
            "audio": {"n_mels": 32, "hop_length": 512},
            "split": {"test": 0.25, "validation": 0.25},
        },
        "preprocess": [{"step": "standardize"}, {"step": "spec_augment", "shift": 0.2}],
        "model": {"type": "cnn", "channels": [8, 16], "batch_norm": True, "hidden": [32]},
        "train": {"epochs": 5, "batch_size": 8, "optimizer": {"name": "adam", "lr": 0.003}},
        "evaluate": {"metrics": ["accuracy", "confusion_matrix"]},
    }
    first = service.wait_for(service.http.post("/api/v1/experiments", json=spec).json()["id"], ("succeeded", "failed"))
    assert first["status"] == "succeeded", first["error"]
    summary = first["summary"]
    assert summary["dataset"]["classes"] == sorted(GENRES_USED)
    assert summary["test"]["confusion_matrix"]["labels"] == sorted(GENRES_USED)
    assert any(r["step"] == "spec_augment" for r in summary["preprocess"])
    artifacts = {a["name"] for a in service.http.get(f"/api/v1/experiments/{first['id']}/artifacts").json()}
    assert {"samples.png", "confusion_matrix.png"} <= artifacts  # spectrograms by genre, the matrix named
    caches = service.http.get(f"/api/v1/datasets/{dataset['id']}").json()["info"]["feature_caches"]
    assert len(caches) == 1
    # the same settings again: the cached features are read, no second cache is written
    again = service.wait_for(
        service.http.post("/api/v1/experiments", json={**spec, "name": "genres-cnn-2"}).json()["id"],
        ("succeeded", "failed"),
    )
    assert again["status"] == "succeeded", again["error"]
    assert service.http.get(f"/api/v1/datasets/{dataset['id']}").json()["info"]["feature_caches"] == caches
    assert again["summary"]["dataset"]["features"] == summary["dataset"]["features"]


def test_an_image_folder_trains_a_resnet(embedded, shapes_zip: Path) -> None:
    dataset = _upload(embedded, shapes_zip)
    assert dataset["info"]["kind"] == "image" and len(dataset["info"]["class_counts"]) == 6
    spec = {
        "name": "shapes-resnet",
        "data": {"source": f"dataset/{dataset['id']}", "image": {"size": [16, 16]}},
        "preprocess": [{"step": "image", "flip": True}],
        "model": {"type": "resnet", "depth": 18, "width": 4},
        "train": {"epochs": 2, "batch_size": 16},
    }
    final = embedded.wait_for(
        embedded.http.post("/api/v1/experiments", json=spec).json()["id"], ("succeeded", "failed")
    )
    assert final["status"] == "succeeded", final["error"]
    assert final["summary"]["dataset"]["features"] == 3 * 16 * 16
    assert set(final["summary"]["dataset"]["classes"]) == {"circle", "square", "triangle", "cross", "stripes", "dots"}

"""`trainlab datasets upload ./genres/`: a folder of class folders is packed on the fly into a
stored .zip and streamed (never read whole), archives too; `datasets show` gives files per class
and the clips' sample rates and durations or the images' sizes."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_folder_datasets import clip, picture, tar_of
from tests.cli.support import live_service
from tests.cli.test_cli import Cli
from tests.hostile_inputs import with_peak_memory
from trainlab.client import Client
from trainlab.packing import pack_folder


@pytest.fixture(scope="module")
def cli() -> Iterator[Cli]:
    with live_service() as (service, token, config):
        yield Cli(service, token, config)


def genres(root: Path) -> Path:
    """genres/{blues,rock}/*.wav at 22,050 Hz, plus the clutter a desktop adds."""
    folder = root / "genres"
    for label, n in (("blues", 3), ("rock", 2)):
        (folder / label).mkdir(parents=True)
        for i in range(n):
            (folder / label / f"{label}.{i:05d}.wav").write_bytes(clip(0.5 + 0.25 * i, 22050, seed=i))
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("x")
    return folder


def test_a_folder_is_packed_stored_in_order_without_hidden_files(tmp_path: Path) -> None:
    folder = genres(tmp_path)
    packed = pack_folder(folder, tmp_path / "out.zip")
    with zipfile.ZipFile(packed) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == [
            "genres/blues/blues.00000.wav",
            "genres/blues/blues.00001.wav",
            "genres/blues/blues.00002.wav",
            "genres/rock/rock.00000.wav",
            "genres/rock/rock.00001.wav",
        ]
        assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
        assert archive.read("genres/rock/rock.00001.wav") == (folder / "rock" / "rock.00001.wav").read_bytes()
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no files to upload"):
        pack_folder(tmp_path / "empty", tmp_path / "empty.zip")
    assert not (tmp_path / "empty.zip").exists()


class CountingTransport(httpx.BaseTransport):
    """A server stand-in that reads the request body as a stream and keeps only its size."""

    def __init__(self) -> None:
        self.received = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for chunk in request.stream:  # type: ignore[union-attr]
            self.received += len(chunk)
        return httpx.Response(201, json={"id": 1, "name": "big", "format": "folder", "info": {}})


def test_the_client_streams_a_file_and_a_folder_never_reading_them_whole(tmp_path: Path) -> None:
    big = tmp_path / "big.tar"
    with big.open("wb") as out:
        for _ in range(32):
            out.write(os.urandom(1024**2))
    transport = CountingTransport()
    client = Client("http://trainlab.invalid", "tl_x", transport=transport)
    _, peak = with_peak_memory(lambda: client.upload_dataset(big))
    assert transport.received > 32 * 1024**2 and peak < 8 * 1024**2, peak
    folder = tmp_path / "set"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(8):
            (folder / label / f"{i}.wav").write_bytes(os.urandom(2 * 1024**2))
    transport.received = 0
    _, peak = with_peak_memory(lambda: client.upload_dataset(folder))
    assert transport.received > 32 * 1024**2 and peak < 8 * 1024**2, peak
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("trainlab-upload-*/set.zip"))  # removed after


def test_upload_a_folder_and_show_it(cli: Cli, tmp_path: Path) -> None:
    folder = genres(tmp_path)
    done = cli("datasets", "upload", str(folder))
    assert done.returncode == 0, done.stderr
    assert "5 audio files in 2 classes" in done.stdout and "use data.source dataset/" in done.stdout
    uploaded = cli.json("datasets", "list")[0]
    assert uploaded["format"] == "folder" and uploaded["name"] == "genres.zip"
    assert uploaded["info"]["class_counts"] == {"blues": 3, "rock": 2}
    shown = cli("datasets", "show", str(uploaded["id"]))
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "audio files in class folders (zip)" in out and "5 in 2 classes" in out
    assert "22050 Hz: 5" in out and "0.5000 to 1.0000 s, mean 0.7000 s" in out
    assert "blues" in out and "60.0%" in out and "rock" in out and "40.0%" in out
    assert f"source: dataset/{uploaded['id']}, audio:" in out
    listed = cli("datasets", "list")
    row = next(line for line in listed.stdout.splitlines() if "genres.zip" in line)
    assert "folder" in row and "blues: 3, rock: 2" in row


def test_upload_an_image_archive_and_show_it(cli: Cli, tmp_path: Path) -> None:
    members = {f"shapes/{label}/{i}.png": picture(12, 8, seed=i) for label in ("circle", "square") for i in range(2)}
    archive = tmp_path / "shapes.tgz"
    archive.write_bytes(tar_of(members))
    uploaded = cli.json("datasets", "upload", str(archive), "--name", "shapes")
    assert uploaded["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    shown = cli("datasets", "show", str(uploaded["id"]))
    assert shown.returncode == 0 and "image sizes" in shown.stdout and "12x8 RGB: 4" in shown.stdout
    assert "examples/images-resnet.yaml" in shown.stdout


def test_a_bad_folder_is_one_clear_line(cli: Cli, tmp_path: Path) -> None:
    one = tmp_path / "one" / "blues"
    one.mkdir(parents=True)
    (one / "a.wav").write_bytes(clip())
    (one / "b.wav").write_bytes(clip(seed=1))
    refused = cli("datasets", "upload", str(tmp_path / "one"))
    assert refused.returncode == 2 and "only one class folder ('blues')" in refused.stderr
    (tmp_path / "empty" / "x").mkdir(parents=True)
    empty = cli("datasets", "upload", str(tmp_path / "empty"))
    assert empty.returncode == 1 and "no files to upload" in empty.stderr

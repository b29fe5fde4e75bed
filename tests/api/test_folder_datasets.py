"""Folder data sets (a .zip or .tar(.gz) of class folders of audio clips or images), on both
database backends: good archives are described and stored as they were sent; every bad one is a
4xx naming its fault, and leaves the data sets and the store's files as they were. Hostile
archives are made here, small."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.hostile_inputs import with_peak_memory


def clip(seconds: float = 0.25, rate: int = 8000, fmt: str = "WAV", seed: int = 0) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32)
    soundfile.write(buffer, noise, rate, format=fmt)
    return buffer.getvalue()


def picture(width: int = 12, height: int = 8, fmt: str = "PNG", seed: int = 0) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name) if name.startswith("/") else name, data)
    return buffer.getvalue()


def tar_of(members: dict[str, bytes], gz: bool = True, links: dict[str, tuple[bytes, str]] | None = None) -> bytes:
    """A tar (gzip-compressed by default); `links` adds {name: (tarfile.SYMTYPE|LNKTYPE, target)}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            archive.addfile(info)
    return buffer.getvalue()


def zip_with_symlink() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("genres/blues/a.wav", clip())
        link = zipfile.ZipInfo("genres/rock/b.wav")
        link.external_attr = (0o120777 << 16) | 0x20  # a symbolic link, as Info-ZIP stores one
        archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


def zip_of_directories(count: int) -> bytes:
    """A zip whose directory holds `count` folder records and no file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(count):
            archive.writestr(zipfile.ZipInfo(f"d{i}/"), b"")
    return buffer.getvalue()


AUDIO = {
    "genres/blues/blues.00000.wav": clip(0.25, 8000, seed=1),
    "genres/blues/blues.00001.wav": clip(0.5, 8000, seed=2),
    "genres/rock/rock.00000.wav": clip(0.25, 16000, seed=3),
}


def upload(client, content: bytes, filename: str, **form):
    return client.post("/api/v1/datasets", files={"file": (filename, content)}, data=form)


def stored(client, data_dir: Path) -> tuple[int, list[str]]:
    """The data sets the API lists, and every file of the store."""
    root = data_dir / "artifacts"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
    return len(client.get("/api/v1/datasets").json()), files


def stored_file(data_dir: Path, key: str) -> bytes:
    return (data_dir / "artifacts" / key).read_bytes()


def limit(monkeypatch: pytest.MonkeyPatch, **values: int) -> None:
    from core.settings import get_settings

    for name, value in values.items():
        monkeypatch.setenv(f"TRAINLAB_{name.upper()}", str(value))
    get_settings.cache_clear()


# ---- good archives ---------------------------------------------------------------------------


def test_a_zip_of_audio_clips_is_described_and_stored_as_sent(client, api_env: Path) -> None:
    content = zip_of(AUDIO)
    response = upload(client, content, "genres.zip")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["format"] == "folder" and body["name"] == "genres.zip"
    assert body["size"] == len(content) and body["sha256"] == hashlib.sha256(content).hexdigest()
    info = body["info"]
    assert info["kind"] == "audio" and info["archive"] == "zip" and info["files"] == 3
    assert info["classes"] == ["blues", "rock"] and info["class_counts"] == {"blues": 2, "rock": 1}
    assert info["audio"]["sample_rates"] == {"8000": 2, "16000": 1}
    assert info["audio"]["seconds"] == {"min": 0.25, "mean": pytest.approx(1 / 3, abs=1e-3), "max": 0.5}
    count, files = stored(client, api_env)
    assert count == 1 and len(files) == 1 and files[0].endswith(f"datasets/{body['id']}/data.zip")
    assert stored_file(api_env, files[0]) == content
    assert client.get(f"/api/v1/datasets/{body['id']}").json()["info"] == info


def test_a_tar_gz_of_flac_clips(client, api_env: Path) -> None:
    members = {
        "jazz/a.flac": clip(0.2, 22050, "FLAC", seed=4),
        "jazz/b.flac": clip(0.2, 22050, "FLAC", seed=5),
        "metal/c.flac": clip(0.4, 22050, "FLAC", seed=6),
    }
    content = tar_of(members)
    response = upload(client, content, "genres.tar.gz", name="flac genres")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "flac genres" and body["format"] == "folder"
    info = body["info"]
    assert info["kind"] == "audio" and info["archive"] == "tar" and info["class_counts"] == {"jazz": 2, "metal": 1}
    assert info["audio"]["sample_rates"] == {"22050": 3} and info["audio"]["seconds"]["max"] == pytest.approx(0.4)
    _, files = stored(client, api_env)
    assert files[0].endswith("data.tar.gz") and stored_file(api_env, files[0]) == content


@pytest.mark.parametrize(("fmt", "suffix", "packer"), [("PNG", "png", "zip"), ("JPEG", "jpg", "tar")])
def test_image_sets(client, api_env: Path, fmt: str, suffix: str, packer: str) -> None:
    members = {f"shapes/circle/{i}.{suffix}": picture(12, 8, fmt, seed=i) for i in range(3)} | {
        f"shapes/square/{i}.{suffix}": picture(16, 16, fmt, seed=10 + i) for i in range(2)
    }
    content = zip_of(members, zipfile.ZIP_DEFLATED) if packer == "zip" else tar_of(members, gz=False)
    response = upload(client, content, f"shapes.{packer}")
    assert response.status_code == 201, response.text
    info = response.json()["info"]
    assert info["kind"] == "image" and info["files"] == 5 and info["class_counts"] == {"circle": 3, "square": 2}
    assert info["images"]["sizes"] == {"12x8 RGB": 3, "16x16 RGB": 2}
    _, files = stored(client, api_env)
    assert files[0].endswith("data.zip" if packer == "zip" else "data.tar")


def test_archives_are_found_by_their_magic_numbers_and_npz_stays_npz(client, api_env: Path) -> None:
    anonymous = upload(client, tar_of(AUDIO), "upload")  # no telling name: the gzip magic says it
    assert anonymous.status_code == 201, anonymous.text
    assert anonymous.json()["format"] == "folder"
    buffer = io.BytesIO()
    np.savez(buffer, X=np.random.default_rng(0).random((10, 3)), y=np.arange(10) % 2)
    for name in ("arrays.npz", "arrays.zip", "arrays"):  # a zip of .npy files is an NPZ, whatever its name
        response = upload(client, buffer.getvalue(), name)
        assert response.status_code == 201, (name, response.text)
        assert response.json()["format"] == "npz" and response.json()["info"]["shape"] == [10, 3]


def test_an_archive_has_its_own_size_limit(client, api_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = zip_of(AUDIO)
    limit(monkeypatch, max_upload_bytes=1000)  # CSV and NPZ only
    assert upload(client, b"a,label\n" + b"1,0\n2,1\n" * 200, "t.csv").status_code == 413
    assert upload(client, content, "genres.zip").status_code == 201
    limit(monkeypatch, max_upload_bytes=10**8, max_archive_bytes=len(content) - 1)
    before = stored(client, api_env)
    response = upload(client, content, "genres.zip")
    assert response.status_code == 413 and f"limit of {len(content) - 1} bytes" in response.json()["detail"]
    assert stored(client, api_env) == before


def test_the_request_body_limit_of_uploads_follows_the_archive_limit(api_env: Path, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.conftest import make_user, reset_caches

    monkeypatch.setenv("TRAINLAB_MAX_REQUEST_BYTES", str(64 * 1024))
    monkeypatch.setenv("TRAINLAB_MAX_ARCHIVE_BYTES", str(1024**2))
    reset_caches()
    big = zip_of({f"c{i % 2}/{i}.wav": clip(1.0, 16000, seed=i) for i in range(6)})  # ~200 KB
    assert 64 * 1024 < len(big) < 1024**2
    with TestClient(create_app()) as client:
        client.headers["Authorization"] = f"Bearer {make_user('big')}"
        assert upload(client, big, "big.zip").status_code == 201  # past max_request_bytes: the upload's own limit
        spec = {"name": "x" * (70 * 1024), "data": {"source": "builtin/iris"}}
        assert client.post("/api/v1/experiments", json=spec).status_code == 413  # other routes keep theirs


# ---- bad archives ----------------------------------------------------------------------------

SYM, HARD = tarfile.SYMTYPE, tarfile.LNKTYPE
BAD = {
    "dot-dot": (lambda: zip_of({**AUDIO, "genres/../../evil/x.wav": clip()}), "x.zip", 400, "leave its folder"),
    "dot-dot-tar": (lambda: tar_of({**AUDIO, "../rock/x.wav": clip()}), "x.tgz", 400, "leave its folder"),
    "absolute": (lambda: zip_of({**AUDIO, "/etc/rock/x.wav": clip()}), "x.zip", 400, "absolute paths"),
    "absolute-tar": (lambda: tar_of({**AUDIO, "/tmp/rock/x.wav": clip()}), "x.tar.gz", 400, "absolute paths"),
    "zip-symlink": (zip_with_symlink, "x.zip", 400, "links are not allowed"),
    "tar-symlink": (lambda: tar_of(AUDIO, links={"genres/rock/l.wav": (SYM, "/etc/passwd")}), "x.tgz", 400, "links"),
    "tar-hardlink": (
        lambda: tar_of(AUDIO, links={"genres/rock/h.wav": (HARD, "genres/rock/rock.00000.wav")}),
        "x.tar",
        400,
        "links are not allowed",
    ),
    "undecodable": (
        lambda: zip_of({**AUDIO, "genres/rock/broken.wav": b"RIFF\x24\x00\x00\x00WAVEjunkjunk"}),
        "x.zip",
        422,
        "genres/rock/broken.wav: not a readable WAV/FLAC file",
    ),
    "truncated-image": (
        lambda: tar_of({"a/1.png": picture(), "b/2.png": picture()[:60]}),
        "x.tgz",
        422,
        "b/2.png: not a readable PNG/JPEG image",
    ),
    "unsupported": (lambda: zip_of({**AUDIO, "genres/rock/notes.txt": b"hi"}), "x.zip", 422, "unsupported file type"),
    "mixed": (lambda: zip_of({**AUDIO, "genres/rock/cover.png": picture()}), "x.zip", 422, "mixes audio and images"),
    "one-class": (
        lambda: zip_of({"genres/blues/a.wav": clip(), "genres/blues/b.wav": clip(seed=1)}),
        "x.zip",
        422,
        "only one class folder ('blues')",
    ),
    "no-class-folder": (lambda: zip_of({"a.wav": clip(), "b.wav": clip()}), "x.zip", 400, "class folder"),
    "nothing-but-clutter": (
        lambda: zip_of({"__MACOSX/genres/._a.wav": b"x", "genres/.DS_Store": b"x", "genres/blues/": b""}),
        "x.zip",
        422,
        "no audio or image files",
    ),
    "not-a-zip": (lambda: b"hello, this is text and no zip", "genres.zip", 400, "not a .zip or .tar"),
    "not-a-tar": (lambda: b"\x1f\x8b" + os.urandom(200), "genres.tar.gz", 400, "not a readable tar archive"),
    "damaged-zip": (lambda: zip_of(AUDIO)[:-30], "genres.zip", 400, "zip"),
    "unknown-type": (lambda: picture(), "cover.png", 400, "archive of class folders"),
    "zip-bomb": (  # 4 MB of silence compresses about 1000:1
        lambda: zip_of({**AUDIO, "genres/rock/quiet.wav": clip(0.25) + bytes(4 * 1024**2)}, zipfile.ZIP_DEFLATED),
        "bomb.zip",
        413,
        "more than the allowed 100:1",
    ),
    "tar-bomb": (  # a valid 2-minute silent clip, gzip-compressed about 1000:1 as a whole
        lambda: tar_of({**AUDIO, "genres/rock/quiet.wav": silence(120)}),
        "bomb.tgz",
        413,
        "more than the allowed 100:1",
    ),
}


def silence(seconds: float) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * 16000), dtype=np.int16), 16000, format="WAV")
    return buffer.getvalue()


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_archive_is_refused_and_stores_nothing(client, api_env: Path, case: str) -> None:
    make, filename, status, words = BAD[case]
    content = make()
    assert len(content) < 200 * 1024  # hostile archives stay small
    before = stored(client, api_env)
    response = upload(client, content, filename)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert stored(client, api_env) == before


def test_more_files_than_allowed_is_413(client, api_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    limit(monkeypatch, max_archive_files=2)
    before = stored(client, api_env)
    for content, name in ((zip_of(AUDIO), "x.zip"), (tar_of(AUDIO), "x.tgz")):
        response = upload(client, content, name)
        assert response.status_code == 413 and "more than 2 files" in response.json()["detail"]
    directories = zip_of_directories(2100)  # past what 2 files and their folders need: refused unread
    response = upload(client, directories, "dirs.zip")
    assert response.status_code == 413 and "more than 2 files" in response.json()["detail"]
    folders = tar_of({f"d{i}/.keep": b"" for i in range(2100)})  # hidden files, each skipped: still counted
    response = upload(client, folders, "dirs.tgz")
    assert response.status_code == 413 and "more than 2 files" in response.json()["detail"]
    assert stored(client, api_env) == before


def test_a_tar_past_the_expanded_total_is_413(client, api_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = tar_of(AUDIO, gz=False)
    total = sum(len(v) for v in AUDIO.values())
    limit(monkeypatch, max_archive_expanded_bytes=total - 1)
    before = stored(client, api_env)
    response = upload(client, content, "x.tar")
    assert response.status_code == 413 and f"inflates past {total - 1} bytes" in response.json()["detail"]
    assert stored(client, api_env) == before


def test_skipped_members_count_toward_the_expanded_total(client, api_env: Path, monkeypatch) -> None:
    total = sum(len(v) for v in AUDIO.values())
    limit(monkeypatch, max_archive_expanded_bytes=total + 1000)
    before = stored(client, api_env)
    response = upload(client, tar_of({**AUDIO, "__MACOSX/genres/._junk": bytes(300_000)}), "x.tgz")
    assert response.status_code == 413 and "inflates past" in response.json()["detail"]
    assert stored(client, api_env) == before


def test_a_compressed_tar_is_judged_on_the_bytes_read_so_far(client, api_env: Path) -> None:
    """Two silent clips inflate 1000:1: refused there, before the broken file after them is reached."""
    members = {"a/quiet.wav": silence(120), "b/quiet.wav": silence(120), "b/broken.wav": b"RIFF junk"}
    response = upload(client, tar_of(members), "x.tgz")
    assert response.status_code == 413 and "more than the allowed 100:1" in response.json()["detail"]


def test_a_failed_store_leaves_no_row_and_no_file(client, api_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.artifacts import LocalArtifactStore

    def broken(self, key: str, path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"half")  # a partial file, then the disk fails
        raise OSError("disk full")

    monkeypatch.setattr(LocalArtifactStore, "put_file", broken)
    before = stored(client, api_env)
    with pytest.raises(OSError):
        upload(client, zip_of(AUDIO), "genres.zip")
    assert stored(client, api_env) == before


def test_an_archive_is_never_held_in_memory(api_env: Path, tmp_path: Path) -> None:
    """The store path reads the spooled upload a chunk at a time: a 24 MB archive costs a few
    MB of Python memory (one decoded member at a time), not its size."""
    from tempfile import SpooledTemporaryFile

    from starlette.datastructures import UploadFile

    from api.archives import store_archive
    from core.db import get_sessionmaker
    from core.repositories import TokenRepository
    from tests.conftest import make_user

    token = make_user("memory")
    with SpooledTemporaryFile(max_size=1024**2) as spooled:  # as Starlette spools a file part
        with zipfile.ZipFile(spooled, "w") as archive:
            for i in range(24):
                archive.writestr(f"set/c{i % 3}/{i}.wav", clip(31.0, 16000, seed=i))  # ~2 MB each
        size = spooled.tell()
        assert size > 20 * 1024**2
        upload_file = UploadFile(spooled, filename="set.zip")
        with get_sessionmaker()() as session:
            user = TokenRepository(session).authenticate(token)
            assert user is not None
            dataset, peak = with_peak_memory(lambda: store_archive(session, user, upload_file, None))
            assert dataset.size == size and dataset.info["files"] == 24
    assert peak < 8 * 1024**2, peak


def test_a_dataset_row_holds_an_archive_size_past_2_gib(client, api_env: Path) -> None:
    """PostgreSQL's INTEGER stops at 2 GiB - 1; a 5 GiB archive's size must fit (migration 0007)."""
    from core.db import get_sessionmaker
    from core.models import Dataset
    from core.repositories import DatasetRepository

    with get_sessionmaker()() as session:
        dataset = DatasetRepository(session).add(
            Dataset(owner_id=None, name="big", format="folder", key="k", sha256="0" * 64, size=5 * 1024**3, info={})
        )
        session.commit()
        dataset_id = dataset.id
    with get_sessionmaker()() as session:
        assert session.get(Dataset, dataset_id).size == 5 * 1024**3

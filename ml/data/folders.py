"""Folder data sets: an archive (.zip, .tar, .tar.gz) of class folders, each file one sample --
audio clips (WAV, FLAC) or images (PNG, JPEG). ``genres/blues/blues.00001.wav`` is a sample of
class ``blues``.

`scan_archive` checks an archive as it is read, from a file on disk (never held in memory):
member names that leave their folder, links, too many files, an inflation past the limits (zip
and tar bombs), a file that does not decode (named), one class only -- each a `DatasetError`
whose `problem` the host maps to a status. `read_members` yields the samples back for the worker.

Light on purpose (the API runs the scan): numpy, Pillow and soundfile only; no torch.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from ml.data.uploads import DatasetError

Kind = Literal["audio", "image"]
AUDIO_SUFFIXES = (".wav", ".flac")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IGNORED = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")
MAX_CLASSES = 1000
ARCHIVE_FORMATS = ("zip", "tar")


@dataclass(frozen=True)
class FolderLimits:
    """Bounds on a folder archive, checked while it is read."""

    max_files: int = 100_000
    max_expanded_bytes: int = 20 * 1024**3
    max_file_bytes: int = 256 * 1024**2
    max_ratio: float = 100.0  # inflated / compressed size (audio and images barely compress)
    max_image_pixels: int = 64_000_000
    max_audio_seconds: float = 3600.0


@dataclass
class Member:
    """One sample file of the archive."""

    name: str  # the path inside the archive
    label: str  # its class folder
    size: int  # inflated bytes


def archive_format(head: bytes, filename: str = "") -> str | None:
    """``zip`` or ``tar`` (plain or gzip-compressed) from the first bytes, or None."""
    if head.startswith(b"PK\x03\x04") and not filename.lower().endswith(".npz"):
        return "zip"
    if head.startswith(b"\x1f\x8b") or filename.lower().endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def _label_of(name: str) -> tuple[str, str] | None:
    """(class, file) of a member path ``[top/]class/file``, or None for one to skip. Raises on a
    path that leaves the archive's folder."""
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise DatasetError(f"{name!r}: absolute paths are not allowed in the archive")
    parts = [p for p in posixpath.normpath(name).split("/") if p not in ("", ".")]
    if ".." in name.split("/") or (parts and parts[0] == ".."):
        raise DatasetError(f"{name!r}: a member name may not leave its folder ('..')")
    if any(name.startswith(i) or posixpath.basename(name) == i for i in IGNORED):
        return None
    if not parts or parts[-1].startswith("."):
        return None
    if len(parts) < 2:
        raise DatasetError(f"{name!r}: every file must sit in a class folder (class/file)")
    return parts[-2], parts[-1]


def _kind_of(filename: str) -> Kind | None:
    lower = filename.lower()
    if lower.endswith(AUDIO_SUFFIXES):
        return "audio"
    if lower.endswith(IMAGE_SUFFIXES):
        return "image"
    return None


class _Archive:
    """Zip or tar, member by member, from a file object."""

    def __init__(self, file: IO[bytes], fmt: str) -> None:
        self.fmt = fmt
        try:
            if fmt == "zip":
                self.zip: zipfile.ZipFile | None = zipfile.ZipFile(file)
                self.tar: tarfile.TarFile | None = None
            else:
                self.zip = None
                self.tar = tarfile.open(fileobj=file, mode="r:*")  # noqa: SIM115
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
            raise DatasetError(f"not a readable {fmt} archive: {exc}") from exc

    def members(self, limits: FolderLimits) -> Iterator[tuple[str, int, int, Any]]:
        """(name, inflated size, compressed size, handle) of every regular file; refuses links."""
        if self.zip is not None:
            for info in self.zip.infolist():
                if info.is_dir():
                    continue
                mode = info.external_attr >> 16
                if mode and (mode & 0o170000) == 0o120000:
                    raise DatasetError(f"{info.filename!r}: links are not allowed in the archive")
                yield info.filename, info.file_size, info.compress_size, info
            return
        assert self.tar is not None
        entries, inflated = 0, 0
        try:
            # next() rather than iteration, forgetting each header once read: tarfile otherwise
            # keeps every header it has seen, and a tar of millions of empty entries is a bomb too.
            while (entry := self.tar.next()) is not None:
                self.tar.members.clear()  # type: ignore[attr-defined]  # tarfile's list of headers read
                entries += 1
                if entries > 2 * (limits.max_files + MAX_CLASSES) + 16:
                    raise DatasetError(f"the archive holds more than {limits.max_files} files", "too_large")
                inflated += entry.size  # every member's bytes are inflated, even a skipped one's
                if inflated > limits.max_expanded_bytes:
                    raise DatasetError(f"the archive inflates past {limits.max_expanded_bytes} bytes", "too_large")
                if entry.isdir():
                    continue
                if entry.issym() or entry.islnk():
                    raise DatasetError(f"{entry.name!r}: links are not allowed in the archive")
                if not entry.isfile():
                    raise DatasetError(f"{entry.name!r}: only regular files are allowed in the archive")
                yield entry.name, entry.size, entry.size, entry
        except (tarfile.TarError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"the archive is damaged: {exc}") from exc

    def read(self, handle: Any, limit: int) -> bytes:
        try:
            if self.zip is not None:
                with self.zip.open(handle) as member:
                    data = member.read(limit + 1)
            else:
                assert self.tar is not None
                extracted = self.tar.extractfile(handle)
                data = extracted.read(limit + 1) if extracted is not None else b""
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError) as exc:
            raise DatasetError(
                f"{getattr(handle, 'filename', getattr(handle, 'name', '?'))}: unreadable ({exc})"
            ) from exc
        if len(data) > limit:
            raise DatasetError(f"a member inflates past its declared size (limit {limit} bytes)", "too_large")
        return data


def audio_info(data: bytes, name: str) -> dict[str, Any]:
    """Sample rate, channels and duration of one clip; DatasetError naming it if it does not decode."""
    import soundfile

    try:
        info = soundfile.info(io.BytesIO(data))
        if info.frames <= 0:
            raise ValueError("no audio frames")
    except Exception as exc:  # libsndfile raises its own types
        raise DatasetError(f"{name}: not a readable WAV/FLAC file ({exc})", "unusable") from exc
    return {
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "seconds": info.frames / info.samplerate,
    }


def image_info(data: bytes, name: str, max_pixels: int) -> dict[str, Any]:
    """Width, height and mode of one image, decoded fully (a truncated file fails here)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise DatasetError(f"{name}: {width}x{height} pixels, more than the allowed {max_pixels}", "too_large")
            mode = image.mode
            image.load()
    except DatasetError:
        raise
    except Exception as exc:  # Pillow raises many types on bad files
        raise DatasetError(f"{name}: not a readable PNG/JPEG image ({exc})", "unusable") from exc
    return {"width": width, "height": height, "mode": mode}


def _summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"min": round(float(a.min()), 4), "mean": round(float(a.mean()), 4), "max": round(float(a.max()), 4)}


def scan_archive(path: str | Path, limits: FolderLimits | None = None, filename: str = "") -> dict[str, Any]:
    """Check a folder archive on disk and describe it (classes, counts, audio durations and
    sample rates or image sizes). Every sample is decoded once, so a broken file is named here
    rather than at training time.

    Raises:
        DatasetError: malformed (bad archive, path, link), too_large (limits), unusable (a file
            that does not decode, mixed audio and images, one class only).
    """
    limits = limits or FolderLimits()
    path = Path(path)
    compressed_total = path.stat().st_size
    with path.open("rb") as file:
        fmt = archive_format(file.read(512), filename)
        if fmt is None:
            raise DatasetError("not a .zip or .tar(.gz) archive of class folders")
        file.seek(0)
        archive = _Archive(file, fmt)
        counts: dict[str, int] = {}
        kinds: set[Kind] = set()
        rates: dict[str, int] = {}
        seconds: list[float] = []
        sizes: dict[str, int] = {}
        expanded = 0
        for name, size, compressed, handle in archive.members(limits):
            labelled = _label_of(name)
            if labelled is None:
                continue
            label, file_name = labelled
            kind = _kind_of(file_name)
            if kind is None:
                raise DatasetError(
                    f"{name}: unsupported file type; class folders may hold WAV/FLAC audio or PNG/JPEG images",
                    "unusable",
                )
            kinds.add(kind)
            if len(kinds) > 1:
                raise DatasetError(
                    f"{name}: the archive mixes audio and images; upload one kind per data set", "unusable"
                )
            files = sum(counts.values()) + 1
            if files > limits.max_files:
                raise DatasetError(f"the archive holds more than {limits.max_files} files", "too_large")
            if size > limits.max_file_bytes:
                raise DatasetError(
                    f"{name}: {size} bytes, more than the {limits.max_file_bytes} allowed per file", "too_large"
                )
            if fmt == "tar" and expanded > 1024**2 and expanded > limits.max_ratio * max(1, file.tell()):
                raise DatasetError(  # the members read so far against the compressed bytes read for them
                    f"the archive inflates {expanded / max(1, file.tell()):.0f}:1, more than the allowed "
                    f"{limits.max_ratio:g}:1",
                    "too_large",
                )
            expanded += size
            if expanded > limits.max_expanded_bytes:
                raise DatasetError(f"the archive inflates past {limits.max_expanded_bytes} bytes", "too_large")
            if fmt == "zip" and size > 1024**2 and size > limits.max_ratio * max(1, compressed):
                raise DatasetError(
                    f"{name}: compressed {size / max(1, compressed):.0f}:1, more than the allowed "
                    f"{limits.max_ratio:g}:1 (audio and images barely compress; a zip bomb does)",
                    "too_large",
                )
            data = archive.read(handle, size)
            if kind == "audio":
                info = audio_info(data, name)
                if info["seconds"] > limits.max_audio_seconds:
                    raise DatasetError(
                        f"{name}: {info['seconds']:.0f} s long; at most {limits.max_audio_seconds:g} s", "too_large"
                    )
                rates[str(info["sample_rate"])] = rates.get(str(info["sample_rate"]), 0) + 1
                seconds.append(info["seconds"])
            else:
                info = image_info(data, name, limits.max_image_pixels)
                key = f"{info['width']}x{info['height']} {info['mode']}"
                sizes[key] = sizes.get(key, 0) + 1
            counts[label] = counts.get(label, 0) + 1
            if len(counts) > MAX_CLASSES:
                raise DatasetError(f"more than {MAX_CLASSES} class folders", "too_large")
    if fmt == "tar" and expanded > limits.max_ratio * max(compressed_total, 1) and expanded > 1024**2:
        raise DatasetError(
            f"the archive inflates {expanded / compressed_total:.0f}:1, more than the allowed {limits.max_ratio:g}:1",
            "too_large",
        )
    if not counts:
        raise DatasetError("the archive holds no audio or image files in class folders", "unusable")
    if len(counts) < 2:
        raise DatasetError(
            f"only one class folder ({next(iter(counts))!r}); a classifier needs at least two", "unusable"
        )
    out: dict[str, Any] = {
        "kind": next(iter(kinds)),
        "archive": fmt,
        "files": sum(counts.values()),
        "expanded_bytes": expanded,
        "classes": sorted(counts),
        "class_counts": dict(sorted(counts.items())),
        "task": "classification",
    }
    if seconds:
        out["audio"] = {"sample_rates": rates, "seconds": _summary(seconds)}
    if sizes:
        out["images"] = {"sizes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:10])}
    return out


def read_members(path: str | Path, limits: FolderLimits | None = None) -> Iterator[tuple[str, str, bytes]]:
    """(class, member name, bytes) of every sample, in archive order (the worker's reader)."""
    limits = limits or FolderLimits()
    with Path(path).open("rb") as file:
        fmt = archive_format(file.read(512), str(path))
        if fmt is None:
            raise DatasetError("not a .zip or .tar(.gz) archive of class folders")
        file.seek(0)
        archive = _Archive(file, fmt)
        for name, size, _, handle in archive.members(limits):
            labelled = _label_of(name)
            if labelled is None or _kind_of(labelled[1]) is None:
                continue
            yield labelled[0], name, archive.read(handle, size)

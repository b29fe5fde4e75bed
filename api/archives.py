"""Folder data sets: a .zip or .tar(.gz) of class folders (audio clips or images, one folder per
class), uploaded as a multipart file part.

The archive is never held in memory: Starlette spools the part to disk as it streams in; it is
copied from there a chunk at a time to a temporary file (hashed and bounded by
`max_archive_bytes` on the way), checked there by `ml.data.folders.scan_archive` (in the route's
worker thread, off the event loop), and streamed into the artifact store with `put_file`. A zip's
central directory is walked here first, a record at a time, so a directory of millions of
entries is refused before `zipfile` reads it whole. Any error stores nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any

from fastapi import HTTPException
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from core.artifacts import CHUNK, get_artifact_store
from core.models import Dataset, User
from core.repositories import DatasetRepository
from core.settings import Settings, get_settings
from ml.data.folders import MAX_CLASSES, FolderLimits, archive_format, scan_archive
from ml.data.uploads import DatasetError

FORMAT = "folder"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
TABLE_SUFFIXES = (".csv", ".txt", ".npz")
UPLOAD_STATUS = {"malformed": 400, "too_large": 413, "unusable": 422}
HEAD_BYTES = 512  # enough for the zip, gzip and ustar magic numbers
FORM_SLACK = 64 * 1024  # multipart boundaries, part headers and the form's text fields
MAX_NAME_BYTES = 4096  # one member's path
DIRECTORY_BYTES_PER_ENTRY = 512  # a generous average size of one central-directory record
CENTRAL_HEADER = struct.Struct("<4s6H3L5H2L")  # 46 bytes, then name, extra field and comment


def upload_body_limit(settings: Settings) -> int:
    """The body limit of `POST /datasets`: the largest file it accepts, plus the form around it."""
    return max(settings.max_request_bytes, settings.max_upload_bytes, settings.max_archive_bytes) + FORM_SLACK


def folder_limits(settings: Settings) -> FolderLimits:
    return FolderLimits(
        max_files=settings.max_archive_files,
        max_expanded_bytes=settings.max_archive_expanded_bytes,
        max_ratio=settings.max_archive_ratio,
    )


def _status(exc: DatasetError) -> HTTPException:
    return HTTPException(UPLOAD_STATUS[exc.problem], detail=str(exc))


def max_entries(limits: FolderLimits) -> int:
    """Records a zip's directory may hold: the sample files, their class folders, and the
    `__MACOSX/` twins a Mac's archiver adds for each."""
    return 2 * (limits.max_files + MAX_CLASSES) + 16


def zip_directory(file: IO[bytes], limits: FolderLimits) -> tuple[int, bool]:
    """(records, whether every file is a `.npy`, i.e. an NPZ) of a zip's central directory,
    read a record at a time. Raises DatasetError: too_large past `max_entries` or its size
    bound; malformed when damaged."""
    end = getattr(zipfile, "_EndRecData")(file)  # the record zipfile itself trusts  # noqa: B009
    if not end:
        raise DatasetError("not a readable zip archive: no end of central directory")
    size, offset, location = int(end[5]), int(end[6]), int(end[9])
    start = location - size - offset
    if end[0] == b"PK\x06\x06":  # zip64: its end record and locator sit before the plain one
        start -= 56 + 20
    start += offset
    limit = max_entries(limits)
    if size > limit * DIRECTORY_BYTES_PER_ENTRY:
        raise DatasetError(f"the archive's directory is {size} bytes: more than {limit} files' worth", "too_large")
    if start < 0:
        raise DatasetError("not a readable zip archive: bad central directory offset")
    file.seek(start)
    records, npy_only, read = 0, True, 0
    while read < size:
        header = file.read(CENTRAL_HEADER.size)
        if len(header) != CENTRAL_HEADER.size or header[:4] != b"PK\x01\x02":
            raise DatasetError("not a readable zip archive: damaged central directory")
        fields = CENTRAL_HEADER.unpack(header)
        name_length, extra_length, comment_length = fields[10], fields[11], fields[12]
        if name_length > MAX_NAME_BYTES:
            raise DatasetError(f"a member name of {name_length} bytes; at most {MAX_NAME_BYTES}")
        name = file.read(name_length)
        file.seek(extra_length + comment_length, 1)
        read += CENTRAL_HEADER.size + name_length + extra_length + comment_length
        records += 1
        if records > limit:
            raise DatasetError(f"the archive holds more than {limits.max_files} files", "too_large")
        if not name.endswith(b"/"):
            npy_only = npy_only and name.lower().endswith(b".npy")
    return records, npy_only and records > 0


def _head(file: IO[bytes]) -> bytes:
    file.seek(0)
    head = file.read(HEAD_BYTES)
    file.seek(0)
    return head


def is_folder_archive(upload: UploadFile) -> bool:
    """Whether an upload is a folder archive (else a CSV or an NPZ), by its magic numbers: a
    zip whose files are all `.npy` is an NPZ, any other zip or a tar (plain or gzip) a folder
    archive. A name ending in .csv/.txt/.npz is taken at its word, one ending in .zip/.tar/.tgz
    too (a file that is no such archive is then refused as one)."""
    filename = (upload.filename or "").lower()
    if filename.endswith(TABLE_SUFFIXES):
        return False
    head = _head(upload.file)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            _, npy_only = zip_directory(upload.file, folder_limits(get_settings()))
        except DatasetError as exc:
            if exc.problem == "too_large":
                raise _status(exc) from exc
            return True  # a damaged zip: refused by the archive check, which names the fault
        finally:
            upload.file.seek(0)
        return not npy_only
    return filename.endswith(ARCHIVE_SUFFIXES) or archive_format(head, filename) is not None


def _copy_limited(source: IO[bytes], target: Path, limit: int) -> tuple[str, int, bytes]:
    """Copy a file a chunk at a time; (sha256, size, first bytes). 413 past `limit` bytes."""
    digest, size, head = hashlib.sha256(), 0, b""
    source.seek(0)
    with target.open("wb") as out:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, detail=f"the archive is larger than the limit of {limit} bytes")
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size, head


def stored_suffix(fmt: str, head: bytes) -> str:
    """The stored file's extension: zip, tar or tar.gz."""
    if fmt == "zip":
        return "zip"
    return "tar.gz" if head.startswith(b"\x1f\x8b") else "tar"


def store_archive(session: Session, user: User, upload: UploadFile, name: str | None) -> Dataset:
    """Check a folder archive and store it (in a worker thread: the scan decodes every file).
    Nothing is stored when any step fails."""
    settings = get_settings()
    limits = folder_limits(settings)
    filename = upload.filename or ""
    with tempfile.TemporaryDirectory(prefix="trainlab-upload-") as folder:
        path = Path(folder) / "archive"
        sha256, size, head = _copy_limited(upload.file, path, settings.max_archive_bytes)
        fmt = archive_format(head, filename)
        if fmt is None:
            raise HTTPException(400, detail=f"{filename!r}: not a .zip or .tar(.gz) archive of class folders")
        try:
            if fmt == "zip":
                with path.open("rb") as file:
                    zip_directory(file, limits)
            info: dict[str, Any] = scan_archive(path, limits, filename)
        except DatasetError as exc:
            raise _status(exc) from exc
        dataset = DatasetRepository(session).add(
            Dataset(
                owner_id=user.id,
                name=(name or filename or f"upload.{stored_suffix(fmt, head)}")[:255],
                format=FORMAT,
                key="",
                sha256=sha256,
                size=size,
                info=info,
            )
        )
        store = get_artifact_store()
        dataset.key = store.dataset_key(dataset.id, stored_suffix(fmt, head))  # from the id: no user text
        try:
            store.put_file(dataset.key, path)
            session.commit()
        except BaseException:
            session.rollback()
            with contextlib.suppress(Exception):
                store.delete(dataset.key)
            raise
    return dataset


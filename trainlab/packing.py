"""A folder data set (one sub-folder per class) packed into a .zip for upload, a file at a time."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path


def pack_folder(folder: str | Path, target: str | Path) -> Path:
    """Write `folder` into the zip `target` under the folder's own name (`genres/blues/x.wav`),
    stored, not compressed (audio and images barely compress; storing is as fast as copying),
    in sorted order. Hidden files and folders are left out; so are folders reached through a
    link (never followed: no loops). Each file is copied in chunks, never read whole.

    Raises:
        ValueError: the folder holds no file to upload.
    """
    root = Path(folder).resolve()
    top = root.name or "dataset"
    target = Path(target)
    count = 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for current, folders, files in os.walk(root):
            folders[:] = sorted(d for d in folders if not d.startswith("."))
            for name in sorted(files):
                path = Path(current) / name
                if name.startswith(".") or not path.is_file():  # hidden, or a broken link or a pipe
                    continue
                archive.write(path, f"{top}/{path.relative_to(root).as_posix()}")
                count += 1
    if count == 0:
        target.unlink(missing_ok=True)
        raise ValueError(f"{folder}: no files to upload (expected one sub-folder per class)")
    return target

"""The private folders in which a data-parallel run hands ranks 1..N-1 their part (the users'
training rows among it): ``trainlab-ddp-<pid>-*`` in the temporary directory, named after the
process that owns them, so that one left behind by a worker killed with SIGKILL is removed by
its ranks when they find that process gone, and by the next worker when it starts (`sweep`).
No torch: a worker's main process sweeps before it imports any."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = "trainlab-ddp-"
PARENT_ENV = "TRAINLAB_DDP_PARENT"  # a rank's environment: the pid of the process that started it
_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")


def create() -> Path:
    """A new folder owned by this process, readable by its user only (mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    path.chmod(0o700)  # mkdtemp's mode already; said here, since rows of users' data go in it
    return path


def owner(path: Path) -> int | None:
    """The pid of the process that created the folder, None for a name not of `create`'s."""
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def sweep(root: Path | None = None) -> list[Path]:
    """Remove the folders under `root` (the temporary directory) whose owner process is gone;
    returns them."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid = owner(path)
        if pid is not None and path.is_dir() and not alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed

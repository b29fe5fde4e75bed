"""A worker that starts removes what data-parallel runs of a worker killed with SIGKILL left in the
temporary directory (their folders hold users' training rows), and only that."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def gone_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_starting_worker_sweeps_the_folders_of_gone_processes(tmp_path: Path) -> None:
    stale = tmp_path / f"trainlab-ddp-{gone_pid()}-abc123"
    (stale / "sub").mkdir(parents=True)
    (stale / "shard1.pt").write_bytes(b"rows")
    live = tmp_path / f"trainlab-ddp-{os.getpid()}-def456"  # a run of a live process
    live.mkdir()
    other = tmp_path / "trainlab-ddp-notmine"
    other.mkdir()
    code = "from workers.app import _sweep_data_parallel_folders\n_sweep_data_parallel_folders()\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINLAB_")}
    env |= {"TRAINLAB_DATA_DIR": str(tmp_path / "data"), "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not stale.exists() and live.exists() and other.exists()

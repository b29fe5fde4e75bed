"""A worker's memory budget turns an oversized run into the run's own MemoryError."""

from __future__ import annotations

import subprocess
import sys


def test_a_run_past_the_memory_budget_gets_a_memory_error_not_the_oom_killer() -> None:
    code = (
        "from workers.limits import apply_memory_budget\n"
        "import numpy as np\n"
        "small = np.ones(10_000_000)  # 80 MB: within the budget\n"
        "apply_memory_budget(400)\n"
        "try:\n"
        "    np.ones(200_000_000)  # 1.6 GB\n"
        "except MemoryError:\n"
        "    print('MemoryError')\n"
        "more = np.ones(10_000_000)  # the process goes on\n"
        "print('alive', int(more.sum()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["MemoryError", "alive", "10000000"]

"""Each worker process limits every thread pool (torch, BLAS, OpenMP) so that processes x
threads never exceed the cores, including the pools numpy and scikit-learn opened before fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_process_limits_blas_and_torch_threads(tmp_path: Path) -> None:
    code = (
        "import json, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "before = max(p['num_threads'] for p in threadpool_info())\n"
        "from workers.app import _init_worker_process\n"
        "_init_worker_process()\n"
        "import torch\n"
        "after = [p['num_threads'] for p in threadpool_info()]\n"
        "print(json.dumps({'before': before, 'after': after, 'torch': torch.get_num_threads()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS") and not k.startswith("TRAINLAB_")}
    env |= {"TRAINLAB_DATA_DIR": str(tmp_path), "TRAINLAB_TORCH_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"] == (os.cpu_count() or 1)  # numpy's pool as the parent opened it
    assert set(result["after"]) == {1} and result["torch"] == 1

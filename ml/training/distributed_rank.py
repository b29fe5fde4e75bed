"""One of ranks 1..N-1 of a data-parallel run that `ml.training.distributed.fit_distributed`
started: ``python -m ml.training.distributed_rank FOLDER``, with torchrun's variables ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` (rank 0's TCPStore) in its environment.

It reads its part of the run from FOLDER, trains it with the others and exits: 0 when training
finished, 1 after writing its error to ``FOLDER/rank<r>.error.json`` (rank 0 raises it). It exits
by itself when the process that started it is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist

from ml.spec import TrainSpec
from ml.training import run_folders
from ml.training.distributed import COLLECTIVE_TIMEOUT, JOIN_TIMEOUT, JOINED, train_rank
from ml.training.loop import Tensors


def _parent_gone() -> bool:
    """The process that started this rank (its pid in the environment, so that a parent gone
    before this rank ran is noticed too) is gone: this rank was handed to another parent."""
    return os.getppid() != int(os.environ[run_folders.PARENT_ENV])


def _exit_with_parent(run_dir: Path) -> None:
    """A rank never outlives the process that started it (a worker killed with SIGKILL), and
    removes the run's folder (users' training rows) that the parent could not."""

    def watch() -> None:
        while True:
            if _parent_gone():
                shutil.rmtree(run_dir, ignore_errors=True)
                os._exit(3)
            time.sleep(1.0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run_rank(run_dir: Path, rank: int, world: int, address: str, port: int) -> None:
    """Load this rank's part of the run, join the group and train."""
    job = json.loads((run_dir / "job.json").read_text())
    torch.set_num_threads(int(job["threads"]))
    device = torch.device(job["devices"][rank])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    data = torch.load(run_dir / "data.pt", map_location=device, weights_only=True)
    shard = torch.load(run_dir / f"shard{rank}.pt", map_location=device, weights_only=True)
    # Written by rank 0 into a private folder for this run: the model, batch transform and hooks.
    objects = torch.load(run_dir / "objects.pt", map_location=device, weights_only=False)
    generator = torch.Generator()  # train_rank seeds it and the global streams for this rank
    store = dist.TCPStore(address, port, world, is_master=False, timeout=JOIN_TIMEOUT)
    store.add(JOINED, 1)
    dist.init_process_group(job["backend"], store=store, rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT)
    train_rank(
        objects["model"].to(device),
        Tensors(shard["X_train"], shard["y_train"], data["X_val"], data["y_val"]),
        TrainSpec.model_validate(job["train"]),
        job["task"],
        None,
        generator,
        seed=int(job["seed"]),
        class_weights=data["class_weights"],
        val_class_weights=data["val_weights"],
        batch_transform=objects["batch_transform"],
        step_hooks=objects["step_hooks"],
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ml.training.distributed_rank FOLDER (started by fit_distributed)", file=sys.stderr)
        return 2
    run_dir, rank = Path(args[0]), int(os.environ["RANK"])
    _exit_with_parent(run_dir)
    try:
        run_rank(
            run_dir, rank, int(os.environ["WORLD_SIZE"]), os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
        )
        return 0
    except BaseException as exc:  # rank 0 raises it as the run's error
        traceback.print_exc()
        error = {"type": type(exc).__name__, "message": str(exc)}
        (run_dir / f"rank{rank}.error.json").write_text(json.dumps(error))
        # A parent killed with SIGKILL breaks the collectives as it dies, often before this rank
        # is handed to another parent: look again for a moment (the watch looks every second).
        for _ in range(10):
            if _parent_gone():
                shutil.rmtree(run_dir, ignore_errors=True)
                break
            time.sleep(0.1)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())

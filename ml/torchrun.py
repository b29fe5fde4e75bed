"""A train spec on processes that torchrun starts, on one host or several (its c10d rendezvous):

    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST0:29400 \\
        --rdzv-id RUN -m ml.torchrun SPEC.yaml OUT

Every process reads the spec and its data (a source every host can read: builtin, synthetic, a
file path; not an uploaded ``dataset/<id>``, which lives on the trainlab server), prepares them
as a worker does (seeded: the same on every rank) and trains its shard with the others
(`ml.training.distributed.fit_distributed`, which starts nothing under torchrun). The spec's
process count (``train.distributed.processes``) must be torchrun's world size (else it exits
with 2 before training). Rank 0 prints the metrics and writes the
artifacts and ``summary.json`` to OUT; the other ranks print nothing.

Each process trains on ``cuda:LOCAL_RANK`` when the host has GPUs (NCCL), else on the CPU (gloo).
This is not a trainlab service: no database, no queue, no cancel; torchrun restarts and
elastic membership are torchrun's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import yaml

from ml.reporter import PrintingReporter, Reporter
from ml.run import run_experiment
from ml.spec import parse_spec
from ml.training.distributed import TORCHRUN_MARKER


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or "WORLD_SIZE" not in os.environ:
        print("usage: torchrun [options] -m ml.torchrun SPEC.yaml OUT", file=sys.stderr)
        return 2
    spec = parse_spec(yaml.safe_load(Path(args[0]).read_text()))
    if spec.kind != "train":
        print(f"ml.torchrun runs train specs; this one is {spec.kind}", file=sys.stderr)
        return 2
    world = int(os.environ["WORLD_SIZE"])  # what dist.get_world_size() will say (env:// rendezvous)
    if spec.processes() != world:  # else every rank would train all the rows alone, or fail later
        print(
            f"ml.torchrun: the spec asks for {spec.processes()} data-parallel process(es) "
            f"(train.distributed.processes) and torchrun started {world}; make them equal",
            file=sys.stderr,
        )
        return 2
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and spec.train.device != "cpu"
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    os.environ[TORCHRUN_MARKER] = "1"  # fit_distributed trains in this group, starts nothing
    dist.init_process_group("nccl" if cuda else "gloo")  # torchrun's variables: env:// rendezvous
    try:
        rank = dist.get_rank()
        out = Path(args[1])
        reporter = PrintingReporter(out) if rank == 0 else Reporter()
        summary = run_experiment(spec, reporter, device=device)
        if rank == 0:
            (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

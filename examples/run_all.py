"""`make examples`: run every example through a real embedded service (the API and two worker
processes on a throwaway data directory) and write the results table the README quotes.

Usage: python -m examples.run_all [--only NAME ...] [--workers 2]
The table goes to examples/RESULTS.md and into README.md between the results markers.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import yaml

from examples import screenshots
from trainlab.client import Client

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# Examples that need another one to have run first (by experiment name).
ORDER_FIRST = ["transfer-pretrain", "tp2-transfer-pretrain"]
# An example whose data is generated and uploaded says so in a comment line:
#   # data: make_genres --clips 30 --seconds 3
# (a script of examples/data and its options); its data.source is set to the upload.
DATA_DIRECTIVE = re.compile(r"^# data: (make_[a-z_]+)((?: --[a-z_]+ [0-9.]+)*)\s*$", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedService:
    """`trainlab serve` + N `trainlab worker` on a temporary data directory."""

    def __init__(self, workers: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="trainlab-examples-"))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        threads = max(1, (os.cpu_count() or 1) // workers)
        self.env = {
            **os.environ,
            "TRAINLAB_DATA_DIR": str(self.dir),
            "TRAINLAB_TORCH_THREADS": str(threads),
            "TRAINLAB_CONFIG": str(self.dir / "client.json"),
            "TRAINLAB_SUBMIT_RATE_PER_MINUTE": "1000",
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers = workers

    def __enter__(self) -> EmbeddedService:
        cli = [sys.executable, "-m", "trainlab.cli"]
        subprocess.run([*cli, "migrate"], env=self.env, check=True, capture_output=True)
        code = "from trainlab.admin import create_user; print(create_user('examples', True))"
        self.token = subprocess.run(
            [sys.executable, "-c", code], env=self.env, check=True, capture_output=True, text=True
        ).stdout.split()[-1]
        log = open(self.dir / "service.log", "ab")  # noqa: SIM115
        self.procs.append(
            subprocess.Popen(
                [*cli, "serve", "--port", str(self.port)], env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        )
        for i in range(self.workers):
            self.procs.append(
                subprocess.Popen(
                    [*cli, "worker", "--name", f"examples{i}"],
                    env=self.env,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )
        client = Client(self.url, token=self.token)
        for _ in range(300):
            try:
                client.health()
                return self
            except Exception:
                time.sleep(0.2)
        raise RuntimeError((self.dir / "service.log").read_text()[-3000:])

    def __exit__(self, *_: Any) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 else f"{value:.3f}"
    return str(value)


def headline(kind: str, summary: dict[str, Any]) -> str:
    """The one line that says what the example showed."""
    test = summary.get("test") or {}
    if kind == "pinn":
        return (
            f"final loss {_fmt(summary.get('final_loss'))}, relative L2 error "
            f"{_fmt(summary.get('relative_l2_error'))}, {summary.get('training_seconds', 0):.0f} s of training"
        )
    if kind == "kfold":
        acc = (summary.get("validation") or {}).get("accuracy") or {}
        return (
            f"validation accuracy {_fmt(acc.get('mean'))} ± {_fmt(acc.get('std'))} over {summary.get('folds')} "
            f"folds; test accuracy {_fmt(test.get('accuracy'))} (evaluated once)"
        )
    if kind == "compare":
        rows = summary.get("ranking") or []
        key = summary.get("rank_by", "validation.loss")
        return "; ".join(f"{r['label']} {_fmt(r.get(key))} (gap {_fmt(r.get('gap'))})" for r in rows)
    if kind == "search":
        best = summary.get("best") or {}
        counts = summary.get("counts") or {}
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in (best.get("params") or {}).items())
        return (
            f"best {_fmt(best.get('value'))} at {params} ({counts.get('complete', 0)} complete, "
            f"{counts.get('pruned', 0)} pruned, {counts.get('failed', 0)} failed trials)"
        )
    if kind == "ensemble":
        ens = (summary.get("test") or {}).get("accuracy")
        members = (summary.get("member_spread") or {}).get("accuracy") or {}
        return f"ensemble accuracy {_fmt(ens)} vs members mean {_fmt(members.get('mean'))} ± {_fmt(members.get('std'))}"
    if kind == "analytic":
        return f"value {_fmt(summary.get('value'))}"
    parts = [f"{k} {_fmt(test[k])}" for k in ("accuracy", "recall", "f1", "pr_auc", "rmse", "r2") if k in test]
    verdict = (summary.get("diagnosis") or {}).get("verdict")
    if summary.get("warnings"):
        parts.append("accuracy warning")
    if "init" in summary:
        parts.append(f"from {summary['init'].get('from_experiment')}")
    return ", ".join(parts) + (f"; diagnosis {verdict}" if verdict else "")


def generated_upload(client: Client, text: str, cache: dict[str, int], workdir: Path) -> int | None:
    """The data set id of an example's generated data (generated, zipped and uploaded once per
    directive), or None when the example names no generator."""
    match = DATA_DIRECTIVE.search(text)
    if match is None:
        return None
    directive = match.group(0)
    if directive not in cache:
        script, options = match.group(1), match.group(2).split()
        out = workdir / f"{script}-{len(cache)}"
        printed = subprocess.run(
            [sys.executable, str(EXAMPLES / "data" / f"{script}.py"), str(out), *options],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        folder = Path(printed.strip().splitlines()[-1])
        archive = out / f"{folder.name}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as packed:
            for file in sorted(folder.rglob("*")):
                if file.is_file():
                    packed.write(file, file.relative_to(folder.parent))
        cache[directive] = client.upload_dataset(archive, name=folder.name).id
    return cache[directive]


def run(only: list[str], workers: int) -> list[dict[str, Any]]:
    files = sorted(EXAMPLES.glob("*.yaml"), key=lambda p: (p.stem not in ORDER_FIRST, p.stem))
    if only:
        files = [f for f in files if f.stem in only]
    results = []
    uploads: dict[str, int] = {}
    ids: dict[str, int] = {}  # example name -> experiment id, for the screenshots
    with EmbeddedService(workers) as service:
        client = Client(service.url, token=service.token)
        for path in files:
            text = path.read_text()
            spec = yaml.safe_load(text)
            started = time.monotonic()
            dataset_id = generated_upload(client, text, uploads, service.dir)
            if dataset_id is not None:
                spec.get("base", spec)["data"]["source"] = f"dataset/{dataset_id}"
            experiment = client.submit(spec)
            final = client.wait(experiment.id, poll=1.0, timeout=1800)
            ids[path.stem] = final.id
            seconds = time.monotonic() - started
            row = {
                "example": path.name,
                "kind": final.kind,
                "status": final.status,
                "seconds": seconds,
                "result": headline(final.kind, final.summary or {}) if final.status == "succeeded" else final.error,
            }
            print(f"{row['example']:32} {row['status']:10} {seconds:6.1f} s  {row['result']}", flush=True)
            results.append(row)
        screenshots.capture(service.url, service.token, ids, ROOT / "docs" / "screenshots")
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| example | kind | status | wall time | result |", "| --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| `{r['example']}` | {r['kind']} | {r['status']} | {r['seconds']:.0f} s | {r['result']} |")
    machine = f"{os.cpu_count()} CPU cores" + (", no GPU" if not _has_cuda() else "")
    stamp = time.strftime("%Y-%m-%d")
    return "\n".join(lines) + f"\n\nMeasured by `make examples` on {stamp}, {machine}, two workers.\n"


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def write(text: str) -> None:
    (EXAMPLES / "RESULTS.md").write_text("# Example results\n\n" + text)
    readme = ROOT / "README.md"
    content = readme.read_text()
    if BEGIN in content and END in content:
        head, rest = content.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        readme.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=[], help="example names without .yaml")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    results = run(args.only, args.workers)
    if not args.only:
        write(table(results))
    failed = [r for r in results if r["status"] != "succeeded"]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

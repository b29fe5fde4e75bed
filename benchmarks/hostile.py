"""Hostile requests against a running API: what each attack costs the server and everyone else.

Starts the API as a user would (`trainlab migrate`, `trainlab serve`, embedded default in a
temporary data directory; no worker is needed: every attack is answered at the API), creates
two users, then sends each attack once while a probe thread polls `/health` and samples the
API process's resident memory every 10 ms. One line per attack:

    attack                            status  peak_rss_mb  rss_growth_mb  longest_health_ms

`peak_rss_mb` is the API's largest resident size while the attack was in flight,
`rss_growth_mb` that minus its size just before; `longest_health_ms` the slowest `/health`
answer meanwhile (how long the attack stalled everyone else). The last line sums up:
``attacks=N worst_growth_mb=... worst_health_ms=... non_4xx=0``; the exit status is 1 when an
attack got anything but a 4xx.

Usage:
    .venv/bin/python benchmarks/hostile.py [--port 8765]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hostile_inputs import forged_npz, npz_bytes, wide_csv, yaml_alias_bomb  # noqa: E402

TRAIN = {"name": "t", "data": {"source": "builtin/iris"}, "train": {"epochs": 1}}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Probe:
    """Polls /health and samples the API's memory until stopped."""

    def __init__(self, url: str, pid: int) -> None:
        self.url, self.pid = url, pid
        self.longest = 0.0
        self.peak = 0.0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._health), threading.Thread(target=self._memory)]

    def _health(self) -> None:
        with httpx.Client(timeout=120) as http:
            while True:  # at least one answer per attack, the last one sent while it was in flight
                start = time.perf_counter()
                http.get(f"{self.url}/api/v1/health")
                self.longest = max(self.longest, time.perf_counter() - start)
                if self._stop.wait(0.02):
                    return

    def _memory(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.01)

    def __enter__(self) -> Probe:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def attacks(alice_dataset: int) -> dict[str, Callable[[httpx.Client, httpx.Client, str], httpx.Response]]:
    """name -> send(bob, anonymous, base url); Bob is a signed-in user, Alice owns the data set."""
    theirs = {"source": f"dataset/{alice_dataset}", "target": "label"}
    yaml = {"Content-Type": "application/yaml"}
    spec = "/api/v1/experiments"
    costly_space = {f"model.hidden.{i}": {"type": "categorical", "choices": list(range(1, 101))} for i in range(32)}
    legal_space = {f"model.hidden.{i}": {"type": "categorical", "choices": list(range(1, 64))} for i in range(8)}
    return {
        "yaml alias bomb (0.5 KB)": lambda b, a, u: b.post(spec, content=yaml_alias_bomb(), headers=yaml),
        "json nesting 100k deep": lambda b, a, u: b.post(
            spec, content="[" * 100_000 + "]" * 100_000, headers={"Content-Type": "application/json"}
        ),
        "5000-digit integer": lambda b, a, u: b.post(spec, content="name: x\nseed: " + "9" * 5000, headers=yaml),
        "another's data in a variant": lambda b, a, u: b.post(
            spec,
            json={"name": "c", "kind": "compare", "base": TRAIN,
                  "variants": [{"label": "a", "set": {}}, {"label": "b", "set": {"data": theirs}}]},
        ),
        "another's data as a search choice": lambda b, a, u: b.post(
            spec,
            json={"name": "s", "kind": "search", "base": TRAIN,
                  "space": {"data": {"type": "categorical", "choices": [TRAIN["data"], theirs]}}},
        ),
        "trial injection": lambda b, a, u: b.post(
            spec, json={**TRAIN, "trial": {"study": "trainlab-search-1", "number": 9}}
        ),
        "search space 32x100 choices": lambda b, a, u: b.post(
            spec, json={"name": "s", "kind": "search", "base": {**TRAIN, "model": {"hidden": [8] * 32}},
                        "space": costly_space},
        ),
        "legal search, 504 choices (201)": lambda b, a, u: b.post(
            spec, json={"name": "s", "kind": "search", "trials": 1, "base": {**TRAIN, "model": {"hidden": [8] * 8}},
                        "space": legal_space},
        ),
        "generator 20000 features": lambda b, a, u: b.post(
            spec, json={**TRAIN, "data": {"source": "synthetic/regression", "options": {"n_features": 20_000}}}
        ),
        "largest mlp, batch 65536": lambda b, a, u: b.post(
            spec, json={**TRAIN, "model": {"hidden": [4096] * 32}, "train": {"batch_size": 65536}}
        ),
        "priority high as a student": lambda b, a, u: b.post(spec, json={**TRAIN, "priority": "high"}),
        "cookie POST from another port": lambda b, a, u: a.post(
            spec,
            json=TRAIN,
            headers={"Origin": u.replace(u.rsplit(":", 1)[1], "8888")},
            cookies={"trainlab_token": b.headers["Authorization"].split()[1]},
        ),
        "npz zip bomb (1.2 GB inflated)": lambda b, a, u: b.post(
            "/api/v1/datasets", files={"file": ("bomb.npz", npz_bytes(X=np.zeros((40_000, 4_000)), y=np.zeros(40_000)))}
        ),
        "npz forged header (10^12 rows)": lambda b, a, u: b.post(
            "/api/v1/datasets", files={"file": ("forged.npz", forged_npz())}
        ),
        "csv 10000 columns (201)": lambda b, a, u: b.post(
            "/api/v1/datasets", files={"file": ("w.csv", wide_csv(10_000, 200))}
        ),
        "anonymous 60 MB upload": lambda b, a, u: a.post(
            "/api/v1/datasets",
            content=(b"a" * 1024**2 for _ in range(60)),
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        ),
    }


def start_api(port: int, data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    env = {**os.environ, "TRAINLAB_DATA_DIR": str(data_dir), "TRAINLAB_API_PORT": str(port)}
    for name in ("TRAINLAB_DATABASE_URL", "TRAINLAB_BROKER_URL"):
        env.pop(name, None)
    cli = [sys.executable, "-m", "trainlab.cli"]
    subprocess.run([*cli, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    log = open(data_dir / "api.log", "wb")  # noqa: SIM115 (kept open for the process's life)
    api = subprocess.Popen([*cli, "serve", "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200:
                return api, env
        except httpx.TransportError:
            time.sleep(0.2)
    api.kill()
    raise SystemExit("the API did not start; see " + str(data_dir / "api.log"))


def user(env: dict[str, str], name: str) -> str:
    code = f"from trainlab.admin import create_user; print(create_user({name!r}))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def uvicorn_pid(api: subprocess.Popen[bytes]) -> int:
    """`trainlab serve` runs uvicorn as its child: the process that holds the requests."""
    children = Path(f"/proc/{api.pid}/task/{api.pid}/children")
    pids = children.read_text().split() if children.exists() else []
    return int(pids[0]) if pids else api.pid


def clients(url: str, tokens: list[str]) -> Iterator[httpx.Client]:
    for token in tokens:
        yield httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trainlab-hostile-") as folder:
        api, env = start_api(args.port, Path(folder))
        url = f"http://127.0.0.1:{args.port}"
        try:
            alice, bob = clients(url, [user(env, "alice"), user(env, "bob")])
            anonymous = httpx.Client(base_url=url, timeout=300)
            csv = b"a,b,label\n" + b"".join(f"{i},{i % 3},{i % 2}\n".encode() for i in range(200))
            dataset = alice.post("/api/v1/datasets", files={"file": ("clinic.csv", csv)}, data={"target": "label"})
            pid = uvicorn_pid(api)
            rows: list[dict[str, Any]] = []
            print(f"{'attack':36s} {'status':>6s} {'peak_rss_mb':>11s} {'rss_growth_mb':>13s} {'longest_health_ms':>17s}")  # noqa: E501
            for name, send in attacks(dataset.json()["id"]).items():
                before = rss_mb(pid)
                with Probe(url, pid) as probe:
                    status = send(bob, anonymous, url).status_code
                row = {"attack": name, "status": status, "peak_rss_mb": probe.peak, "growth": probe.peak - before,
                       "health_ms": probe.longest * 1000}
                rows.append(row)
                print(f"{name:36s} {status:6d} {probe.peak:11.0f} {row['growth']:13.0f} {row['health_ms']:17.0f}")
        finally:
            api.terminate()
            api.wait(timeout=30)
    bad = [r for r in rows if (r["status"] != 201 if "(201)" in r["attack"] else not 400 <= r["status"] < 500)]
    print(
        f"attacks={len(rows)} worst_growth_mb={max(r['growth'] for r in rows):.0f} "
        f"worst_health_ms={max(r['health_ms'] for r in rows):.0f} unexpected={len(bad)}"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

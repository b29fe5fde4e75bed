"""The methodology cases (`tests/ml/methodology_cases.py`) through `ml` alone, several seeds each:
a table of verdicts, whether each is right, and on the last line how many are.

    python benchmarks/methodology.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.run import run_experiment  # noqa: E402
from tests.ml.methodology_cases import CASES, load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="data/run seeds per case")
    args = parser.parse_args()
    right = total = 0
    print(f"{'case':<62} {'seed':>4} {'verdict':<9} {'expected':<14} {'main metric':>12} {'s':>5}  problems")
    for case in CASES:
        for seed in range(args.seeds):
            raw = case.data(seed)
            spec = {**case.spec, "seed": seed}
            started = time.perf_counter()
            summary = run_experiment(spec, resolve_upload=lambda _id, _spec, raw=raw: load(raw))
            verdict = summary["diagnosis"]["verdict"]
            problems = case.check(summary)
            if verdict not in case.verdicts:
                problems.insert(0, f"verdict {verdict}")
            test = summary["test"]
            metric = ("roc_auc", test.get("roc_auc")) if "roc_auc" in test else ("r2", test.get("r2"))
            if metric[1] is None:
                metric = ("accuracy", test.get("accuracy"))
            total += 1
            right += not problems
            print(
                f"{case.name:<62} {seed:>4} {verdict:<9} {'/'.join(case.verdicts):<14} "
                f"{metric[0]:>7} {metric[1]:.3f} {time.perf_counter() - started:5.1f}  {'; '.join(problems) or 'ok'}",
                flush=True,
            )
    print(f"right: {right} of {total}")


if __name__ == "__main__":
    main()

"""`learned-lr benchmark --workers 2` vs one process on this CPU: the same cells, fresh caches, wall-clock ratio.

One process uses torch's threads for each run; two workers run two cells at once with cores / 2 threads
each. Rounds alternate the two so that a machine that slows down mid-way hurts both alike.

    .venv/bin/python benchmarks/benchmark_workers.py --families mnist-cnn,digits --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from learned_lr.experiments.benchmark import contenders, run_benchmark
from learned_lr.experiments.suites import SUITES


def timed(families: list[str], workers: int, multipliers: list[float]) -> float:
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        run_benchmark(SUITES["small"], families, contenders(["cosine", "constant", "bundled"]), Path(work), multipliers,
                      seeds=2, progress=False, workers=workers)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="mnist-cnn,digits", help="small-suite families to run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    families, multipliers = args.families.split(","), [0.1, 1.0, 10.0]
    one, many = [], []
    for _ in range(args.rounds):
        one.append(timed(families, 1, multipliers))
        many.append(timed(families, args.workers, multipliers))
    print(f"{os.cpu_count()} cores; small suite {','.join(families)}: tuning + 3 contenders x 3 multipliers x 2 seeds")
    print(f"1 process:  {' '.join(f'{t:.1f}' for t in one)} s")
    print(f"{args.workers} workers: {' '.join(f'{t:.1f}' for t in many)} s")
    print(f"speed-up (median): {statistics.median(one) / statistics.median(many):.2f}x")


if __name__ == "__main__":
    main()

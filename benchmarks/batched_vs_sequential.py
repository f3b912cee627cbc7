"""Trainee-steps per second: N batched MLP runs vs the same N runs stepped one after another.

Both are measured side by side in this one process, alternating rounds so that machine noise
hits both alike; the ratio is what to read, not the absolute numbers.

    .venv/bin/python benchmarks/batched_vs_sequential.py --runs 32 --steps 40 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from learned_lr.tasks import TrainingRun, load_mnist
from learned_lr.tasks.batched import BatchedMLPRuns
from learned_lr.tasks.config import TaskConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()

    torch.manual_seed(0)
    data = load_mnist()
    task = TaskConfig(hidden=args.hidden)
    seeds = list(range(args.runs))
    lrs = torch.full((args.runs,), 0.05)
    batched = BatchedMLPRuns(task, seeds, data)
    sequential = [TrainingRun(task, seed, data) for seed in seeds]
    batched.step(lrs)  # warm-up: first-call allocations
    for run in sequential:
        run.step(0.05)

    batched_rates, sequential_rates = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.steps):
            batched.step(lrs)
        batched_rates.append(args.runs * args.steps / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(args.steps):
            for run in sequential:
                run.step(0.05)
        sequential_rates.append(args.runs * args.steps / (time.perf_counter() - start))

    b, s = statistics.median(batched_rates), statistics.median(sequential_rates)
    print(f"threads={torch.get_num_threads()} runs={args.runs} hidden={args.hidden} steps/round={args.steps} rounds={args.rounds}")
    print(f"batched:    {b:8.0f} trainee-steps/s (median)")
    print(f"sequential: {s:8.0f} trainee-steps/s (median)")
    print(f"ratio batched/sequential: {b / s:.2f}x")


if __name__ == "__main__":
    main()

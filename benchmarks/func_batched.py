"""Trainee-steps per second per task family: N torch.func batched runs vs the same N runs one after another.

For every family ``tasks.functional.FuncBatchedRuns`` supports, at N = 8 and 32 (the benchmark
``small`` suite's model sizes), on the CPU and, when torch sees one, on a GPU. Both are measured
side by side in this one process, alternating rounds so that machine noise hits both alike; read
the ratio, not the absolute numbers.

    .venv/bin/python benchmarks/func_batched.py --steps 10 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from learned_lr.experiments.suites import SUITES
from learned_lr.tasks import TrainingRun, load_mnist
from learned_lr.tasks.functional import FuncBatchedRuns, supports


def rate(step, runs: int, steps: int, device: str) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return runs * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="8,32")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--suite", default="small")
    args = parser.parse_args()
    torch.manual_seed(0)
    data = load_mnist()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"threads={torch.get_num_threads()} steps/round={args.steps} rounds={args.rounds} suite={args.suite}")
    print("| family | optimizer | device | N | batched steps/s | sequential steps/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for family, setup in SUITES[args.suite].families.items():
        if not supports(setup.task):
            continue
        for device in devices:
            task = dataclasses.replace(setup.task, device=device)
            for n in (int(x) for x in args.runs.split(",")):
                seeds = list(range(n))
                lrs = torch.full((n,), 1e-3)
                batched = FuncBatchedRuns(task, seeds, data)
                sequential = [TrainingRun(task, seed, data) for seed in seeds]
                batched.step(lrs)  # warm-up: first-call allocations
                for run in sequential:
                    run.step(1e-3)
                b_rates, s_rates = [], []
                for _ in range(args.rounds):
                    b_rates.append(rate(lambda: batched.step(lrs), n, args.steps, device))
                    s_rates.append(rate(lambda: [run.step(1e-3) for run in sequential], n, args.steps, device))
                b, s = statistics.median(b_rates), statistics.median(s_rates)
                print(f"| {family} | {task.optimizer} | {device} | {n} | {b:.0f} | {s:.0f} | {b / s:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

"""Trainee-steps per second of N batched MLP runs on CUDA vs on the CPU, side by side in one process.

Prints the ratio, with the GPU and CPU named. Without a CUDA GPU it says so and exits 0.

    .venv/bin/python benchmarks/gpu_trainees.py --runs 256 --steps 50 --rounds 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from learned_lr.tasks import load_mnist
from learned_lr.tasks.batched import BatchedMLPRuns
from learned_lr.tasks.config import TaskConfig


def rate(runs: BatchedMLPRuns, lrs: torch.Tensor, steps: int, sync: bool) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        report = runs.step(lrs)
    float(report.train_loss.sum())  # reports are on the CPU: this waits for the last step
    if sync:
        torch.cuda.synchronize()
    return runs.num_runs * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=256, help="MLP runs stepped together")
    parser.add_argument("--cpu-runs", type=int, default=32, help="runs on the CPU (rates are per trainee-step, so fewer is fine)")
    parser.add_argument("--steps", type=int, default=50, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to measure (the CPU path is benchmarks/batched_vs_sequential.py)")
        return
    data = load_mnist()
    gpu = BatchedMLPRuns(TaskConfig(device="cuda"), list(range(args.runs)), data)
    cpu = BatchedMLPRuns(TaskConfig(device="cpu"), list(range(args.cpu_runs)), data)
    gpu_lrs, cpu_lrs = torch.full((args.runs,), 0.05), torch.full((args.cpu_runs,), 0.05)
    rate(gpu, gpu_lrs, 3, True), rate(cpu, cpu_lrs, 3, False)  # warm-up
    gpu_rates, cpu_rates = [], []
    for _ in range(args.rounds):
        gpu_rates.append(rate(gpu, gpu_lrs, args.steps, True))
        cpu_rates.append(rate(cpu, cpu_lrs, args.steps, False))
    g, c = statistics.median(gpu_rates), statistics.median(cpu_rates)
    print(f"GPU: {torch.cuda.get_device_name()} ({args.runs} runs); CPU: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads ({args.cpu_runs} runs)")
    print(f"cuda: {g:9.0f} trainee-steps/s (median of {args.rounds})")
    print(f"cpu:  {c:9.0f} trainee-steps/s")
    print(f"ratio cuda/cpu: {g / c:.1f}x")


if __name__ == "__main__":
    main()

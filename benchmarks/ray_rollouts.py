"""PPO rollout throughput: the Ray backend with N workers vs the in-process backend, same job.

Each backend rolls the same sampling policy out on the same trainee runs (one PPO iteration's
job), alternating rounds in this one process; prints trainee-steps/s of each and the ratio.
On a 2-core machine two workers of one thread each compete with nothing else, the in-process
backend uses both cores through torch's threads: expect a ratio near 1, not 2.

    .venv/bin/python benchmarks/ray_rollouts.py --workers 2 --runs 16 --steps 200
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from learned_lr.bundled import BUNDLED_POLICY
from learned_lr.policy import load_policy
from learned_lr.settings import RewardConfig
from learned_lr.tasks import load_mnist
from learned_lr.tasks.config import TaskConfig
from learned_lr.training.backends import LocalBackend, RayBackend, rollout_job_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=16, help="trainee runs in the job")
    parser.add_argument("--steps", type=int, default=200, help="steps of each run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--address", default="", help="Ray address ('' starts a local Ray)")
    args = parser.parse_args()
    actor = load_policy(BUNDLED_POLICY).actor
    job = rollout_job_for(TaskConfig(), [50_000 + i for i in range(args.runs)], [0.1] * args.runs, args.steps,
                          actor.control_config, RewardConfig(), controller_seed=0)
    local = LocalBackend(load_mnist())
    ray_backend = RayBackend(args.address or None, args.workers)
    try:
        ray_backend.collect(actor, job.shares(args.runs)[0])  # warm-up: workers load MNIST
        rates = {"local": [], "ray": []}
        for _ in range(args.rounds):
            for name, backend in (("local", local), ("ray", ray_backend)):
                start = time.perf_counter()
                backend.collect(actor, job)
                rates[name].append(args.runs * args.steps / (time.perf_counter() - start))
    finally:
        ray_backend.close()
    l, r = statistics.median(rates["local"]), statistics.median(rates["ray"])
    print(f"runs={args.runs} steps={args.steps} rounds={args.rounds} local threads={torch.get_num_threads()} ray workers={args.workers}")
    print(f"in-process: {l:7.0f} trainee-steps/s (median)")
    print(f"ray:        {r:7.0f} trainee-steps/s (median)")
    print(f"ratio ray/in-process: {r / l:.2f}x")


if __name__ == "__main__":
    main()

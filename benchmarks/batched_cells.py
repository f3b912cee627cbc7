"""Benchmark cells run with torch.func batched trainees vs sequential ones: same results, how much faster.

``tasks.groups.make_run_group`` gives the benchmark, the sweeps and the rollouts a
``FuncBatchedRuns`` for the batch-norm-free families with SGD/Adam/AdamW where it is faster (this
script is how that was decided). Per family of the ``small`` suite it supports (the MLP has its
own stacked runner), this
runs one cell of two contenders, warm-up+cosine exactly as torch computes it and the bundled
policy through its decisions, at the suite's sweep LRs plus one 10x too high, on the benchmark's
3 evaluation seeds, both ways in this one process. It prints the wall-time ratio and how far the
final test losses of the same runs part (float rounding, amplified over the run).

    .venv/bin/python benchmarks/batched_cells.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from learned_lr.bundled import BUNDLED_POLICY
from learned_lr.experiments.suites import SUITES
from learned_lr.policy import load_policy
from learned_lr.settings import ControlConfig, RewardConfig
from learned_lr.tasks.batched import SequentialRuns
from learned_lr.tasks.datasets import load_task_data
from learned_lr.tasks.functional import FuncBatchedRuns, supports
from learned_lr.tasks.seeds import EVAL_SEED_START
from learned_lr.training.experts import expert_schedule
from learned_lr.training.rollout import PolicyController, rollout, rollout_exact_schedule


def run_cell(group, contender: str, steps: int, base_lrs: list[float]) -> tuple[np.ndarray, np.ndarray, float]:
    start = time.perf_counter()
    if contender == "bundled":
        policy = load_policy(BUNDLED_POLICY)
        episodes = rollout(group, PolicyController(policy.actor), steps, base_lrs, policy.control_config, RewardConfig())
    else:
        episodes = rollout_exact_schedule(group, expert_schedule(contender), steps, base_lrs, ControlConfig())
    seconds = time.perf_counter() - start
    return np.array([e.test_loss for e in episodes]), np.array([e.diverged for e in episodes]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="small")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    suite = SUITES[args.suite]
    print(f"threads={torch.get_num_threads()} suite={args.suite} seeds={args.seeds}")
    print("| family | contender | runs | sequential s | batched s | speed-up | median / max rel. diff of test loss | diverged (seq / batched) |")
    print("|---|---|---|---|---|---|---|---|")
    for family, setup in suite.families.items():
        if not supports(setup.task) or family == "mnist-mlp":
            continue
        grid = list(suite.sweep_grid(setup.task.optimizer))
        lrs = grid + [10 * grid[-1]]
        runs = [(lr, EVAL_SEED_START + s) for lr in lrs for s in range(args.seeds)]
        base_lrs, seeds = [lr for lr, _ in runs], [seed for _, seed in runs]
        load_task_data(setup.task.task, None, setup.task.lm_context)  # loaded (and cached) before any timing
        for contender in ("cosine", "bundled"):
            torch.manual_seed(0)
            seq_loss, seq_div, seq_s = run_cell(SequentialRuns(setup.task, seeds, None, setup.steps), contender, setup.steps, base_lrs)
            torch.manual_seed(0)
            bat_loss, bat_div, bat_s = run_cell(FuncBatchedRuns(setup.task, seeds), contender, setup.steps, base_lrs)
            both = ~seq_div & ~bat_div
            rel = np.abs(bat_loss[both] - seq_loss[both]) / np.abs(seq_loss[both])
            print(f"| {family} | {contender} | {len(runs)} | {seq_s:.1f} | {bat_s:.1f} | {seq_s / bat_s:.2f}x | "
                  f"{np.median(rel):.1e} / {rel.max():.1e} | {int(seq_div.sum())} / {int(bat_div.sum())} |", flush=True)


if __name__ == "__main__":
    main()

"""Where LearnedLR's per-step overhead on the MLP goes: the loop with parts of it switched off.

Runs the benchmark loop of ``scheduler_overhead.py`` (MLP, SGD, batch 128) with
CosineAnnealingLR, with LearnedLR, with LearnedLR whose decision is replaced by a constant, and
with both the decision and the gradient-norm reading replaced; rounds alternate in this one
process. Replacing private methods is for attribution only; nothing else uses it.

    .venv/bin/python benchmarks/overhead_breakdown.py --rounds 10
"""

from __future__ import annotations

import argparse
import statistics


import torch

from learned_lr.config import TaskConfig
from learned_lr.scheduler import LearnedLR
from learned_lr.tasks import build_model, load_mnist
from learned_lr.tasks.data import to_float
from scheduler_overhead import timed_steps  # the same loop, so the ratios compare

VARIANTS = ("cosine", "learned", "learned, constant decision", "learned, constant decision, no grad norms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=160, help="steps per round")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    data = load_mnist()
    x, y = to_float(data.train_images), data.train_labels
    loops = {}
    for name in VARIANTS:
        model = build_model(TaskConfig(), seed=0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        total = args.steps * (args.rounds + 1)
        if name == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        else:
            scheduler = LearnedLR(optimizer, total_steps=total)
            if "constant decision" in name:
                scheduler._decide = lambda w, m, c: torch.tensor([-0.5])
            if "no grad norms" in name:
                scheduler._grad_norms = lambda: (1.0, 1.0)
        loops[name] = (model, optimizer, scheduler, torch.Generator().manual_seed(0))

    def run(name: str, n: int) -> float:
        return timed_steps(*loops[name], x, y, n, observe=name != "cosine")

    for name in VARIANTS:
        run(name, args.steps)  # warm-up round
    times = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name in VARIANTS:
            times[name].append(run(name, args.steps))
    print(f"threads={torch.get_num_threads()} steps/round={args.steps} rounds={args.rounds}")
    for name in VARIANTS:
        ratio = statistics.median(t / c for t, c in zip(times[name], times["cosine"]))
        print(f"{name:45s} {1e3 * statistics.median(times[name]) / args.steps:6.2f} ms/step   ratio to cosine {ratio:.3f}x")


if __name__ == "__main__":
    main()

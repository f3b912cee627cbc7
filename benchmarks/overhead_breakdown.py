"""Where LearnedLR's per-step overhead on the MLP goes: the loop with parts of it switched off.

Runs the benchmark loop of ``scheduler_overhead.py`` (MLP, SGD, batch 128) with
CosineAnnealingLR, with LearnedLR, with LearnedLR that skips the distances from the initial
weights (for a policy that reads them), with LearnedLR whose decision (the actor's forward) is
replaced by a constant, and with both the decision and the gradient-norm reading replaced. As
there, the loops take turns in short rounds of K steps (one decision) in this one process, and
each ratio is total time over the cosine loop's, with a bootstrap 95% interval. Replacing
private methods is for attribution only; nothing else uses it.

    .venv/bin/python benchmarks/overhead_breakdown.py
"""

from __future__ import annotations

import argparse

import torch
from scheduler_overhead import alternate_rounds, time_ratio, timed_steps  # the same loop and estimator

from learned_lr.bundled import BUNDLED_POLICY
from learned_lr.policy import load_policy
from learned_lr.scheduler import LearnedLR
from learned_lr.tasks import build_model, load_mnist
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.data import to_float

VARIANTS = ("cosine", "learned", "learned, no init distances", "learned, constant decision", "learned, constant decision, no grad norms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=120, help="rounds of K steps (K: the policy's decision interval)")
    parser.add_argument("--policy", default=None, help="a policy checkpoint to time instead of the bundled one")
    args = parser.parse_args()
    steps = load_policy(args.policy or BUNDLED_POLICY).control_config.decision_interval
    data = load_mnist()
    x, y = to_float(data.train_images), data.train_labels
    loops = {}
    for name in VARIANTS:
        model = build_model(TaskConfig(), seed=0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        total = steps * (args.rounds + 1)
        if name == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        else:
            scheduler = LearnedLR(optimizer, total_steps=total, policy=args.policy)
            if "constant decision" in name:
                scheduler._decide = lambda w, m, c: torch.tensor([-0.5])
            if "no init distances" in name or "no grad norms" in name:  # (only a policy with inputs="all+distance" reads them)
                scheduler._initial_weights = None
            if "no grad norms" in name:
                scheduler._saw_gradient = True  # its check reads the parameters through the reader replaced here
                scheduler._grad_norms = lambda: (1.0, 1.0)
        loops[name] = (model, optimizer, scheduler, torch.Generator().manual_seed(0))

    def run(name: str, n: int) -> float:
        return timed_steps(*loops[name], x, y, n, observe=name != "cosine")

    times = alternate_rounds(run, VARIANTS, args.rounds, steps)
    print(f"threads={torch.get_num_threads()} steps/round={steps} rounds={args.rounds}")
    for name in VARIANTS:
        ratio, low, high = time_ratio(times[name], times["cosine"])
        print(f"{name:45s} {1e3 * float(times[name].mean()) / steps:6.2f} ms/step   ratio to cosine {ratio:.3f}x (95% CI {low:.3f}-{high:.3f})")


if __name__ == "__main__":
    main()

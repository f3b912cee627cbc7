"""Where LearnedLR's per-step time goes inside the MLP loop: each part timed where it runs, right after a training step.

The MLP loop of ``scheduler_overhead.py`` (its ``timed_steps``: 784-256-10, SGD, batch 128) under LearnedLR, with
wall-clock timers wrapped around the observation a decision reads, the actor's forward pass, the
record of each step and the whole ``step()``. Why time them in the loop and not alone: right
after a training step each small op is several times slower than on its own
(``op_latency_in_loop.py``), and that is what a user pays. Printed per step and as a share of the
loop; ratios against cosine are ``scheduler_overhead.py``'s and ``overhead_breakdown.py``'s job.

    .venv/bin/python benchmarks/decision_parts.py --policy general     # K = 16
    .venv/bin/python benchmarks/decision_parts.py --policy default     # K = 32
"""

from __future__ import annotations

import argparse
import collections
import time

import torch
from scheduler_overhead import timed_steps  # the same loop

from learned_lr.scheduler import LearnedLR
from learned_lr.tasks import build_model, load_mnist
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.data import to_float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="default", help="a bundled policy's name or a checkpoint path")
    parser.add_argument("--steps", type=int, default=3000, help="timed steps (after 600 untimed ones)")
    args = parser.parse_args()
    seconds: dict[str, float] = collections.defaultdict(float)

    def timed(function, part: str):
        def wrapper(*a, **k):
            start = time.perf_counter()
            result = function(*a, **k)
            seconds[part] += time.perf_counter() - start
            return result
        return wrapper

    data = load_mnist()
    x, y = to_float(data.train_images), data.train_labels
    model = build_model(TaskConfig(), seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = LearnedLR(optimizer, total_steps=args.steps + 610, policy=args.policy, model=model)
    # Wrapping private attributes is for attribution only, as in overhead_breakdown.py.
    scheduler._loop.observation = timed(scheduler._loop.observation, "observation (per decision)")
    scheduler._decide = timed(scheduler._decide, "actor forward (per decision)")
    scheduler._record_finished_step = timed(scheduler._record_finished_step, "record of the step")
    scheduler.observe = timed(scheduler.observe, "observe() and step()")
    scheduler.step = timed(scheduler.step, "observe() and step()")
    generator = torch.Generator().manual_seed(0)

    timed_steps(model, optimizer, scheduler, generator, x, y, 600, observe=True)  # untimed
    seconds.clear()
    decisions_before = len(scheduler.decisions())
    total = timed_steps(model, optimizer, scheduler, generator, x, y, args.steps, observe=True)
    decisions = len(scheduler.decisions()) - decisions_before
    print(f"policy={args.policy} K={scheduler.decision_interval} threads={torch.get_num_threads()}: "
          f"{1e3 * total / args.steps:.3f} ms per loop step, {decisions} decisions")
    for part, value in seconds.items():
        per_decision = f", {1e6 * value / decisions:.0f} us per decision" if "per decision" in part else ""
        print(f"  {part:30s} {1e6 * value / args.steps:6.1f} us per step ({100 * value / total:4.1f}% of the loop){per_decision}")


if __name__ == "__main__":
    main()

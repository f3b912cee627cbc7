"""Wall-time ratio of the same training loop with LearnedLR vs CosineAnnealingLR, side by side.

The MLP (784-256-10) and ResNet-18 (width 16 on a CPU) train with SGD, batch 128. The two
schedulers alternate in short rounds inside this one process, so that machine noise hits both
alike, and which loop goes first alternates. The ratio printed is total learned time over total
cosine time, with a bootstrap 95% interval (rounds resampled in pairs). Why many short rounds:
on a shared 2-core machine the speed drifts by +-10% over seconds, which a few long rounds
turn into a ratio that moves by several points from one run to the next. An MLP round is one
decision interval of the policy timed (K steps, one decision); a ResNet-18 step takes
~0.4 s, so its rounds are 2 steps and a decision falls in every (K/2)-th round. The loop calls
``observe(train_loss=...)`` for LearnedLR, as a user would. The ms LearnedLR adds per step is
printed too: it moves less than the ratio, which also depends on how fast the machine runs
the step at that moment.

    .venv/bin/python benchmarks/scheduler_overhead.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from learned_lr.bundled import resolve_policy
from learned_lr.policy import load_policy
from learned_lr.scheduler import LearnedLR
from learned_lr.tasks import build_model, load_mnist
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.data import to_float


def timed_steps(model, optimizer, scheduler, generator, x: torch.Tensor, y: torch.Tensor, n: int, observe: bool) -> float:
    """Seconds for ``n`` steps of the benchmark loop (batch 128); ``observe`` passes the loss to LearnedLR."""
    start = time.perf_counter()
    for _ in range(n):
        idx = torch.randint(len(y), (128,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if observe:
            scheduler.observe(train_loss=loss.item())
        scheduler.step()
    return time.perf_counter() - start


def alternate_rounds(run, names: tuple[str, ...], rounds: int, steps: int) -> dict[str, np.ndarray]:
    """Seconds per round for each loop; the loops take turns, the first one changing every round."""
    for name in names:
        run(name, steps)  # warm-up round
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(run(name, steps))
    return {name: np.array(values) for name, values in times.items()}


def time_ratio(numerator: np.ndarray, denominator: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Total-time ratio of two loops' paired rounds, and a bootstrap 95% interval of it."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(numerator), size=(2000, len(numerator)))
    resampled = numerator[picks].sum(axis=1) / denominator[picks].sum(axis=1)
    return float(numerator.sum() / denominator.sum()), float(np.quantile(resampled, 0.025)), float(np.quantile(resampled, 0.975))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlp-rounds", type=int, default=150, help="rounds of K MLP steps (K: the policy's decision interval)")
    parser.add_argument("--resnet-rounds", type=int, default=48, help="rounds of 2 ResNet-18 steps")
    parser.add_argument("--resnet-width", type=int, default=16)
    parser.add_argument("--policy", default=None, help="a bundled policy's name or a checkpoint path (default: the default policy)")
    args = parser.parse_args()
    data = load_mnist()
    x_flat, y = to_float(data.train_images), data.train_labels
    interval = load_policy(resolve_policy(args.policy)).control_config.decision_interval
    print(f"threads={torch.get_num_threads()} policy={args.policy or 'bundled'} decision interval K={interval}")
    for label, task, rounds, round_steps in (("mnist-mlp", TaskConfig(), args.mlp_rounds, interval),
                                             (f"mnist-resnet18 (width {args.resnet_width})", TaskConfig(task="mnist-resnet18", width=args.resnet_width), args.resnet_rounds, 2)):
        if rounds <= 0:
            continue
        x = x_flat if task.task == "mnist-mlp" else x_flat.view(-1, 1, 28, 28)
        total = round_steps * (rounds + 1)
        loops = {}
        for name in ("cosine", "learned"):
            model = build_model(task, seed=0)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            scheduler = (LearnedLR(optimizer, total_steps=total, policy=args.policy, model=model) if name == "learned"
                         else torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total))
            loops[name] = (model, optimizer, scheduler, torch.Generator().manual_seed(0))

        def run(name: str, n: int) -> float:
            return timed_steps(*loops[name], x, y, n, observe=name == "learned")

        times = alternate_rounds(run, ("cosine", "learned"), rounds, round_steps)
        ratio, low, high = time_ratio(times["learned"], times["cosine"])
        per_step = {name: 1e3 * float(values.mean()) / round_steps for name, values in times.items()}
        print(f"{label:30s} cosine {per_step['cosine']:7.2f} ms/step   learned {per_step['learned']:7.2f} ms/step "
              f"(+{per_step['learned'] - per_step['cosine']:.2f})   ratio learned/cosine {ratio:.3f}x (95% CI {low:.3f}-{high:.3f}, "
              f"{rounds} rounds of {round_steps} steps)")


if __name__ == "__main__":
    main()

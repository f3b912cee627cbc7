"""Wall-time ratio of the same training loop with LearnedLR vs CosineAnnealingLR, side by side.

The MLP (784-256-10) and ResNet-18 (width 16 on a CPU) train with SGD, batch 128; the two
schedulers alternate in short rounds inside this one process so that machine noise hits both
alike. The loop calls ``observe(train_loss=...)`` for LearnedLR, as a user would.

    .venv/bin/python benchmarks/scheduler_overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from learned_lr.config import TaskConfig
from learned_lr.scheduler import LearnedLR
from learned_lr.tasks import build_model, load_mnist
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlp-steps", type=int, default=200, help="steps per round on the MLP")
    parser.add_argument("--resnet-steps", type=int, default=8, help="steps per round on ResNet-18")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--resnet-width", type=int, default=16)
    args = parser.parse_args()
    data = load_mnist()
    x_flat, y = to_float(data.train_images), data.train_labels
    print(f"threads={torch.get_num_threads()} rounds={args.rounds}")
    for label, task, steps in (("mnist-mlp", TaskConfig(), args.mlp_steps),
                               (f"mnist-resnet18 (width {args.resnet_width})", TaskConfig(task="mnist-resnet18", width=args.resnet_width), args.resnet_steps)):
        x = x_flat if task.task == "mnist-mlp" else x_flat.view(-1, 1, 28, 28)
        total = steps * (args.rounds + 1)
        loops = {}
        for name in ("cosine", "learned"):
            model = build_model(task, seed=0)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            scheduler = LearnedLR(optimizer, total_steps=total) if name == "learned" else torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
            loops[name] = (model, optimizer, scheduler, torch.Generator().manual_seed(0))

        def run(name: str, n: int) -> float:
            return timed_steps(*loops[name], x, y, n, observe=name == "learned")

        run("cosine", steps), run("learned", steps)  # warm-up round
        times = {"cosine": [], "learned": []}
        for _ in range(args.rounds):
            for name in ("cosine", "learned"):
                times[name].append(run(name, steps))
        ratio = statistics.median(l / c for l, c in zip(times["learned"], times["cosine"]))
        print(f"{label:30s} cosine {1e3 * statistics.median(times['cosine']) / steps:7.2f} ms/step   "
              f"learned {1e3 * statistics.median(times['learned']) / steps:7.2f} ms/step   ratio learned/cosine {ratio:.3f}x")


if __name__ == "__main__":
    main()

"""Is a trainee run bit-identical when repeated on one machine? Two ResNet-18 (width 16) runs of
30 SGD steps at LR 0.2 with the same seed, in one process; run the script twice to compare across
processes. (Across machines the conv families' numbers can move: docs/results.md sections 2, 4, 7.)

    .venv/bin/python benchmarks/trainee_determinism.py
"""

import torch

from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.run import TrainingRun


def final_losses(task: TaskConfig, steps: int = 30, lr: float = 0.2) -> tuple[float, tuple[float, float]]:
    run = TrainingRun(task, seed=0, total_steps=steps)
    reports = [run.step(lr) for _ in range(steps)]
    return reports[-1].train_loss, run.evaluate_test()


if __name__ == "__main__":
    task = TaskConfig(task="mnist-resnet18", width=16, batch_size=64, val_batch_size=64)
    first, second = final_losses(task), final_losses(task)
    print(f"torch threads {torch.get_num_threads()}; repeat bit-identical: {first == second}")
    print(f"final train loss, (test loss, test accuracy): {first!r} / {second!r}")

"""What one ResNet-18 row of `learned-lr demo --preset small` costs at width 16 and width 8, side by side:
40 training steps (batch 64) and the 10k-image test pass, on this machine's CPU.

    python benchmarks/resnet_row_cost.py
"""

import time

import torch

from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.run import TrainingRun


def main() -> None:
    torch.set_num_threads(2)
    for width in (16, 8):
        task = TaskConfig(task="mnist-resnet18", width=width, batch_size=64, val_batch_size=64)
        run = TrainingRun(task, 100000, None, 40)
        start = time.perf_counter()
        for _ in range(40):
            run.step(0.05)
        train = time.perf_counter() - start
        start = time.perf_counter()
        run.evaluate_test()
        test = time.perf_counter() - start
        print(f"width {width}: 40 training steps {train:.1f} s, test pass {test:.1f} s, row {train + test:.1f} s")


if __name__ == "__main__":
    main()

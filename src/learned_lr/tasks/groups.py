"""A group of N trainee runs of one task behind one ``step(lrs)`` interface, the fastest that applies.

* the MNIST MLP (one hidden layer) with SGD: ``batched.BatchedMLPRuns`` (stacked weights, batched matmuls);
* any other batch-norm-free family with SGD, Adam or AdamW: ``functional.FuncBatchedRuns``
  (``torch.func.vmap``): on a 2-core CPU a benchmark cell of 12 runs takes 1.1-3.4x less time
  (``benchmarks/batched_cells.py``);
* the rest (ResNet-18's batch norm, the LR-free optimizers, the LoRA-wrapped LLM, gradient clipping), and ``mnist-cnn`` on a CPU, where
  vmapped convolutions made its cells 0.65-0.8x as fast: ``batched.SequentialRuns``.

Every kind reports what ``TrainingRun(task, seeds[i])`` would under the same LRs, up to float
rounding (``tests/test_functional.py``, ``tests/test_trainees.py``), so the choice changes speed only.

Example:
    >>> group = make_run_group(TaskConfig(task="digits"), seeds=[0, 1, 2])     # doctest: +SKIP
    >>> type(group).__name__, group.step([0.1, 0.1, 0.1]).train_loss.shape
    ('FuncBatchedRuns', torch.Size([3]))
"""

from __future__ import annotations

from typing import Sequence, Union

from learned_lr.tasks import functional
from learned_lr.tasks.batched import BatchedMLPRuns, SequentialRuns
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.data import MnistSplits

RunGroup = Union[BatchedMLPRuns, functional.FuncBatchedRuns, SequentialRuns]
# Families that torch.func supports but that run faster one by one on a CPU (measured, see above).
SEQUENTIAL_ON_CPU = frozenset({"mnist-cnn"})


def make_run_group(task: TaskConfig, seeds: Sequence[int], data: MnistSplits | None = None, total_steps: int = 1000) -> RunGroup:
    """The fastest group of runs for ``task`` (see the module docstring).

    ``total_steps`` is the runs' length, for optimizers that need it (Schedule-Free's warm-up).
    """
    if task.task == "mnist-mlp" and task.optimizer == "sgd" and task.clip_grad_norm == 0 and task.mlp_layers == 1 and not task.batch_norm:
        return BatchedMLPRuns(task, seeds, data)
    if functional.supports(task) and not (task.task in SEQUENTIAL_ON_CPU and task.torch_device == "cpu"):
        return functional.FuncBatchedRuns(task, seeds, data)
    return SequentialRuns(task, seeds, data, total_steps)

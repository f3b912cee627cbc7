"""One trainee training run, advanced one step at a time with a learning rate.

Each ``step(lr)`` takes one optimizer step on a training batch and reports the training loss,
the loss on a small rotating validation batch, and the gradient norm of every layer.

Example:
    >>> run = TrainingRun(TaskConfig(), seed=0)          # doctest: +SKIP
    >>> report = run.step(lr=0.1)
    >>> report.train_loss, report.val_loss, report.layer_grad_norms.shape
    (2.30..., 2.20..., torch.Size([2]))
    >>> test_loss, test_accuracy = run.evaluate_test()
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

from learned_lr.layers import module_layers
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.data import MnistSplits, load_mnist, to_float
from learned_lr.tasks.models import build_model


@dataclass(frozen=True)
class StepReport:
    """What one training step observed. Losses may be nan/inf when a run diverges."""

    step: int
    lr: float
    train_loss: float
    val_loss: float
    layer_grad_norms: torch.Tensor  # (num_layers,), float32

    @property
    def finite(self) -> bool:
        return math.isfinite(self.train_loss) and math.isfinite(self.val_loss)


def layer_groups(model: nn.Module) -> tuple[list[nn.Parameter], torch.Tensor, list[str]]:
    """Parameters, the index of the layer each belongs to, and the layer names (``layers.module_layers``)."""
    params, owner, names = [], [], []
    for index, (name, own) in enumerate(module_layers(model)):
        names.append(name)
        params.extend(own)
        owner.extend([index] * len(own))
    return params, torch.tensor(owner, dtype=torch.long), names


def make_optimizer(task: TaskConfig, params, lr: float) -> torch.optim.Optimizer:
    if task.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=task.momentum, weight_decay=task.weight_decay)
    if task.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=task.weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=task.weight_decay)


@functools.lru_cache(maxsize=2)
def _float_splits(data: MnistSplits, input_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    # Normalized float copies of train and validation images, shared by every run in a process
    # (MNIST is small enough, ~190 MB, to hold once).
    return to_float(data.train_images, input_shape), to_float(data.val_images, input_shape)


class DataStream:
    """A run's seeded order of training batches and its rotation over validation batches.

    The training order is a fresh permutation each epoch (the incomplete last batch is dropped);
    the validation loss of step t is read on validation batch (offset + t) mod n_batches, where
    the offset depends on the seed. ``BatchedMLPRuns`` uses one stream per run, which is why its
    runs see exactly the batches the matching ``TrainingRun`` sees.
    """

    def __init__(self, data: MnistSplits, task: TaskConfig, seed: int, input_shape: tuple[int, ...]):
        self.batch_size = task.batch_size
        self.val_batch_size = task.val_batch_size
        self.train_x, self.val_x = _float_splits(data, input_shape)
        self.train_y, self.val_y = data.train_labels, data.val_labels
        self._generator = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._cursor = 0
        self._n_val_batches = max(1, len(self.val_y) // self.val_batch_size)
        self._val_batch = int(torch.randint(self._n_val_batches, (1,), generator=self._generator))

    def next_train_indices(self) -> torch.Tensor:
        if self._cursor + self.batch_size > len(self._order):
            self._order = torch.randperm(len(self.train_y), generator=self._generator)
            self._cursor = 0
        idx = self._order[self._cursor : self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return idx

    def next_val_slice(self) -> slice:
        start = (self._val_batch % self._n_val_batches) * self.val_batch_size
        self._val_batch += 1
        return slice(start, start + self.val_batch_size)

    def next_train_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.next_train_indices()
        return self.train_x[idx], self.train_y[idx]

    def next_val_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.next_val_slice()
        return self.val_x[rows], self.val_y[rows]


class TrainingRun:
    """A seeded trainee run: model, optimizer, data order and validation rotation.

    Everything random (initialization, batch order, which validation batch is read) derives
    from ``seed``, so two runs with the same seed and the same LRs report identical numbers.
    """

    def __init__(self, task: TaskConfig, seed: int, data: MnistSplits | None = None):
        self.task = task
        self.seed = seed
        self.data = data if data is not None else load_mnist()
        self.device = torch.device(task.torch_device)
        self.model = build_model(task, seed).to(self.device)
        self.params, self._layer_of_param, self.layer_names = layer_groups(self.model)
        self.optimizer = make_optimizer(task, self.model.parameters(), lr=1.0)
        self._input_shape = (-1, 784) if task.task == "mnist-mlp" else (-1, 1, 28, 28)
        self.stream = DataStream(self.data, task, seed, self._input_shape)
        self.steps_done = 0

    @property
    def num_layers(self) -> int:
        return len(self.layer_names)

    def step(self, lr: float) -> StepReport:
        """One optimizer step at learning rate ``lr``; returns what it observed."""
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"lr must be a finite number >= 0, got {lr}")
        x, y = (t.to(self.device) for t in self.stream.next_train_batch())
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(self.model(x), y)
        loss.backward()
        grad_norms = self._layer_grad_norms()
        self.optimizer.step()
        val_x, val_y = (t.to(self.device) for t in self.stream.next_val_batch())
        self.model.eval()
        with torch.no_grad():
            val_loss = nn.functional.cross_entropy(self.model(val_x), val_y)
        report = StepReport(self.steps_done, lr, float(loss.detach()), float(val_loss), grad_norms)
        self.steps_done += 1
        return report

    def _layer_grad_norms(self) -> torch.Tensor:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        per_param = torch.stack(torch._foreach_norm(grads)).float().cpu()
        squared = torch.zeros(self.num_layers).index_add_(0, self._layer_of_param, per_param.square())
        return squared.sqrt()

    def evaluate_test(self, batch_size: int = 1000) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) on the 10k test split."""
        return self.evaluate("test", batch_size)

    @torch.no_grad()
    def evaluate(self, split: str = "test", batch_size: int = 1000) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) on the whole ``"test"`` or ``"val"`` split."""
        if split not in ("test", "val"):
            raise ValueError(f"split must be 'test' or 'val', got {split!r}")
        self.model.eval()
        total_loss, correct = 0.0, 0
        images = self.data.test_images if split == "test" else self.data.val_images
        labels = self.data.test_labels if split == "test" else self.data.val_labels
        for start in range(0, len(labels), batch_size):
            x = to_float(images[start : start + batch_size], self._input_shape).to(self.device)
            y = labels[start : start + batch_size].to(self.device)
            logits = self.model(x)
            total_loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        return total_loss / len(labels), correct / len(labels)

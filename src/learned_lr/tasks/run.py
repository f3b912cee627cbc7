"""One trainee training run of any task family, advanced one step at a time with a learning rate.

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

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from learned_lr.layers import InitialWeights, layer_init_distances, layer_momentum_cosines, module_layers
from learned_lr.settings import require
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.data import MnistSplits
from learned_lr.tasks.datasets import TaskData, trainee_data
from learned_lr.tasks.models import build_model
from learned_lr.tasks.optimizers import BATCH_NORM_REFRESH_BATCHES, TraineeOptimizer


@dataclass(frozen=True)
class StepReport:
    """What one training step observed. Losses may be nan/inf when a run diverges."""

    step: int
    lr: float
    train_loss: float
    val_loss: float
    layer_grad_norms: torch.Tensor  # (num_layers,), float32
    layer_momentum_cos: torch.Tensor  # (num_layers,): gradient vs the optimizer's momentum before the step; NaN if none or not asked for
    layer_init_distance: torch.Tensor | None = None  # (num_layers,): |w - w_init| / |w_init| after the step, when asked for

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


class DataStream:
    """A run's seeded order of training batches and its rotation over validation batches.

    The training order is a fresh permutation each epoch (the incomplete last batch is dropped);
    the validation loss of step t is read on validation batch (offset + t) mod n_batches, where
    the offset depends on the seed. ``BatchedMLPRuns`` uses one stream per run, which is why its
    runs see exactly the batches the matching ``TrainingRun`` sees.
    """

    def __init__(self, data: TaskData, task: TaskConfig, seed: int):
        require(task.batch_size <= len(data.train_y), "batch_size",
                f"must be at most {len(data.train_y)} (the {task.task} training split), got {task.batch_size}")
        require(task.val_batch_size <= len(data.val_y), "val_batch_size",
                f"must be at most {len(data.val_y)} (the {task.task} validation split), got {task.val_batch_size}")
        self.batch_size = task.batch_size
        self.val_batch_size = task.val_batch_size
        self.train_x, self.val_x = data.train_x, data.val_x
        self.train_y, self.val_y = data.train_y, data.val_y
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


def initial_weights(params: Sequence[torch.Tensor], steps_done: int, stacked: bool = False,
                    index: Sequence[torch.Tensor | None] | None = None) -> InitialWeights:
    """A run's step-0 weights as init distances read them (``layers.InitialWeights``); refused after step 0."""
    if steps_done > 0:
        raise ValueError("init distances must be asked for from the run's first step (the initial weights are copied then)")
    return InitialWeights.of(params, stacked, index)


IGNORED_TARGET = -100  # cross-entropy's default ignore_index: a target with no loss (an LM's prompt and padding)


def task_loss(loss: str, output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over the last dimension (classes, or the next byte at every position), or MSE."""
    if loss == "mse":
        return nn.functional.mse_loss(output.squeeze(-1), target, reduction=reduction)
    return nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1), reduction=reduction)


class TrainingRun:
    """A seeded trainee run: model, optimizer, data order and validation rotation.

    Everything random (initialization, batch order, which validation batch is read) derives
    from ``seed``, so two runs with the same seed and the same LRs report identical numbers.
    ``data`` may pass already loaded MNIST splits (other families load their own);
    ``total_steps`` is the run's length where the optimizer needs it (Schedule-Free's warm-up).
    """

    def __init__(self, task: TaskConfig, seed: int, data: MnistSplits | None = None, total_steps: int = 1000):
        self.task = task
        self.seed = seed
        self.data = trainee_data(task, data)
        self.device = torch.device(task.torch_device)
        self.model = build_model(task, seed).to(self.device)
        self.params, self._layer_of_param, self.layer_names = layer_groups(self.model)
        self._layer_list = self._layer_of_param.tolist()
        self.trainee_optimizer = TraineeOptimizer(task, self.model, total_steps)
        self.optimizer = self.trainee_optimizer.optimizer
        self.stream = DataStream(self.data, task, seed)
        self.steps_done = 0
        self._initial: InitialWeights | None = None  # the weights at step 0, kept once init distances are asked for

    @property
    def num_layers(self) -> int:
        return len(self.layer_names)

    def step(self, lr: float, momentum_cosines: bool = False, init_distances: bool = False) -> StepReport:
        """One optimizer step at learning rate ``lr``; returns what it observed.

        ``momentum_cosines``: also read each layer's gradient-momentum cosine (for a policy with
        ``inputs="all+momentum"``; it costs ~5% of an MLP step, so only when asked for).
        ``init_distances``: also report each layer's distance from its initial weights after the
        step (``inputs="all+distance"``); ask first at step 0, when the initial weights are copied
        (later steps may skip it: a policy needs them only at some steps, ``DecisionLoop.measures_distance``).
        """
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"lr must be a finite number >= 0, got {lr}")
        if init_distances and self._initial is None:
            self._initial = initial_weights(self.params, self.steps_done)
        x, y = (t.to(self.device) for t in self.stream.next_train_batch())
        self.model.train()
        self.trainee_optimizer.set_lr(lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss = task_loss(self.data.loss, self.model(x), y)
        loss.backward()
        grad_norms = self._layer_grad_norms()
        if self.task.clip_grad_norm > 0:  # after the norms are read: the policy sees the gradient, not the clip
            torch.nn.utils.clip_grad_norm_(self.params, self.task.clip_grad_norm)
        momentum_cos = (torch.tensor(layer_momentum_cosines(self.optimizer, self.params, self._layer_list, self.num_layers))
                        if momentum_cosines else torch.full((self.num_layers,), math.nan))
        self.optimizer.step()
        self.trainee_optimizer.after_step()
        val_x, val_y = (t.to(self.device) for t in self.stream.next_val_batch())
        with self.trainee_optimizer.evaluating() as model, torch.no_grad():
            model.eval()
            val_loss = task_loss(self.data.loss, model(val_x), val_y)
        distances = (torch.tensor(layer_init_distances(self.params, self._initial, self._layer_list, self.num_layers))
                     if init_distances else None)
        report = StepReport(self.steps_done, lr, float(loss.detach()), float(val_loss), grad_norms, momentum_cos, distances)
        self.steps_done += 1
        return report

    def _layer_grad_norms(self) -> torch.Tensor:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        per_param = torch.stack(torch._foreach_norm(grads)).float().cpu()
        squared = torch.zeros(self.num_layers).index_add_(0, self._layer_of_param, per_param.square())
        return squared.sqrt()

    def evaluate_test(self, batch_size: int | None = None) -> tuple[float, float]:
        """(mean loss, accuracy) on the test split; accuracy is NaN for a regression task."""
        return self.evaluate("test", batch_size)

    @torch.no_grad()
    def evaluate(self, split: str = "test", batch_size: int | None = None) -> tuple[float, float]:
        """(mean loss, accuracy) on the ``"test"`` split (its first ``task.test_examples`` when set) or the whole
        ``"val"`` split (per character for char-lm, per answer token for llm-lora: targets -100 are not scored)."""
        if split not in ("test", "val"):
            raise ValueError(f"split must be 'test' or 'val', got {split!r}")
        batch_size = batch_size or self.data.eval_batch_size
        inputs, targets = self.data.test_split(self.task.test_examples) if split == "test" else (self.data.val_x, self.data.val_y)
        # Batch-norm refresh batches for Schedule-Free (read lazily, only when used), from their own
        # seeded order so that evaluating leaves the run's training order untouched.
        order = torch.randperm(len(self.data.train_y), generator=torch.Generator().manual_seed(self.seed))
        size = self.task.batch_size
        refresh = (self.data.train_x[order[i * size : (i + 1) * size]].to(self.device)
                   for i in range(min(BATCH_NORM_REFRESH_BATCHES, len(order) // size)))
        total_loss, correct, count = 0.0, 0, 0
        with self.trainee_optimizer.evaluating(refresh) as model:
            model.eval()
            for start in range(0, len(targets), batch_size):
                x = inputs[start : start + batch_size].to(self.device)
                y = targets[start : start + batch_size].to(self.device)
                output = model(x)
                total_loss += float(task_loss(self.data.loss, output, y, reduction="sum"))
                count += int((y != IGNORED_TARGET).sum()) if self.data.loss == "ce" else y.numel()
                if self.data.has_accuracy:
                    correct += int((output.argmax(-1) == y).sum())
        return total_loss / count, (correct / count if self.data.has_accuracy else math.nan)

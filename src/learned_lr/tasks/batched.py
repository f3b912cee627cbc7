"""N independent MLP trainee runs advanced together with stacked weights (batched matmul).

Run i has its own seed (initialization, data order, validation rotation) and its own LR at
every step; run i reports exactly what ``TrainingRun(task, seeds[i])`` would report under the
same LRs (up to float rounding), because it is initialized from the same ``MLP`` and reads
batches from the same ``DataStream``. Gradients stay independent: the summed loss's gradient
with respect to run i's weights is run i's own gradient.

Hand-written because torch's optimizers take one LR per parameter group, while here every
run (a slice of one stacked tensor) needs its own LR each step; the SGD-momentum update below
is torch.optim.SGD's (dampening 0, no Nesterov).

Example:
    >>> runs = BatchedMLPRuns(TaskConfig(), seeds=[0, 1, 2])     # doctest: +SKIP
    >>> reports = runs.step(torch.tensor([0.1, 0.05, 0.2]))
    >>> reports.train_loss.shape, reports.layer_grad_norms.shape
    (torch.Size([3]), torch.Size([3, 2]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from learned_lr.layers import InitialWeights, distance_sample, sampled_elements
from learned_lr.settings import ConfigError
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.data import MnistSplits
from learned_lr.tasks.datasets import trainee_data
from learned_lr.tasks.models import build_model
from learned_lr.tasks.run import DataStream, initial_weights


@dataclass(frozen=True)
class BatchedStepReport:
    """Per-run results of one batched step: tensors with a leading run dimension N."""

    step: int
    lrs: torch.Tensor  # (N,)
    train_loss: torch.Tensor  # (N,)
    val_loss: torch.Tensor  # (N,)
    layer_grad_norms: torch.Tensor  # (N, layers)
    layer_momentum_cos: torch.Tensor | None = None  # (N, layers): gradient vs momentum before the step (NaN: none yet)
    layer_init_distance: torch.Tensor | None = None  # (N, layers): |w - w_init| / |w_init| after the step, when asked for


def stacked_init_distances(params: Sequence[torch.Tensor], initial: InitialWeights, layer_of: Sequence[int], layers: int) -> torch.Tensor:
    """(N, layers) ``layers.layer_init_distances`` of N runs whose weights are stacked along dim 0
    (``initial``: ``run.initial_weights(..., stacked=True)``)."""
    with torch.no_grad():
        start = torch.zeros(params[0].shape[0], layers, dtype=torch.float64, device=params[0].device)
        moved = torch.zeros_like(start)
        for p, index, p0, scale, square, layer in zip(params, initial.index, initial.values, initial.scale, initial.squares, layer_of):
            moved[:, layer] += scale * (sampled_elements(p, index, stacked=True) - p0).double().square().sum(1)
            start[:, layer] += square
        ratio = (moved / start).sqrt()
        return torch.where(start > 0, torch.nan_to_num(ratio, nan=torch.inf), torch.nan).float().cpu()


def transposed_sample(rows: int, cols: int) -> torch.Tensor | None:
    """``layers.distance_sample`` of a (rows, cols) weight as flat indices into its (cols, rows) transpose,
    how ``BatchedMLPRuns`` stores it, so that it measures the same elements as ``LearnedLR`` on the model."""
    index = distance_sample(rows * cols)
    return None if index is None else (index % cols) * rows + index // cols


def checked_lrs(lrs: torch.Tensor | Sequence[float], runs: int) -> torch.Tensor:
    """The LRs of one batched step as a float32 (runs,) tensor; ValueError unless one finite LR >= 0 per run."""
    lrs = torch.as_tensor(lrs, dtype=torch.float32).reshape(-1)
    if lrs.shape[0] != runs:
        raise ValueError(f"expected {runs} LRs, got {lrs.shape[0]}")
    if not bool(torch.isfinite(lrs).all()) or bool((lrs < 0).any()):
        raise ValueError(f"every LR must be finite and >= 0, got {lrs.tolist()}")
    return lrs


MLP_PARAM_LAYERS = (0, 0, 1, 1)  # the layer of each of BatchedMLPRuns.params (w1, b1, w2, b2)


class BatchedMLPRuns:
    """N MLP runs with stacked weights; only SGD (with momentum) is supported."""

    layer_names = ("fc1", "fc2")

    def __init__(self, task: TaskConfig, seeds: Sequence[int], data: MnistSplits | None = None):
        if task.task != "mnist-mlp":
            raise ConfigError("task", f"batched runs support mnist-mlp only, got {task.task!r}")
        if task.optimizer != "sgd":
            raise ConfigError("optimizer", f"batched runs support sgd only, got {task.optimizer!r}")
        if task.clip_grad_norm > 0:
            raise ConfigError("clip_grad_norm", "batched runs do not clip gradients; use SequentialRuns (make_run_group picks it)")
        if task.mlp_layers != 1:
            raise ConfigError("mlp_layers", f"batched runs stack one hidden layer, got {task.mlp_layers}; make_run_group picks torch.func runs for deeper MLPs")
        if task.batch_norm:
            raise ConfigError("batch_norm", "batched runs stack plain MLPs; make_run_group picks SequentialRuns for batch norm")
        if len(seeds) == 0:
            raise ValueError("give at least one seed")
        self.task = task
        self.seeds = list(seeds)
        self.data = trainee_data(task, data)
        self.device = torch.device(task.torch_device)
        models = [build_model(task, seed) for seed in self.seeds]
        # Stacked so that x @ w1 + b1 matches nn.Linear's x @ weight.T + bias.
        stack = lambda tensors: torch.stack(tensors).to(self.device).requires_grad_()  # noqa: E731
        self.w1 = stack([m.fc1.weight.detach().T.contiguous() for m in models])
        self.b1 = stack([m.fc1.bias.detach()[None] for m in models])
        self.w2 = stack([m.fc2.weight.detach().T.contiguous() for m in models])
        self.b2 = stack([m.fc2.bias.detach()[None] for m in models])
        self.params = [self.w1, self.b1, self.w2, self.b2]
        self._momentum_buffers = [torch.zeros_like(p) for p in self.params]
        self._initial: InitialWeights | None = None  # step-0 weights, once init distances are asked for
        self.streams = [DataStream(self.data, task, seed) for seed in self.seeds]
        # The batches are gathered on the CPU (the streams' seeded order) and moved in one copy;
        # on the CPU .to() is a no-op. Reports come back on the CPU.
        self._train_x = self.streams[0].train_x.to(self.device)
        self._train_y = self.streams[0].train_y.to(self.device)
        self._val_x = self.streams[0].val_x.to(self.device)
        self._val_y = self.streams[0].val_y.to(self.device)
        self.steps_done = 0

    @property
    def num_runs(self) -> int:
        return len(self.seeds)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, B, 784) -> logits (N, B, 10)."""
        hidden = torch.relu(torch.baddbmm(self.b1, x, self.w1))
        return torch.baddbmm(self.b2, hidden, self.w2)

    def _per_run_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.logits(x)
        n, b, classes = logits.shape
        return nn.functional.cross_entropy(logits.reshape(n * b, classes), y.reshape(n * b), reduction="none").view(n, b).mean(1)

    def step(self, lrs: torch.Tensor | Sequence[float], active: Sequence[bool] | None = None, momentum_cosines: bool = False,
             init_distances: bool = False) -> BatchedStepReport:
        """One SGD step of every run, run i at LR ``lrs[i]`` (``momentum_cosines``, ``init_distances``: as ``TrainingRun.step``).

        ``active`` is accepted for interface parity with ``SequentialRuns``; stacked runs always
        all step (an inactive run should be given LR 0, which leaves its weights unchanged).
        """
        lrs = checked_lrs(lrs, self.num_runs)
        if init_distances and self._initial is None:
            (_, inputs, hidden), classes = self.w1.shape, self.w2.shape[2]  # w1, w2 hold fc1/fc2.weight transposed
            index = [transposed_sample(hidden, inputs), None, transposed_sample(classes, hidden), None]
            self._initial = initial_weights(self.params, self.steps_done, stacked=True, index=index)
        indices = torch.stack([stream.next_train_indices() for stream in self.streams]).to(self.device)
        x = self._train_x[indices]  # (N, B, 784); all streams share the same tensors
        y = self._train_y[indices]
        for p in self.params:
            p.grad = None
        losses = self._per_run_loss(x, y)
        losses.sum().backward()
        grad_norms = self._layer_grad_norms()
        momentum_cos = self._layer_momentum_cosines(grad_norms) if momentum_cosines else torch.full_like(grad_norms, float("nan"))
        self._sgd_update(lrs.to(self.device))
        val_rows = [stream.next_val_slice() for stream in self.streams]
        val_x = torch.stack([self._val_x[rows] for rows in val_rows])
        val_y = torch.stack([self._val_y[rows] for rows in val_rows])
        with torch.no_grad():
            val_losses = self._per_run_loss(val_x, val_y)
        distances = stacked_init_distances(self.params, self._initial, MLP_PARAM_LAYERS, 2) if init_distances else None
        report = BatchedStepReport(self.steps_done, lrs, losses.detach().cpu(), val_losses.cpu(), grad_norms.cpu(), momentum_cos.cpu(), distances)
        self.steps_done += 1
        return report

    @torch.no_grad()
    def _layer_momentum_cosines(self, grad_norms: torch.Tensor) -> torch.Tensor:
        """(N, 2) cosine of each run's layer gradient with its momentum buffer (as ``layers.layer_momentum_cosines``)."""
        if self.steps_done == 0 or self.task.momentum == 0:
            return torch.full_like(grad_norms, float("nan"))
        dots = torch.stack([(p.grad * buf).flatten(1).sum(1) for p, buf in zip(self.params, self._momentum_buffers)], dim=1)
        buffer_squares = torch.stack([buf.flatten(1).square().sum(1) for buf in self._momentum_buffers], dim=1)
        layer_dots = torch.stack([dots[:, 0] + dots[:, 1], dots[:, 2] + dots[:, 3]], dim=1)
        layer_buffer_norms = torch.stack([buffer_squares[:, 0] + buffer_squares[:, 1], buffer_squares[:, 2] + buffer_squares[:, 3]], dim=1).sqrt()
        return layer_dots / (grad_norms * layer_buffer_norms)

    def _layer_grad_norms(self) -> torch.Tensor:
        per_param = torch.stack([torch.linalg.vector_norm(p.grad.flatten(1), dim=1) for p in self.params], dim=1)
        squared = per_param.square()
        return torch.stack([squared[:, 0] + squared[:, 1], squared[:, 2] + squared[:, 3]], dim=1).sqrt()

    @torch.no_grad()
    def _sgd_update(self, lrs: torch.Tensor) -> None:
        momentum, weight_decay = self.task.momentum, self.task.weight_decay
        for p, buf in zip(self.params, self._momentum_buffers):
            grad = p.grad if weight_decay == 0 else p.grad + weight_decay * p
            if momentum > 0:
                # First step: buf = 0 * momentum + grad = grad, as torch.optim.SGD's clone.
                buf.mul_(momentum).add_(grad)
                grad = buf
            p.sub_(lrs.view(-1, *([1] * (p.dim() - 1))) * grad)

    @torch.no_grad()
    def evaluate_test(self, batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-run (mean cross-entropy, accuracy) on the 10k test split (``task.test_examples``), each (N,)."""
        images, labels = self.data.test_split(self.task.test_examples)
        loss_sum = torch.zeros(self.num_runs, device=self.device)
        correct = torch.zeros(self.num_runs, device=self.device)
        for start in range(0, len(labels), batch_size):
            x = images[start : start + batch_size].to(self.device)
            y = labels[start : start + batch_size].to(self.device)
            logits = self.logits(x.expand(self.num_runs, *x.shape))
            n, b, classes = logits.shape
            loss_sum += nn.functional.cross_entropy(logits.reshape(n * b, classes), y.repeat(n), reduction="none").view(n, b).sum(1)
            correct += (logits.argmax(2) == y).sum(1).float()
        return (loss_sum / len(labels)).cpu(), (correct / len(labels)).cpu()


class SequentialRuns:
    """Several ``TrainingRun``s behind the same ``step(lrs)`` interface as ``BatchedMLPRuns``.

    For what stacked weights do not cover (ResNet-18, Adam): the runs step one after another.
    """

    def __init__(self, task: TaskConfig, seeds: Sequence[int], data: MnistSplits | None = None, total_steps: int = 1000):
        from learned_lr.tasks.run import TrainingRun

        if len(seeds) == 0:
            raise ValueError("give at least one seed")
        self.task = task
        self.seeds = list(seeds)
        self.runs = [TrainingRun(task, seed, data, total_steps) for seed in self.seeds]
        self.layer_names = tuple(self.runs[0].layer_names)
        self.steps_done = 0

    @property
    def num_runs(self) -> int:
        return len(self.runs)

    def step(self, lrs: torch.Tensor | Sequence[float], active: Sequence[bool] | None = None, momentum_cosines: bool = False,
             init_distances: bool = False) -> BatchedStepReport:
        """Step every run (or only those marked ``active``; the others report NaN)."""
        lrs = torch.as_tensor(lrs, dtype=torch.float32).reshape(-1)
        if lrs.shape[0] != self.num_runs:
            raise ValueError(f"expected {self.num_runs} LRs, got {lrs.shape[0]}")
        nan = float("nan")
        train, val, norms, cosines, distances = [], [], [], [], []
        for i, run in enumerate(self.runs):
            if active is not None and not active[i]:
                train.append(nan), val.append(nan), norms.append(torch.full((len(self.layer_names),), nan)), cosines.append(norms[-1])
                distances.append(norms[-1])
                continue
            report = run.step(float(lrs[i]), momentum_cosines, init_distances)
            train.append(report.train_loss), val.append(report.val_loss), norms.append(report.layer_grad_norms)
            cosines.append(report.layer_momentum_cos), distances.append(report.layer_init_distance if init_distances else norms[-1])
        report = BatchedStepReport(self.steps_done, lrs, torch.tensor(train), torch.tensor(val), torch.stack(norms), torch.stack(cosines),
                                   torch.stack(distances) if init_distances else None)
        self.steps_done += 1
        return report

    def evaluate_test(self) -> tuple[torch.Tensor, torch.Tensor]:
        results = [run.evaluate_test() for run in self.runs]
        return torch.tensor([r[0] for r in results]), torch.tensor([r[1] for r in results])

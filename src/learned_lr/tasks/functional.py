"""N independent trainee runs of any batch-norm-free family, advanced together with ``torch.func``.

The N models' weights are stacked (``torch.func.stack_module_state``); one ``vmap`` over
``functional_call`` computes every run's loss and gradient on its own batch in one call, so N
small models cost about as much as one model N times as wide. Run i has its own seed (init,
data order, validation rotation: the same ``DataStream`` as ``TrainingRun(task, seeds[i])``)
and its own LR each step, and reports what that ``TrainingRun`` would report under the same LRs
up to float rounding (``tests/test_functional.py`` checks allclose).

The optimizer update is written out here because torch's optimizers take one LR per parameter
group while each run (a slice of a stacked tensor) needs its own; the three updates are
torch.optim's SGD (momentum, dampening 0, no Nesterov), Adam and AdamW (no amsgrad), each with
the task's weight decay. Batch-norm models (ResNet-18) keep running statistics that ``vmap``
cannot update in place, and the LR-free optimizers come from their own packages: both run
sequentially (``batched.SequentialRuns``).

Example:
    >>> runs = FuncBatchedRuns(TaskConfig(task="mnist-cnn", width=8), seeds=[0, 1, 2])   # doctest: +SKIP
    >>> report = runs.step(torch.tensor([0.1, 0.05, 0.2]))
    >>> report.train_loss.shape, report.layer_grad_norms.shape
    (torch.Size([3]), torch.Size([3, 3]))
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from typing import Iterator, Sequence

import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from learned_lr.layers import InitialWeights
from learned_lr.settings import ConfigError
from learned_lr.tasks.batched import BatchedStepReport, checked_lrs, stacked_init_distances
from learned_lr.tasks.config import ALWAYS_BATCH_NORM_TASKS, SCHEDULED_OPTIMIZERS, TaskConfig
from learned_lr.tasks.data import MnistSplits
from learned_lr.tasks.datasets import trainee_data
from learned_lr.tasks.models import build_model
from learned_lr.tasks.run import DataStream, initial_weights, layer_groups, task_loss

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


@contextlib.contextmanager
def _quiet_batching_fallback() -> Iterator[None]:
    """torch has no batching rule for CPU flash attention yet and loops over the runs there (char-lm),
    saying so at every call; measured it is still 1.7x sequential (``benchmarks/func_batched.py``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented the batching rule")
        yield


def supports(task: TaskConfig) -> bool:
    """Whether ``FuncBatchedRuns`` can run ``task``: a torch optimizer, a model without batch norm that
    is built here (not the LoRA-wrapped LLM), and no gradient clipping."""
    return (task.optimizer in SCHEDULED_OPTIMIZERS and task.task not in (*ALWAYS_BATCH_NORM_TASKS, "llm-lora") and task.clip_grad_norm == 0
            and not task.batch_norm)


class FuncBatchedRuns:
    """N runs of one task with stacked weights, stepped by one vmapped call."""

    def __init__(self, task: TaskConfig, seeds: Sequence[int], data: MnistSplits | None = None):
        if not supports(task):
            raise ConfigError("task", f"torch.func batched runs need sgd/adam/adamw and no batch norm, got {task.task} with {task.optimizer}")
        if len(seeds) == 0:
            raise ValueError("give at least one seed")
        self.task, self.seeds = task, list(seeds)
        self.data = trainee_data(task, data)
        self.device = torch.device(task.torch_device)
        models = [build_model(task, seed).to(self.device) for seed in self.seeds]
        params, owner, self.layer_names = layer_groups(models[0])
        name_of = {id(p): name for name, p in models[0].named_parameters()}
        self._layer_of = {name_of[id(p)]: int(layer) for p, layer in zip(params, owner)}
        self.params, self.buffers = stack_module_state(models)
        # torch.func.grad differentiates by itself; weights that require grad would also make its
        # outputs (the gradients, hence the reported norms) part of an outer autograd graph.
        self.params = {name: p.detach() for name, p in self.params.items()}
        self._base = copy.deepcopy(models[0]).to("meta")  # the module structure only; weights come from self.params
        self._state = {name: self._zero_state(p) for name, p in self.params.items()}
        self.streams = [DataStream(self.data, task, seed) for seed in self.seeds]
        self._train_x, self._train_y = self.data.train_x.to(self.device), self.data.train_y.to(self.device)
        self._val_x, self._val_y = self.data.val_x.to(self.device), self.data.val_y.to(self.device)
        loss_kind = self.data.loss

        def loss(params, buffers, x, y):
            return task_loss(loss_kind, functional_call(self._base, (params, buffers), (x,)), y)

        self._grad_and_loss = vmap(grad_and_value(loss))
        self._loss = vmap(loss)
        self._forward = vmap(lambda params, buffers, x: functional_call(self._base, (params, buffers), (x,)), in_dims=(0, 0, None))
        self.steps_done = 0
        self._initial: InitialWeights | None = None  # step-0 weights, once init distances are asked for
        self._param_layers = [self._layer_of[name] for name in self.params]

    def _zero_state(self, p: torch.Tensor) -> dict:
        if self.task.optimizer == "sgd":
            return {"momentum": torch.zeros_like(p)}
        return {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}

    @property
    def num_runs(self) -> int:
        return len(self.seeds)

    def step(self, lrs: torch.Tensor | Sequence[float], active: Sequence[bool] | None = None, momentum_cosines: bool = False,
             init_distances: bool = False) -> BatchedStepReport:
        """One step of every run, run i at LR ``lrs[i]`` (an inactive run should get LR 0: its weights then stay).

        ``momentum_cosines``: also report each layer's gradient-momentum cosine before the update,
        as ``TrainingRun.step`` does (``layers.layer_momentum_cosines``); ``init_distances``: each
        layer's distance from its initial weights after the step, from step 0 on.
        """
        lrs = checked_lrs(lrs, self.num_runs)
        if init_distances and self._initial is None:  # in the order of self.params, as self._param_layers
            self._initial = initial_weights(list(self.params.values()), self.steps_done, stacked=True)
        indices = torch.stack([stream.next_train_indices() for stream in self.streams]).to(self.device)
        with _quiet_batching_fallback():
            grads, losses = self._grad_and_loss(self.params, self.buffers, self._train_x[indices], self._train_y[indices])
        norms = self._layer_grad_norms(grads)
        cosines = self._layer_momentum_cosines(grads, norms) if momentum_cosines else torch.full_like(norms, math.nan)
        self._update(grads, lrs.to(self.device))
        rows = [stream.next_val_slice() for stream in self.streams]
        with torch.no_grad(), _quiet_batching_fallback():
            val = self._loss(self.params, self.buffers, torch.stack([self._val_x[r] for r in rows]), torch.stack([self._val_y[r] for r in rows]))
        distances = None
        if init_distances:
            distances = stacked_init_distances(list(self.params.values()), self._initial, self._param_layers, len(self.layer_names))
        report = BatchedStepReport(self.steps_done, lrs, losses.detach().cpu(), val.cpu(), norms.cpu(), cosines.cpu(), distances)
        self.steps_done += 1
        return report

    def _layer_grad_norms(self, grads: dict[str, torch.Tensor]) -> torch.Tensor:
        squared = torch.zeros(self.num_runs, len(self.layer_names), device=self.device)
        for name, g in grads.items():
            squared[:, self._layer_of[name]] += g.flatten(1).square().sum(1)
        return squared.sqrt()

    @torch.no_grad()
    def _layer_momentum_cosines(self, grads: dict[str, torch.Tensor], norms: torch.Tensor) -> torch.Tensor:
        """(N, layers) cosine of each run's layer gradient with its SGD momentum / Adam ``exp_avg``; NaN before there is one."""
        sgd = self.task.optimizer == "sgd"
        if self.steps_done == 0 or (sgd and self.task.momentum == 0):
            return torch.full_like(norms, math.nan)
        dots, buffer_squares = torch.zeros_like(norms), torch.zeros_like(norms)
        for name, g in grads.items():
            buffer, layer = self._state[name]["momentum" if sgd else "exp_avg"], self._layer_of[name]
            dots[:, layer] += (g * buffer).flatten(1).sum(1)
            buffer_squares[:, layer] += buffer.flatten(1).square().sum(1)
        cosines = dots / (norms * buffer_squares.sqrt())
        return torch.where((norms > 0) & (buffer_squares > 0), cosines, torch.full_like(cosines, math.nan))

    @torch.no_grad()
    def _update(self, grads: dict[str, torch.Tensor], lrs: torch.Tensor) -> None:
        task, t = self.task, self.steps_done + 1
        for name, p in self.params.items():
            g, state = grads[name], self._state[name]
            lr = lrs.view(-1, *([1] * (p.dim() - 1)))
            if task.optimizer == "sgd":
                if task.weight_decay:
                    g = g + task.weight_decay * p
                if task.momentum > 0:
                    state["momentum"].mul_(task.momentum).add_(g)  # step 1: the buffer is the gradient, as torch's clone
                    g = state["momentum"]
                p.sub_(lr * g)
                continue
            if task.optimizer == "adamw":
                p.mul_(1 - lr * task.weight_decay)
            elif task.weight_decay:
                g = g + task.weight_decay * p
            beta1, beta2 = ADAM_BETAS
            state["exp_avg"].lerp_(g, 1 - beta1)
            state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
            step_size = lr / (1 - beta1**t)
            denom = (state["exp_avg_sq"].sqrt() / math.sqrt(1 - beta2**t)).add_(ADAM_EPS)
            p.sub_(step_size * state["exp_avg"] / denom)

    @torch.no_grad()
    def evaluate_test(self, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-run (mean loss, accuracy) on the test split (``task.test_examples``), each (N,); accuracy NaN for regression."""
        inputs, targets = self.data.test_split(self.task.test_examples)
        loss_sum = torch.zeros(self.num_runs, dtype=torch.float64)
        correct = torch.zeros(self.num_runs, dtype=torch.float64)
        count = 0
        for start in range(0, len(targets), batch_size):
            x = inputs[start : start + batch_size].to(self.device)
            y = targets[start : start + batch_size].to(self.device)
            with _quiet_batching_fallback():
                out = self._forward(self.params, self.buffers, x)  # (N, B, ...)
            for i in range(self.num_runs):
                loss_sum[i] += float(task_loss(self.data.loss, out[i], y, reduction="sum"))
                if self.data.has_accuracy:
                    correct[i] += float((out[i].argmax(-1) == y).sum())
            count += y.numel()
        accuracy = correct / count if self.data.has_accuracy else torch.full((self.num_runs,), math.nan, dtype=torch.float64)
        return (loss_sum / count).float(), accuracy.float()


"""The trainee's optimizer: torch's SGD/Adam/AdamW, or a "no LR tuning" one from its own package.

Each LR-free optimizer is built and used as its package's README says (the ``anchors`` extra):

* ``prodigy``: ``prodigyopt.Prodigy(lr=1, safeguard_warmup=True, use_bias_correction=True)``,
  run under a cosine schedule by the caller (the README's recommendation).
* ``dadapt-adam``: ``dadaptation.DAdaptAdam(lr=1, decouple=True)``, with the schedule one would
  use anyway (cosine).
* ``dog``: ``dog.DoG(lr=1)`` with its ``PolynomialDecayAverager``, stepped after every optimizer
  step; held-out numbers are read on the averaged model (the README: "DoG must be combined with
  iterate averaging").
* ``mechanic-sgd`` / ``mechanic-adamw``: ``mechanic_pytorch.mechanize(SGD or AdamW)(lr=1)``
  (SGD with the task's momentum), with a cosine schedule.
* ``sgd-schedulefree`` / ``adamw-schedulefree``: ``schedulefree.SGDScheduleFree`` /
  ``AdamWScheduleFree`` with warm-up over the first 5% of steps and no schedule;
  ``optimizer.eval()`` around every evaluation and ``optimizer.train()`` after, and, for a model
  with batch norm, the README's fix: the statistics recomputed at the evaluation point on 50
  training batches before a held-out evaluation.

The LR these are given each step is the ``lr`` argument of their constructor: the LR-free ones
scale the step size they estimate by it (1 is their default), Schedule-Free uses it as its LR.

Example:
    >>> trainee = TraineeOptimizer(TaskConfig(optimizer="prodigy"), model, total_steps=1000)  # doctest: +SKIP
    >>> trainee.set_lr(1.0); trainee.optimizer.step(); trainee.after_step()
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from typing import Iterator

import torch
from torch import nn

from learned_lr.settings import MissingExtraError
from learned_lr.tasks.config import TaskConfig

ANCHORS_HINT = "pip install 'learned-lr[anchors]'"
# optimizer name -> the import name of the package it needs.
ANCHOR_PACKAGES = {
    "prodigy": "prodigyopt",
    "dadapt-adam": "dadaptation",
    "dog": "dog",
    "mechanic-sgd": "mechanic_pytorch",
    "mechanic-adamw": "mechanic_pytorch",
    "sgd-schedulefree": "schedulefree",
    "adamw-schedulefree": "schedulefree",
}
SCHEDULE_FREE_WARMUP_FRACTION = 0.05
BATCH_NORM_REFRESH_BATCHES = 50


def require_anchor(optimizer: str) -> None:
    """``MissingExtraError`` naming the anchors extra if ``optimizer``'s package is not installed."""
    package = ANCHOR_PACKAGES.get(optimizer)
    if package is not None and importlib.util.find_spec(package) is None:
        raise MissingExtraError(f"optimizer {optimizer} needs the {package} package: {ANCHORS_HINT}")


def _build(task: TaskConfig, model: nn.Module, total_steps: int) -> torch.optim.Optimizer:
    # Only what trains: a LoRA trainee's frozen base is no optimizer's business (DoG and Mechanic
    # would otherwise count it in their distance and scale estimates).
    params, name, decay = [p for p in model.parameters() if p.requires_grad], task.optimizer, task.weight_decay
    if name == "sgd":
        return torch.optim.SGD(params, lr=1.0, momentum=task.momentum, weight_decay=decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=1.0, weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1.0, weight_decay=decay)
    require_anchor(name)
    if name == "prodigy":
        from prodigyopt import Prodigy

        return Prodigy(params, lr=1.0, weight_decay=decay, safeguard_warmup=True, use_bias_correction=True)
    if name == "dadapt-adam":
        from dadaptation import DAdaptAdam

        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Using decoupled weight decay"
            return DAdaptAdam(params, lr=1.0, weight_decay=decay, decouple=True)
    if name == "dog":
        from dog import DoG

        return DoG(params, lr=1.0, weight_decay=decay)
    if name in ("mechanic-sgd", "mechanic-adamw"):
        from mechanic_pytorch import mechanize

        if name == "mechanic-sgd":
            return mechanize(torch.optim.SGD)(params, lr=1.0, momentum=task.momentum, weight_decay=decay)
        return mechanize(torch.optim.AdamW)(params, lr=1.0, weight_decay=decay)
    import schedulefree

    warmup = int(SCHEDULE_FREE_WARMUP_FRACTION * total_steps)
    if name == "sgd-schedulefree":
        return schedulefree.SGDScheduleFree(params, lr=1.0, momentum=task.momentum or 0.9, weight_decay=decay, warmup_steps=warmup)
    return schedulefree.AdamWScheduleFree(params, lr=1.0, weight_decay=decay, warmup_steps=warmup)


class TraineeOptimizer:
    """A run's optimizer and what its package asks around it: averaging (DoG), train/eval modes (Schedule-Free)."""

    def __init__(self, task: TaskConfig, model: nn.Module, total_steps: int = 1000):
        self.name = task.optimizer
        self.model = model
        self.optimizer = _build(task, model, max(1, total_steps))
        self.schedule_free = self.name.endswith("schedulefree")
        self._averager = None
        if self.name == "dog":
            from dog import PolynomialDecayAverager

            self._averager = PolynomialDecayAverager(model)
        if self.schedule_free:
            self.optimizer.train()

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def after_step(self) -> None:
        if self._averager is not None:
            self._averager.step()

    @property
    def eval_model(self) -> nn.Module:
        """The model held-out numbers are read on: DoG's averaged model, else the model."""
        return self._averager.averaged_model if self._averager is not None else self.model

    @contextlib.contextmanager
    def evaluating(self, refresh_batches: Iterator[torch.Tensor] | None = None) -> Iterator[nn.Module]:
        """Schedule-Free's parameters at the evaluation point for the block's duration (a no-op for the others).

        ``refresh_batches`` (training inputs) recompute batch-norm statistics there first, as
        the Schedule-Free README asks for models with batch norm.
        """
        if not self.schedule_free:
            yield self.eval_model
            return
        self.optimizer.eval()
        try:
            if refresh_batches is not None and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules()):
                self.model.train()
                with torch.no_grad():
                    for x in refresh_batches:
                        self.model(x)
            yield self.model
        finally:
            self.optimizer.train()

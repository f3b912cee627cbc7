"""Loss-driven baseline schedulers as rollout controllers: ReduceLROnPlateau and GreedyLR.

Both are the libraries' own classes, stepped exactly as a user would step them, one instance
per trainee run on a one-group dummy optimizer whose ``lr`` is the LR *factor* (the run's LR
over its base LR). The rollout (``training.rollout``) asks the controller before every step
(``decision_interval=1``, see ``baseline_control``), so the LR is whatever the scheduler left
in its optimizer's group after seeing the losses of the steps before.

* ``plateau``: ``torch.optim.lr_scheduler.ReduceLROnPlateau`` on the validation loss. The
  trainee's validation loss is read on a small rotating batch each step, so the scheduler is
  stepped every ``interval`` steps on the mean of those readings over the interval (a
  validation pass over ``interval`` x 128 images). ``factor=0.5, patience=2`` (torch's default
  patience of 10 evaluations would never fire in ~20 evaluations per run).
* ``greedy``: ``transformers.optimization.GreedyLR`` (Subramanian et al., "GreedyLR: A Novel
  Adaptive Learning Rate Scheduler", arXiv:2512.14527), stepped every step on the training
  loss with its streaming smoothing on (``smooth=True``, window 50), its defaults otherwise
  (``factor=0.95, patience=10``); the LR may rise to ``max_lr_factor`` x the base LR, the same
  upper bound the learned policy has. Needs the ``hf`` extra.

Example:
    >>> controller = make_baseline("plateau", ControlConfig())                    # doctest: +SKIP
    >>> episodes = rollout(group, controller, 2000, base_lrs, baseline_control(ControlConfig()), RewardConfig())
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
import torch

from learned_lr.observation import RunHistory
from learned_lr.settings import ControlConfig, MissingExtraError

BASELINE_NAMES = ("plateau", "greedy")
PLATEAU_INTERVAL = 100


def baseline_control(control: ControlConfig) -> ControlConfig:
    """The control these controllers run under: a decision before every step, same LR bounds."""
    return dataclasses.replace(control, decision_interval=1)


def _factor_optimizer() -> torch.optim.Optimizer:
    # The scheduler only reads and writes param_groups[i]["lr"]; the parameter is never stepped.
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)


def _make_plateau(control: ControlConfig) -> tuple[torch.optim.Optimizer, object]:
    optimizer = _factor_optimizer()
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=2, min_lr=control.min_lr_factor)
    return optimizer, scheduler


def _make_greedy(control: ControlConfig) -> tuple[torch.optim.Optimizer, object]:
    try:
        from transformers.optimization import GreedyLR
    except ImportError as exc:  # transformers missing, or a version without GreedyLR
        raise MissingExtraError("the 'greedy' baseline needs transformers with GreedyLR (>= 5.x): pip install 'learned-lr[hf]'") from exc
    optimizer = _factor_optimizer()
    scheduler = GreedyLR(optimizer, mode="min", smooth=True, window_size=50, min_lr=control.min_lr_factor, max_lr=control.max_lr_factor)
    return optimizer, scheduler


class MetricSchedulerController:
    """Steps one metric-driven scheduler per run on the run's losses; the LR factor is its ``lr``."""

    def __init__(self, name: str, make: Callable[[], tuple[torch.optim.Optimizer, object]], metric: str, interval: int):
        self.name, self._make, self.metric, self.interval = name, make, metric, interval
        self._runs: list[tuple[torch.optim.Optimizer, object]] = []

    def decide(self, histories: Sequence[RunHistory], step: int, active: np.ndarray) -> np.ndarray:
        if step == 0 or not self._runs:
            self._runs = [self._make() for _ in histories]  # a fresh scheduler per run per rollout
        if step > 0 and step % self.interval == 0:
            for i, (history, (_, scheduler)) in enumerate(zip(histories, self._runs)):
                if active[i]:
                    losses = history.val_loss if self.metric == "val" else history.train_loss
                    value = float(np.mean(losses[step - self.interval : step]))
                    scheduler.step(value if math.isfinite(value) else math.inf)
        return np.array([math.log(optimizer.param_groups[0]["lr"]) for optimizer, _ in self._runs])


def make_baseline(name: str, control: ControlConfig) -> MetricSchedulerController:
    """A controller for baseline ``name`` (one of ``BASELINE_NAMES``) under ``control``'s LR bounds."""
    if name == "plateau":
        return MetricSchedulerController(name, lambda: _make_plateau(control), metric="val", interval=PLATEAU_INTERVAL)
    if name == "greedy":
        _make_greedy(control)  # fail now, with the install hint, not in the middle of a rollout
        return MetricSchedulerController(name, lambda: _make_greedy(control), metric="train", interval=1)
    raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINE_NAMES}")

"""Expert LR schedules: linear warm-up then linear decay, cosine annealing, polynomial decay.

Each is a function of ``(step, total_steps)`` giving the LR as a fraction of the optimizer's
base (peak) LR; multiply by the peak to get the LR. The factors come from torch's own
schedulers (``LinearLR``, ``SequentialLR``, ``CosineAnnealingLR``, ``PolynomialLR``) stepped
over a throwaway optimizer, so they are exactly what a user's torch loop would produce.

Example:
    >>> schedule = expert_schedule("cosine")
    >>> [round(schedule.factor(s, 100), 4) for s in (0, 50, 99)]
    [1.0, 0.5, 0.0002]
    >>> schedule.lrs(total_steps=4, peak_lr=0.1)   # doctest: +NORMALIZE_WHITESPACE
    array([0.1 , 0.08535534, 0.05 , 0.01464466])
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.optim import lr_scheduler

from learned_lr.training.config import SCHEDULE_NAMES, ScheduleConfig

SchedulerFactory = Callable[[torch.optim.Optimizer, int], lr_scheduler.LRScheduler]


def _warmup_then_linear_decay(shape: ScheduleConfig) -> SchedulerFactory:
    def build(optimizer: torch.optim.Optimizer, total_steps: int) -> lr_scheduler.LRScheduler:
        warmup_steps = int(round(shape.warmup_fraction * total_steps))
        decay_steps = max(1, total_steps - warmup_steps)
        decay = lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=max(shape.final_factor, 0.0), total_iters=decay_steps)
        if warmup_steps == 0:
            return decay
        warmup = lr_scheduler.LinearLR(optimizer, start_factor=shape.warmup_start_factor, end_factor=1.0, total_iters=warmup_steps)
        return lr_scheduler.SequentialLR(optimizer, [warmup, decay], milestones=[warmup_steps])

    return build


def _cosine(shape: ScheduleConfig) -> SchedulerFactory:
    def build(optimizer: torch.optim.Optimizer, total_steps: int) -> lr_scheduler.LRScheduler:
        base = optimizer.param_groups[0]["lr"]
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=shape.final_factor * base)

    return build


def _polynomial(shape: ScheduleConfig) -> SchedulerFactory:
    def build(optimizer: torch.optim.Optimizer, total_steps: int) -> lr_scheduler.LRScheduler:
        return lr_scheduler.PolynomialLR(optimizer, total_iters=total_steps, power=shape.poly_power)

    return build


def _constant(shape: ScheduleConfig) -> SchedulerFactory:
    def build(optimizer: torch.optim.Optimizer, total_steps: int) -> lr_scheduler.LRScheduler:
        return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)

    return build


_BUILDERS = {
    "constant": _constant,
    "linear-warmup": _warmup_then_linear_decay,
    "cosine": _cosine,
    "polynomial": _polynomial,
}


@dataclass(frozen=True)
class ExpertSchedule:
    """A named schedule shape: ``factor(step, total_steps)`` in [0, 1] times the peak LR."""

    name: str
    shape: ScheduleConfig = ScheduleConfig()

    def torch_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int) -> lr_scheduler.LRScheduler:
        """The torch scheduler that produces this schedule on ``optimizer`` (step it once per step)."""
        return _BUILDERS[self.name](self.shape)(optimizer, total_steps)

    def factors(self, total_steps: int) -> np.ndarray:
        """The LR factor of every step 0..total_steps-1 (read-only array)."""
        return _factors(self.name, self.shape, total_steps)

    def factor(self, step: int, total_steps: int) -> float:
        step = min(max(step, 0), total_steps - 1)
        return float(self.factors(total_steps)[step])

    def lrs(self, total_steps: int, peak_lr: float) -> np.ndarray:
        return self.factors(total_steps) * peak_lr


@functools.lru_cache(maxsize=256)
def _factors(name: str, shape: ScheduleConfig, total_steps: int) -> np.ndarray:
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    # A throwaway optimizer over one dummy parameter: torch's schedulers only touch param_groups.
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = _BUILDERS[name](shape)(optimizer, total_steps)
    out = np.empty(total_steps, dtype=np.float64)
    for step in range(total_steps):
        out[step] = optimizer.param_groups[0]["lr"]
        optimizer.step()  # keeps torch from warning that the scheduler stepped first
        scheduler.step()
    out.setflags(write=False)
    return out


def expert_schedule(name: str, shape: ScheduleConfig | None = None) -> ExpertSchedule:
    """The schedule called ``name`` (one of ``training.config.SCHEDULE_NAMES``)."""
    if name not in SCHEDULE_NAMES:
        raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULE_NAMES)}")
    return ExpertSchedule(name, shape or ScheduleConfig())

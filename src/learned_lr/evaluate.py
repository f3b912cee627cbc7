"""Run a schedule on a trainee and record what happened.

Example:
    >>> record = run_schedule(TaskConfig(), expert_schedule("cosine"), steps=200, peak_lr=0.1, seed=0)  # doctest: +SKIP
    >>> record.test_accuracy > 0.9
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from learned_lr.config import TaskConfig
from learned_lr.experts import ExpertSchedule
from learned_lr.tasks import MnistSplits, TrainingRun
from learned_lr.tasks.run import is_diverged



@dataclass
class RunRecord:
    """Per-step history and final numbers of one trainee run under one schedule."""

    schedule: str
    seed: int
    peak_lr: float
    total_steps: int
    lrs: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    grad_norm_total: list[float] = field(default_factory=list)
    grad_norm_layer_min: list[float] = field(default_factory=list)
    grad_norm_layer_max: list[float] = field(default_factory=list)
    diverged: bool = False
    test_loss: float = float("nan")
    test_accuracy: float = float("nan")

    def metrics_rows(self) -> list[list[float]]:
        return [
            [step, self.lrs[step], self.train_loss[step], self.val_loss[step], self.grad_norm_total[step], self.grad_norm_layer_min[step], self.grad_norm_layer_max[step]]
            for step in range(len(self.lrs))
        ]

    metrics_header = ["step", "lr", "train_loss", "val_loss", "grad_norm_total", "grad_norm_layer_min", "grad_norm_layer_max"]

    def summary(self) -> dict:
        return {
            "schedule": self.schedule,
            "seed": self.seed,
            "peak_lr": self.peak_lr,
            "total_steps": self.total_steps,
            "steps_run": len(self.lrs),
            "diverged": self.diverged,
            "final_train_loss": self.train_loss[-1] if self.train_loss else None,
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
        }


def run_schedule(
    task: TaskConfig,
    schedule: ExpertSchedule,
    steps: int,
    peak_lr: float,
    seed: int,
    data: MnistSplits | None = None,
    progress: bool = False,
) -> RunRecord:
    """Train one trainee for ``steps`` steps under ``schedule`` scaled to ``peak_lr``, then test it."""
    run = TrainingRun(task, seed, data)
    record = RunRecord(schedule.name, seed, peak_lr, steps)
    lrs = schedule.lrs(steps, peak_lr)
    bar = tqdm(total=steps, desc=f"{task.task} {schedule.name} seed={seed}", disable=not progress, leave=False)
    for step in range(steps):
        report = run.step(float(lrs[step]))
        norms = report.layer_grad_norms
        record.lrs.append(float(lrs[step]))
        record.train_loss.append(report.train_loss)
        record.val_loss.append(report.val_loss)
        record.grad_norm_total.append(float(norms.square().sum().sqrt()))
        record.grad_norm_layer_min.append(float(norms.min()))
        record.grad_norm_layer_max.append(float(norms.max()))
        bar.update()
        if step % 50 == 0:
            bar.set_postfix(train_loss=f"{report.train_loss:.3f}", val_loss=f"{report.val_loss:.3f}")
        if is_diverged(report.train_loss, record.train_loss[0]):
            record.diverged = True
            break
    bar.close()
    if not record.diverged:
        record.test_loss, record.test_accuracy = run.evaluate_test()
    return record


def final_val_loss(task: TaskConfig, schedule: ExpertSchedule, steps: int, peak_lr: float, seed: int, data: MnistSplits | None = None) -> float:
    """Loss on the whole validation split after a full run (inf if it diverged): what a sweep ranks by."""
    run = TrainingRun(task, seed, data)
    lrs = schedule.lrs(steps, peak_lr)
    first = None
    for step in range(steps):
        loss = run.step(float(lrs[step])).train_loss
        first = loss if first is None else first
        if is_diverged(loss, first):
            return float("inf")
    return run.evaluate("val")[0]

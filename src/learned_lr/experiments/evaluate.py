"""Run a schedule on a trainee and record what happened; compare schedulers on held-out seeds.

Example:
    >>> record = run_schedule(TaskConfig(), expert_schedule("cosine"), steps=200, peak_lr=0.1, seed=0)  # doctest: +SKIP
    >>> record.test_accuracy > 0.9
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from learned_lr.experiments.stats import format_stat, mean_ci
from learned_lr.files import saved_or_computed, slug
from learned_lr.policy import saved_policy_sha256
from learned_lr.settings import ControlConfig, RewardConfig
from learned_lr.tasks import MnistSplits
from learned_lr.tasks.batched import SequentialRuns
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.groups import make_run_group
from learned_lr.tasks.seeds import EVAL_SEED_START
from learned_lr.training.experts import ExpertSchedule, expert_schedule
from learned_lr.training.rollout import Episode, PolicyController, rollout, rollout_exact_schedule


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

    @classmethod
    def from_episode(cls, schedule: str, total_steps: int, episode: Episode) -> "RunRecord":
        """The record of a run's episode (``training.rollout``): its per-step numbers and final test numbers."""
        history, n = episode.history, episode.history.steps
        norms = history.layer_grad_norms
        return cls(schedule, episode.seed, episode.base_lr, total_steps, lrs=history.lrs[:n].tolist(), train_loss=history.train_loss[:n].tolist(),
                   val_loss=history.val_loss[:n].tolist(), grad_norm_total=np.sqrt(np.square(norms).sum(1)).tolist(),
                   grad_norm_layer_min=norms.min(1).tolist(), grad_norm_layer_max=norms.max(1).tolist(), diverged=episode.diverged,
                   test_loss=episode.test_loss, test_accuracy=episode.test_accuracy)

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


def run_schedule(task: TaskConfig, schedule: ExpertSchedule, steps: int, peak_lr: float, seed: int,
                 data: MnistSplits | None = None, progress: bool = False) -> RunRecord:
    """Train one trainee for ``steps`` steps under ``schedule`` scaled to ``peak_lr``, then test it."""
    (episode,) = rollout_exact_schedule(SequentialRuns(task, [seed], data), schedule, steps, [peak_lr], ControlConfig(), progress=progress)
    return RunRecord.from_episode(schedule.name, steps, episode)


def final_val_loss(task: TaskConfig, schedule: ExpertSchedule, steps: int, peak_lr: float, seed: int, data: MnistSplits | None = None) -> float:
    """Loss on the whole validation split after a full run (inf if it diverged): what a sweep ranks by."""
    group = SequentialRuns(task, [seed], data)
    (episode,) = rollout_exact_schedule(group, schedule, steps, [peak_lr], ControlConfig(), evaluate_test=False)
    return math.inf if episode.diverged else group.runs[0].evaluate("val")[0]


# ---- comparing schedulers on held-out seeds ---------------------------------------------------



def train_loss_auc(train_loss: np.ndarray) -> float:
    """Area under the normalized train-loss curve per step (mean of loss / first loss)."""
    return float(np.mean(train_loss / train_loss[0]))


def train_loss_roughness(train_loss: np.ndarray) -> float:
    """Sum of positive step-to-step increments of the normalized train loss (lower is smoother)."""
    normalized = train_loss / train_loss[0]
    return float(np.maximum(0.0, np.diff(normalized)).sum())


@dataclass(frozen=True)
class SchedulerSpec:
    """A scheduler to evaluate: an expert schedule by name, or a policy checkpoint."""

    label: str
    expert: str | None = None
    policy_path: str | None = None


def _scheduler_outcome(spec: SchedulerSpec, task: TaskConfig, total_steps: int, base_lr: float, seeds: int,
                       data: MnistSplits | None, progress: bool, desc: str) -> dict:
    """Roll one scheduler out on the evaluation seeds: per-seed numbers and mean curves (plain lists)."""
    from learned_lr.policy import load_policy

    group = make_run_group(task, list(range(EVAL_SEED_START, EVAL_SEED_START + seeds)), data)
    if spec.expert is not None:
        episodes = rollout_exact_schedule(group, expert_schedule(spec.expert), total_steps, [base_lr] * seeds, ControlConfig(), progress=progress)
    else:
        policy = load_policy(spec.policy_path)
        episodes = rollout(group, PolicyController(policy.actor), total_steps, [base_lr] * seeds, policy.control_config, RewardConfig(), progress=progress, desc=desc)
    return _episodes_outcome(episodes)


def _reused_outcome(label: str, episodes: Sequence[Episode], total_steps: int, base_lr: float, seeds: int) -> dict:
    """The outcome of runs made elsewhere, after checking they are the runs this evaluation would make."""
    expected = list(range(EVAL_SEED_START, EVAL_SEED_START + seeds))
    if ([e.seed for e in episodes] != expected or any(e.base_lr != base_lr or e.history.total_steps != total_steps for e in episodes)):
        raise ValueError(f"the runs given for {label!r} are not this evaluation's (seeds {expected}, {total_steps} steps, base LR {base_lr})")
    return _episodes_outcome(episodes)


def _episodes_outcome(episodes: Sequence[Episode]) -> dict:
    finished = [e for e in episodes if not e.diverged]
    shown = finished or episodes  # curves: the finished runs, or all of them if every run diverged
    length = min(e.history.steps for e in shown)
    losses = [e.history.train_loss[: e.history.steps] for e in finished]
    return {
        "test_loss": [e.test_loss for e in finished],
        "test_accuracy": [e.test_accuracy for e in finished],
        "train_loss_auc": [train_loss_auc(loss) for loss in losses],
        "roughness": [train_loss_roughness(loss) for loss in losses],
        "diverged": int(sum(e.diverged for e in episodes)),
        "curves": {"lr": np.mean([e.history.lrs[:length] for e in shown], axis=0).tolist() if length else [],
                   "train_loss": np.mean([e.history.train_loss[:length] for e in shown], axis=0).tolist() if length else []},
    }


def _as_floats(outcome: dict) -> dict:
    """An outcome with every number a float (a saved one has None for NaN)."""
    as_float = lambda values: [float("nan") if v is None else float(v) for v in values]  # noqa: E731
    for key in ("test_loss", "test_accuracy", "train_loss_auc", "roughness"):
        outcome[key] = as_float(outcome[key])
    outcome["curves"] = {k: as_float(v) for k, v in outcome["curves"].items()}
    return outcome


def evaluate_schedulers(specs: Sequence[SchedulerSpec], task: TaskConfig, total_steps: int, base_lr: float, seeds: int,
                        data: MnistSplits | None = None, progress: bool = True, label: str = "",
                        work: str | Path | None = None, done: dict[str, Sequence[Episode]] | None = None) -> tuple[list[dict], dict]:
    """Roll every scheduler out on the same held-out seeds; (rows of metrics with 95% CIs, curves).

    ``curves[label]`` holds the mean LR factor (LR / base LR) and mean training loss per step over
    the runs that finished. With ``work``, each scheduler's outcome is saved there as it
    finishes and reused by a later call with the same setting (a policy is identified by its
    checkpoint's SHA-256), so an interrupted evaluation continues where it stopped. ``done``
    maps a scheduler's label to episodes already run on these seeds, steps and base LR (the
    demo's BC report runs the experts and two BC policies so): they are scored, not run again,
    and a ``ValueError`` says so if they are not these runs.
    """
    rows, curves = [], {}
    for spec in specs:
        desc = f"{label} {spec.label}".strip()
        setting = {"label": spec.label, "expert": spec.expert, "task": task.setting(), "total_steps": total_steps,
                   "base_lr": base_lr, "seeds": seeds, "first_seed": EVAL_SEED_START,
                   "policy_sha256": saved_policy_sha256(spec.policy_path) if spec.policy_path else None}
        if done and spec.label in done:
            compute = lambda: _reused_outcome(spec.label, done[spec.label], total_steps, base_lr, seeds)  # noqa: E731
        else:
            compute = lambda: _scheduler_outcome(spec, task, total_steps, base_lr, seeds, data, progress, desc)  # noqa: E731
        outcome = _as_floats(compute() if work is None else saved_or_computed(Path(work) / f"{slug(spec.label)}.json", setting, compute))
        curves[spec.label] = {"lr_factor": np.asarray(outcome["curves"]["lr"], dtype=float) / base_lr,
                              "train_loss": np.asarray(outcome["curves"]["train_loss"], dtype=float)}
        rows.append({
            "task": label or task.task,
            "scheduler": spec.label,
            "base_lr": base_lr,
            "total_steps": total_steps,
            "seeds": seeds,
            "test_loss": mean_ci(outcome["test_loss"]),
            "test_accuracy": mean_ci(outcome["test_accuracy"]),
            "train_loss_auc": mean_ci(outcome["train_loss_auc"]),
            "roughness": mean_ci(outcome["roughness"]),
            "diverged": outcome["diverged"],
        })
    return rows, curves


def comparison_table(rows: Sequence[dict]) -> str:
    """Markdown table of ``evaluate_schedulers`` rows (mean ± 95% CI half-width)."""

    lines = ["| task | scheduler | test loss | test accuracy (%) | train-loss AUC | roughness (sum of increases) | diverged |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['scheduler']} | {format_stat(r['test_loss'])} | {format_stat(r['test_accuracy'], 100, 2)} | "
                     f"{format_stat(r['train_loss_auc'])} | {format_stat(r['roughness'], digits=2)} | {r['diverged']}/{r['seeds']} |")
    return "\n".join(lines)

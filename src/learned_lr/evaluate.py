"""Run a schedule on a trainee and record what happened.

Example:
    >>> record = run_schedule(TaskConfig(), expert_schedule("cosine"), steps=200, peak_lr=0.1, seed=0)  # doctest: +SKIP
    >>> record.test_accuracy > 0.9
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from learned_lr.config import TaskConfig
from learned_lr.experts import ExpertSchedule
from learned_lr.files import file_sha256, read_saved, slug, write_json
from learned_lr.tasks import MnistSplits, TrainingRun
from learned_lr.env.loop import is_diverged



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


# ---- comparing schedulers on held-out seeds ---------------------------------------------------

EVAL_SEED_START = 100_000  # evaluation seeds; demonstrations and PPO use seeds below this


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean and half-width of its two-sided t confidence interval (NaNs dropped)."""
    from scipy import stats

    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(arr) == 0:
        return {"mean": float("nan"), "ci": float("nan"), "n": 0}
    if len(arr) == 1:
        return {"mean": float(arr[0]), "ci": float("nan"), "n": 1}
    half = float(stats.t.ppf(0.5 + confidence / 2, len(arr) - 1) * arr.std(ddof=1) / np.sqrt(len(arr)))
    return {"mean": float(arr.mean()), "ci": half, "n": int(len(arr))}


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
    from learned_lr.config import ControlConfig, RewardConfig
    from learned_lr.experts import expert_schedule
    from learned_lr.policy import load_policy
    from learned_lr.tasks.batched import make_run_group
    from learned_lr.training.rollout import PolicyController, rollout, rollout_exact_schedule

    group = make_run_group(task, list(range(EVAL_SEED_START, EVAL_SEED_START + seeds)), data)
    if spec.expert is not None:
        episodes = rollout_exact_schedule(group, expert_schedule(spec.expert), total_steps, [base_lr] * seeds, ControlConfig(), progress=progress)
    else:
        policy = load_policy(spec.policy_path)
        episodes = rollout(group, PolicyController(policy.actor), total_steps, [base_lr] * seeds, policy.control_config, RewardConfig(), progress=progress, desc=desc)
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


def _saved_outcome(path: Path, setting: dict) -> dict | None:
    """A saved outcome with exactly this setting, or None; JSON's nulls (NaN/inf) read back as NaN."""
    saved = read_saved(path, setting)
    if saved is None:
        return None
    as_float = lambda values: [float("nan") if v is None else float(v) for v in values]  # noqa: E731
    outcome = saved["outcome"]
    for key in ("test_loss", "test_accuracy", "train_loss_auc", "roughness"):
        outcome[key] = as_float(outcome[key])
    outcome["curves"] = {k: as_float(v) for k, v in outcome["curves"].items()}
    return outcome


def evaluate_schedulers(specs: Sequence[SchedulerSpec], task: TaskConfig, total_steps: int, base_lr: float, seeds: int,
                        data: MnistSplits | None = None, progress: bool = True, label: str = "",
                        work: str | Path | None = None) -> tuple[list[dict], dict]:
    """Roll every scheduler out on the same held-out seeds; (rows of metrics with 95% CIs, curves).

    ``curves[label]`` holds the mean LR factor (LR / base LR) and mean training loss per step over
    the runs that finished. With ``work``, each scheduler's outcome is saved there as it
    finishes and reused by a later call with the same setting (a policy is identified by its
    checkpoint's SHA-256), so an interrupted evaluation continues where it stopped.
    """
    import dataclasses

    rows, curves = [], {}
    for spec in specs:
        desc = f"{label} {spec.label}".strip()
        setting = {"label": spec.label, "expert": spec.expert, "task": dataclasses.asdict(task), "total_steps": total_steps,
                   "base_lr": base_lr, "seeds": seeds, "first_seed": EVAL_SEED_START,
                   "policy_sha256": file_sha256(spec.policy_path) if spec.policy_path else None}
        path = Path(work) / f"{slug(spec.label)}.json" if work is not None else None
        outcome = _saved_outcome(path, setting) if path is not None else None
        if outcome is None:
            outcome = _scheduler_outcome(spec, task, total_steps, base_lr, seeds, data, progress, desc)
            if path is not None:
                write_json(path, {"setting": setting, "outcome": outcome})
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

    def fmt(stat: dict, scale: float = 1.0, digits: int = 4, suffix: str = "") -> str:
        if stat["n"] == 0:
            return "-"
        ci = "" if not np.isfinite(stat["ci"]) else f" ± {scale * stat['ci']:.{digits}f}"
        return f"{scale * stat['mean']:.{digits}f}{ci}{suffix}"

    lines = ["| task | scheduler | test loss | test accuracy (%) | train-loss AUC | roughness (sum of increases) | diverged |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['scheduler']} | {fmt(r['test_loss'])} | {fmt(r['test_accuracy'], 100, 2)} | "
                     f"{fmt(r['train_loss_auc'])} | {fmt(r['roughness'], digits=2)} | {r['diverged']}/{r['seeds']} |")
    return "\n".join(lines)

"""How schedulers hold up when the base LR is mistuned: final test loss vs base LR.

Every scheduler runs on the same held-out seeds at every base LR (one batched group of
seeds x base LRs per scheduler). Fixed schedules run exactly as torch computes them; the
loss-driven baselines (``baselines``) and the policies act through rollouts. Each scheduler's
runs are saved under ``work/`` as they finish, so a rerun skips what is done.

A diverged run (``loop.is_diverged``) is scored as an untrained model would be (for MNIST:
test loss ln(10), accuracy 10%; ``TaskData.chance_loss``); the divergences are also counted in the table. Dropping them
instead would make a scheduler that blows up look better than one that merely trains badly.

Example:
    >>> results = [run_scheduler(spec, TaskConfig(), 2000, [0.02, 0.1], seeds=5) for spec in specs]  # doctest: +SKIP
    >>> summary = summarize(results, core_lrs=[0.02, 0.1])
    >>> print(markdown_report(summary, title="MNIST-MLP"))
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from learned_lr.experiments.stats import format_stat, mean_ci
from learned_lr.experiments.suites import ANCHOR_SCHEDULES
from learned_lr.files import read_saved, saved_or_computed, slug
from learned_lr.policy import saved_policy_sha256
from learned_lr.settings import ControlConfig, RewardConfig
from learned_lr.tasks import MnistSplits
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.seeds import EVAL_SEED_START
from learned_lr.training.config import EXPERT_NAMES

CHANCE_LOSS = math.log(10.0)  # MNIST's (10 classes)
CHANCE_ACCURACY = 0.1
CURVE_POINTS = 200  # LR and train-loss curves are stored downsampled to this many points
# A run's final validation loss: the mean of its rotating validation-batch losses over this last
# fraction of its steps (what LR tuning reads; the test split is left for reporting).
FINAL_VAL_FRACTION = 0.1


@dataclass(frozen=True)
class Contender:
    """A scheduler in the comparison: kind is 'schedule', 'baseline', 'policy' or 'anchor'.

    An 'anchor' is an LR-free (or schedule-free) optimizer: ``name`` is the optimizer
    (``tasks.optimizers``), which replaces the task's, run under ``ANCHOR_SCHEDULES[name]``.
    """

    label: str
    kind: str
    name: str  # schedule, baseline or optimizer name, or the policy checkpoint path

    @property
    def slug(self) -> str:
        return slug(self.label)


def _downsample(values: np.ndarray, points: int = CURVE_POINTS) -> list[float]:
    index = np.linspace(0, len(values) - 1, min(points, len(values))).round().astype(int)
    return [float(v) for v in values[index]]


def run_scheduler(contender: Contender, task: TaskConfig, steps: int, lrs: Sequence[float], seeds: int,
                  data: MnistSplits | None = None, progress: bool = True, first_seed: int = EVAL_SEED_START) -> dict:
    """Run one contender at every base LR on ``seeds`` seeds from ``first_seed`` (default: the held-out
    evaluation seeds); per-run results and mean curves."""
    from learned_lr.experiments.baselines import baseline_control, make_baseline
    from learned_lr.policy import load_policy
    from learned_lr.tasks.datasets import load_task_data
    from learned_lr.tasks.groups import make_run_group
    from learned_lr.training.experts import expert_schedule
    from learned_lr.training.rollout import PolicyController, rollout, rollout_exact_schedule

    if contender.kind == "anchor":
        task = dataclasses.replace(task, optimizer=contender.name)
    seed_list = [first_seed + i for i in range(seeds)]
    runs = [(float(lr), seed) for lr in lrs for seed in seed_list]
    group = make_run_group(task, [seed for _, seed in runs], data, total_steps=steps)
    base_lrs = [lr for lr, _ in runs]
    desc = f"{contender.label} x {len(lrs)} base LRs"
    if contender.kind in ("schedule", "anchor"):
        schedule = expert_schedule(contender.name if contender.kind == "schedule" else ANCHOR_SCHEDULES[contender.name])
        episodes = rollout_exact_schedule(group, schedule, steps, base_lrs, ControlConfig(), progress=progress)
    elif contender.kind == "baseline":
        control = baseline_control(ControlConfig())
        episodes = rollout(group, make_baseline(contender.name, control), steps, base_lrs, control, RewardConfig(), progress=progress, desc=desc)
    elif contender.kind == "policy":
        policy = load_policy(contender.name)
        episodes = rollout(group, PolicyController(policy.actor), steps, base_lrs, policy.control_config, RewardConfig(), progress=progress, desc=desc)
    else:
        raise ValueError(f"unknown contender kind {contender.kind!r}")
    task_data = load_task_data(task.task, data, task.lm_context, task.test_examples)
    tail = max(1, int(FINAL_VAL_FRACTION * steps))
    per_run = [{
        "base_lr": e.base_lr, "seed": e.seed, "diverged": bool(e.diverged),
        "test_loss": task_data.chance_loss if e.diverged else e.test_loss,
        "test_accuracy": task_data.chance_accuracy if e.diverged else e.test_accuracy,
        "final_val_loss": None if e.diverged else float(np.mean(e.history.val_loss[steps - tail : steps])),
    } for e in episodes]
    curves = {}
    for lr in lrs:
        mine = [e for e in episodes if e.base_lr == float(lr)]
        lr_curves = np.full((len(mine), steps), np.nan)
        loss_curves = np.full((len(mine), steps), np.nan)
        for row, e in enumerate(mine):
            lr_curves[row, : e.history.steps] = e.history.lrs[: e.history.steps]
            loss_curves[row, : e.history.steps] = e.history.train_loss[: e.history.steps]
        with warnings.catch_warnings():  # steps after every run diverged: NaN, on purpose
            warnings.simplefilter("ignore", RuntimeWarning)
            curves[f"{float(lr):g}"] = {"lr": _downsample(np.nanmean(lr_curves, 0)), "train_loss": _downsample(np.nanmean(loss_curves, 0))}
    return {"label": contender.label, "kind": contender.kind, "name": contender.name, "task": task.task, "steps": steps,
            "chance_loss": task_data.chance_loss, "trainee_runs": type(group).__name__,  # which runner (equal up to float rounding)
            "lrs": [float(lr) for lr in lrs], "seeds": seeds, "first_seed": first_seed, "runs": per_run, "curves": curves}


def run_or_load(contender: Contender, task: TaskConfig, steps: int, lrs: Sequence[float], seeds: int, work: Path,
                data: MnistSplits | None = None, progress: bool = True, first_seed: int = EVAL_SEED_START, name: str = "") -> dict:
    """``run_scheduler``, saved to ``work/<name or label>-<seeds>seeds.json``; a saved result with the same setting is reused.

    For a policy the setting includes its ``policy_sha256`` (weights and configs, not the file's
    bytes), so a policy retrained in place (e.g. PPO resumed for more iterations) is run again, not
    read from a stale result, while a file rewritten with the same decisions keeps its runs. The number
    of seeds is in the file's name so that commands asking for 3 and for 5 seeds of the same cell
    keep both, instead of each overwriting the other's. A result saved before that, under
    ``<name or label>.json``, is taken over when its setting is the same.
    """
    setting = {"label": contender.label, "kind": contender.kind, "name": contender.name, "task": task.setting(), "steps": steps,
               "lrs": [float(lr) for lr in lrs], "seeds": seeds, "first_seed": first_seed,
               "policy_sha256": saved_policy_sha256(contender.name) if contender.kind == "policy" else None}
    path, legacy = work / f"{name or contender.slug}-{seeds}seeds.json", work / f"{name or contender.slug}.json"
    if not path.is_file() and read_saved(legacy, setting) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(legacy, path)
    result = saved_or_computed(path, setting, lambda: run_scheduler(contender, task, steps, lrs, seeds, data, progress, first_seed))
    return {**result, "policy_sha256": setting["policy_sha256"]}


def summarize(results: Sequence[dict], core_lrs: Sequence[float]) -> dict:
    """Per scheduler and base LR: test loss and accuracy (mean, 95% CI), divergences; worst cases; the headline."""
    rows = []
    for result in results:
        per_lr = {}
        for lr in result["lrs"]:
            runs = [r for r in result["runs"] if r["base_lr"] == lr]
            per_lr[f"{lr:g}"] = {
                "test_loss": mean_ci([r["test_loss"] for r in runs]),
                "test_accuracy": mean_ci([r["test_accuracy"] for r in runs]),
                "diverged": sum(r["diverged"] for r in runs),
                "runs": len(runs),
            }
        core = [f"{lr:g}" for lr in core_lrs if f"{lr:g}" in per_lr]
        worst_lr = max(core, key=lambda k: per_lr[k]["test_loss"]["mean"])
        best_lr = min(per_lr, key=lambda k: per_lr[k]["test_loss"]["mean"])
        rows.append({"label": result["label"], "kind": result["kind"], "per_lr": per_lr,
                     "worst_core_loss": per_lr[worst_lr]["test_loss"]["mean"], "worst_core_lr": float(worst_lr),
                     "best_loss": per_lr[best_lr]["test_loss"]["mean"], "best_lr": float(best_lr)})
    return {"rows": rows, "core_lrs": [float(lr) for lr in core_lrs], "headline": _headline(rows)}


def _headline(rows: list[dict]) -> dict:
    experts = [r for r in rows if r["kind"] == "schedule" and r["label"] in EXPERT_NAMES]
    if not experts:
        return {}
    best_worst = min(experts, key=lambda r: r["worst_core_loss"])
    best_tuned = min(experts, key=lambda r: r["best_loss"])
    tuned_lr = f"{best_tuned['best_lr']:g}"
    others = []
    for r in rows:
        if r in experts:
            continue
        at_tuned = r["per_lr"].get(tuned_lr, {}).get("test_loss", {}).get("mean", math.nan)
        others.append({
            "label": r["label"], "worst_core_loss": r["worst_core_loss"],
            "worst_case_gain": 1.0 - r["worst_core_loss"] / best_worst["worst_core_loss"],
            "loss_at_tuned_lr": at_tuned, "loss_vs_tuned_expert": at_tuned / best_tuned["best_loss"] - 1.0,
        })
    return {"best_expert_worst_case": {"label": best_worst["label"], "loss": best_worst["worst_core_loss"], "lr": best_worst["worst_core_lr"]},
            "best_tuned_expert": {"label": best_tuned["label"], "loss": best_tuned["best_loss"], "lr": best_tuned["best_lr"]},
            "others": others}


def markdown_report(summary: dict, title: str) -> str:
    """The tables (loss, accuracy) and the headline as markdown."""
    rows = summary["rows"]
    lrs = list(rows[0]["per_lr"]) if rows else []
    core = ", ".join(f"{lr:g}" for lr in summary["core_lrs"])
    lines = [f"## {title}", "", f"Final test loss (mean ± 95% CI half-width); worst case over base LR {core}. "
             "Diverged runs score ln 10 (chance); `d` counts them.", "",
             "| scheduler | " + " | ".join(f"LR {lr}" for lr in lrs) + " | worst case (LR) |",
             "|---|" + "---|" * (len(lrs) + 1)]
    for r in rows:
        cells = []
        for lr in lrs:
            cell = r["per_lr"][lr]
            cells.append(format_stat(cell["test_loss"]) + (f" ({cell['diverged']}d)" if cell["diverged"] else ""))
        lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | **{r['worst_core_loss']:.4f}** ({r['worst_core_lr']:g}) |")
    lines += ["", "Final test accuracy (%):", "", "| scheduler | " + " | ".join(f"LR {lr}" for lr in lrs) + " |", "|---|" + "---|" * len(lrs)]
    for r in rows:
        lines.append(f"| {r['label']} | " + " | ".join(format_stat(r["per_lr"][lr]["test_accuracy"], 100, 2) for lr in lrs) + " |")
    head = summary["headline"]
    if head:
        bw, bt = head["best_expert_worst_case"], head["best_tuned_expert"]
        lines += ["", f"Best expert by worst case: **{bw['label']}**, {bw['loss']:.4f} (at LR {bw['lr']:g}). "
                  f"Best tuned expert: **{bt['label']}** at LR {bt['lr']:g}, {bt['loss']:.4f}.", ""]
        for o in head["others"]:
            lines.append(f"* {o['label']}: worst case {o['worst_core_loss']:.4f}, {-100 * o['worst_case_gain']:+.1f}% vs the best expert's "
                         f"(target: -20% or lower); at LR {bt['lr']:g}: {o['loss_at_tuned_lr']:.4f}, {100 * o['loss_vs_tuned_expert']:+.1f}% "
                         "vs the tuned expert (target: +2% or lower)")
    return "\n".join(lines) + "\n"

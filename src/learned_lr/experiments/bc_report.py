"""The first result: each BC policy rolled out on held-out seeds next to its expert.

For every single-expert policy: the mean absolute log-ratio between its LR and the expert's
LR at every step (both clipped to the action's bounds, since a bounded log action cannot follow
a schedule that decays to exactly 0; the share of the run the expert spends below the lower
bound is reported beside it), and final test loss and accuracy of policy vs expert, as mean
and standard deviation over seeds. For the combined policy: how closely it follows each
expert when the expert drives the first part of the run (errors measured after the hand-off),
and which expert it resembles when it runs on its own from step 0.

Evaluation seeds start at 100000; demonstrations use seeds below 100000.

Example:
    >>> report = bc_report({"cosine": "runs/bc-cosine/policy.safetensors"}, BCReportConfig())  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from learned_lr.experiments.stats import mean_std
from learned_lr.policy import load_policy
from learned_lr.settings import RewardConfig
from learned_lr.tasks import load_mnist
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.groups import make_run_group
from learned_lr.tasks.seeds import EVAL_SEED_START  # noqa: E402
from learned_lr.training.config import EXPERT_NAMES
from learned_lr.training.experts import expert_schedule
from learned_lr.training.rollout import Episode, HandoffController, PolicyController, ScheduleController, rollout, rollout_exact_schedule


@dataclass(frozen=True)
class TaskSetting:
    label: str
    task: TaskConfig
    total_steps: int
    seeds: int


def log_lr_error(policy_factors: np.ndarray, expert_factors: np.ndarray, log_bounds: tuple[float, float], start: int = 0) -> float:
    """Mean |log(policy LR / expert LR)| over steps >= start, both clipped to the bounds."""
    lo, hi = log_bounds
    n = min(len(policy_factors), len(expert_factors))
    with np.errstate(divide="ignore"):
        p = np.clip(np.log(policy_factors[start:n]), lo, hi)
        e = np.clip(np.log(expert_factors[start:n]), lo, hi)
    return float(np.abs(p - e).mean()) if n > start else float("nan")


def _run(setting: TaskSetting, controller, base_lr: float, control, data) -> list[Episode]:
    seeds = list(range(EVAL_SEED_START, EVAL_SEED_START + setting.seeds))
    group = make_run_group(setting.task, seeds, data)
    return rollout(group, controller, setting.total_steps, [base_lr] * len(seeds), control, RewardConfig(), progress=True, desc=setting.label)


def bc_report(policy_paths: dict[str, str | Path], settings: list[TaskSetting], handoff_fraction: float = 0.25) -> dict:
    """Roll out the policies named by expert (and "all" for the combined one) on each setting."""
    data = load_mnist()
    policies = {name: load_policy(path) for name, path in policy_paths.items()}
    report: dict = {"rows": [], "curves": {}}
    for setting in settings:
        base_lr = setting.task.tuned_peak_lr
        any_policy = next(iter(policies.values()))
        control = any_policy.control_config
        bounds = control.log_bounds
        seeds = list(range(EVAL_SEED_START, EVAL_SEED_START + setting.seeds))
        experts = {}
        for name in EXPERT_NAMES:
            group = make_run_group(setting.task, seeds, data)
            experts[name] = rollout_exact_schedule(group, expert_schedule(name), setting.total_steps, [base_lr] * len(seeds), control, progress=True)
        curves = report["curves"].setdefault(setting.label, {})
        for name in EXPERT_NAMES:
            expert_factors = expert_schedule(name).factors(setting.total_steps)
            below = float((expert_factors < np.exp(bounds[0])).mean())
            curves[f"expert:{name}"] = experts[name]
            variants = []
            if name in policies:
                variants.append((f"BC {name}", PolicyController(policies[name].actor), 0))
            if "all" in policies:
                handoff = HandoffController(ScheduleController(expert_schedule(name), policies["all"].control_config), PolicyController(policies["all"].actor), handoff_fraction)
                variants.append((f"BC all, started under {name}", handoff, int(np.ceil(handoff_fraction * setting.total_steps))))
            for label, controller, start in variants:
                episodes = _run(setting, controller, base_lr, control, data)
                curves[f"{label}|{name}"] = episodes
                report["rows"].append(_row(setting, label, name, episodes, experts[name], expert_factors, bounds, start, below))
        if "all" in policies:
            episodes = _run(setting, PolicyController(policies["all"].actor), base_lr, policies["all"].control_config, data)
            curves["BC all, on its own"] = episodes
            for name in EXPERT_NAMES:
                expert_factors = expert_schedule(name).factors(setting.total_steps)
                below = float((expert_factors < np.exp(bounds[0])).mean())
                report["rows"].append(_row(setting, "BC all, on its own", name, episodes, experts[name], expert_factors, bounds, 0, below))
    return report


def _row(setting, label, expert, episodes, expert_episodes, expert_factors, bounds, start, below) -> dict:
    errors = [log_lr_error(e.lr_factors, expert_factors, bounds, start) for e in episodes]
    policy_loss = [e.test_loss for e in episodes]
    expert_loss = [e.test_loss for e in expert_episodes]
    relative = [(p - q) / q for p, q in zip(policy_loss, expert_loss)]
    return {
        "task": setting.label,
        "policy": label,
        "expert": expert,
        "lr_error_from_step": start,
        "lr_log_error": mean_std(errors),
        "expert_below_lower_bound": below,
        "policy_test_loss": mean_std(policy_loss),
        "expert_test_loss": mean_std(expert_loss),
        "test_loss_relative_diff": mean_std(relative),
        "policy_test_accuracy": mean_std([e.test_accuracy for e in episodes]),
        "expert_test_accuracy": mean_std([e.test_accuracy for e in expert_episodes]),
        "diverged": int(sum(e.diverged for e in episodes)),
    }


def markdown_table(rows: list[dict]) -> str:
    def fmt(s: dict, pct: bool = False, digits: int = 4) -> str:
        if pct:
            return f"{100 * s['mean']:+.2f}% ± {100 * s['std']:.2f}"
        return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"

    lines = [
        "| task | policy | vs expert | mean abs log LR error (clipped) | expert below bound | test loss policy | test loss expert | rel. diff | test acc policy | test acc expert |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        since = f" (from step {r['lr_error_from_step']})" if r["lr_error_from_step"] else ""
        lines.append(
            f"| {r['task']} | {r['policy']} | {r['expert']} | {fmt(r['lr_log_error'])}{since} | {100 * r['expert_below_lower_bound']:.1f}% | "
            f"{fmt(r['policy_test_loss'])} | {fmt(r['expert_test_loss'])} | {fmt(r['test_loss_relative_diff'], pct=True)} | "
            f"{100 * r['policy_test_accuracy']['mean']:.2f}% | {100 * r['expert_test_accuracy']['mean']:.2f}% |"
        )
    return "\n".join(lines)

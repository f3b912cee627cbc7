"""What `learned-lr claims` writes: the verdict table (markdown) and its figures.

* ``ppo_curve.png``: per PPO run, the validation score's change from its start (training variants,
  validation seeds; what says whether the curve has flattened) and the per-iteration training return.
* ``ppo_benchmark_curve.png`` (with ``curve_seeds``): PPO's training return and its benchmark score per
  iteration (the start, every validation snapshot, the final policy) on both sides of the split.
* ``il_ppo_result.png``: per side of the split, each contender's loss relative to the family's
  best tuned expert at every base-LR multiplier (geometric mean over the families), so BC,
  DAgger and PPO sit next to the experts and the LR-free optimizers.

Example:
    >>> plot_ppo_curves({"PPO s0": "runs/claims/ppo/seed-0"}, "results/claims/ppo_curve.png")   # doctest: +SKIP
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from learned_lr.experiments.plots import legend_outside, plt, save_figure, scheduler_colors
from learned_lr.training.distribution import HELD_OUT_FAMILIES, TRAINING_FAMILIES


def _read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open())) if path.is_file() else []


def _arm_of(label: str) -> str:
    """'PPO s3' -> 'PPO': the arm a seeded run belongs to."""
    head, _, seed = label.rpartition(" s")
    return head if head and seed.isdigit() else label


_SEED_STYLES = ("-", "--", ":", "-.", (0, (3, 1, 1, 1, 1, 1)))


def plot_ppo_curves(runs: dict[str, str], path: str | Path) -> None:
    """Validation change vs start (left) and training return per iteration (right), one line per PPO run:
    a colour per arm, a line style per seed (so five PPO seeds and four arms stay apart)."""
    fig, (val_ax, ret_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    colors = scheduler_colors([_arm_of(label) for label in runs])
    seen: dict[str, int] = {}
    for label, folder in runs.items():
        arm = _arm_of(label)
        style = dict(color=colors[arm], ls=_SEED_STYLES[seen.get(arm, 0) % len(_SEED_STYLES)])
        seen[arm] = seen.get(arm, 0) + 1
        validation = _read_csv(Path(folder) / "validation.csv")
        if validation:
            val_ax.plot([int(r["iteration"]) for r in validation], [100 * (math.exp(float(r["change_vs_start"])) - 1) for r in validation],
                        marker="o", ms=3.5, label=label, **style)
        log = _read_csv(Path(folder) / "ppo_log.csv")
        if log:
            returns = np.array([float(r["mean_return"]) for r in log])
            window = min(5, len(returns))
            smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
            ret_ax.plot(range(window, len(returns) + 1), smooth, **style)
    val_ax.axhline(0, color="black", lw=0.8)
    val_ax.set(xlabel="PPO iteration", ylabel="validation loss vs start (%, geometric mean)",
               title="validation runs (training variants, x0.1 / x1 / x10)")
    ret_ax.set(xlabel="PPO iteration", ylabel=f"mean return per run (per-decision scale, {5}-iteration mean)", title="PPO training return")
    legend_outside(fig, val_ax)
    fig.tight_layout()
    save_figure(fig, path)


def plot_benchmark_curve(curve: dict[str, dict], runs: dict[str, str], path: str | Path) -> None:
    """PPO's training return (left) and its benchmark score per iteration on each side of the split: the mean excess over
    the family's best tuned expert of the DAgger start (iteration 0), each scored snapshot and the final policy, per seed.

    ``curve``: seed -> {"iterations": [...], split: [mean excess per iteration]} (claims.json's ``benchmark_curve``);
    ``runs``: seed -> the PPO run's folder (its ppo_log.csv).
    """
    splits = [split for split in ("training", "held-out") if any(split in c for c in curve.values())]
    fig, axes = plt.subplots(1, 1 + len(splits), figsize=(4.6 * (1 + len(splits)), 3.8), squeeze=False)
    for n, seed in enumerate(curve):
        style = dict(color="C0", ls=_SEED_STYLES[n % len(_SEED_STYLES)], label=f"PPO {seed}")
        log = _read_csv(Path(runs[seed]) / "ppo_log.csv")
        axes[0][0].plot([int(r["iteration"]) for r in log], [float(r["mean_return"]) for r in log], **style)
        for ax, split in zip(axes[0][1:], splits):
            ax.plot(curve[seed]["iterations"], [100 * x for x in curve[seed][split]], marker="o", ms=3.5, **style)
    axes[0][0].set(xlabel="PPO iteration", ylabel="mean return per run (per-decision scale)", title="PPO training return")
    for ax, split in zip(axes[0][1:], splits):
        ax.set(xlabel="PPO iteration (0: the DAgger start)", ylabel="mean excess over the tuned expert (%)", title=f"benchmark, {split} families")
    legend_outside(fig, axes[0][0])
    fig.tight_layout()
    save_figure(fig, path)


def ratio_by_multiplier(result: dict, label: str, families: Sequence[str]) -> list[float]:
    """Per multiplier, the geometric mean over ``families`` of the contender's loss / the family's best tuned expert."""
    out = []
    for m in result["multipliers"]:
        logs = [math.log(result["per_family"][f]["rows"][label]["per_multiplier"][f"{m:g}"]["test_loss"]["mean"]
                         / result["per_family"][f]["best_tuned_expert_loss"]) for f in families]
        out.append(math.exp(float(np.mean(logs))))
    return out


def plot_il_ppo(result: dict, stages: dict[str, Sequence[str]], policies: Sequence[str], path: str | Path) -> None:
    """Loss / best tuned expert per multiplier, training and held-out families side by side.

    ``stages`` maps a line's name to the benchmark labels it averages (geometric mean; e.g. every PPO
    seed): each is drawn thick, its members thin beside it when there are several. Contenders that are
    not in ``policies`` (the experts, the LR-free optimizers) are drawn dashed; the other policies
    (ablation arms, snapshots) are left out, so the figure shows the pipeline's stages only.
    """
    splits = [(name, [f for f in result["families"] if f in members]) for name, members in
              (("training families", TRAINING_FAMILIES), ("held-out families", HELD_OUT_FAMILIES))]
    splits = [(name, fams) for name, fams in splits if fams]
    baselines = [label for label in result["summary"] if label not in policies]
    colors = scheduler_colors([*baselines, *stages])
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4), squeeze=False)
    for ax, (name, families) in zip(axes[0], splits):
        for label in baselines:
            ax.plot(result["multipliers"], ratio_by_multiplier(result, label, families), marker=".", lw=1.0, ls="--", color=colors[label], label=label)
        for stage, members in stages.items():
            curves = np.log([ratio_by_multiplier(result, label, families) for label in members])
            if len(members) > 1:
                for curve in curves:
                    ax.plot(result["multipliers"], np.exp(curve), lw=0.7, alpha=0.45, color=colors[stage])
            ax.plot(result["multipliers"], np.exp(curves.mean(axis=0)), marker="o", lw=2.4, color=colors[stage], label=stage)
        ax.set(xscale="log", yscale="log", xlabel="base LR / tuned LR", ylabel="final loss / best tuned expert (geometric mean)",
               title=f"{name} ({', '.join(families)})" if len(families) <= 2 else name)
        ax.axhline(1, color="black", lw=0.8)
    legend_outside(fig, axes[0][0])
    fig.tight_layout()
    save_figure(fig, path)


def _pct_of_log(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{100 * (math.exp(x) - 1):+.1f}%"


def claims_markdown(report: dict, result: dict) -> str:
    """The verdict table, early safety and the stages' benchmark summary, with the budget and the command."""
    c = report["config"]
    lines = ["# The proposal's claims and what PPO adds (`learned-lr claims`)", "",
             f"Budget: {c['iterations']} PPO iterations x {c['runs']} runs ({c['variants_per_iteration']} training variants per iteration, "
             f"base LR = tuned x log-uniform [{c['min_multiplier']:g}, {c['max_multiplier']:g}]), from `{c['general_work']}`; PPO seeds "
             f"{c['seeds']} (ablation arms and levers: {c['arm_seeds']}"
             + (f"; {c['seeded_arms']}: every PPO seed" if c.get("seeded_arms") else "") + f"). Scored on the `{c['suite']}` benchmark suite ({result['seeds']} evaluation seeds per cell, "
             f"multipliers {', '.join(f'{m:g}' for m in result['multipliers'])}).", "",
             "Each row: the mean over paired cells (PPO seed x family x multiplier x evaluation seed) of log(loss of A / loss of B), shown as "
             "a ratio - 1, with its 95% t-interval; negative = A (the method) lower.", "",
             "Validation-chosen PPO snapshot (lowest mean validation score; iteration 0 = the DAgger start; the last = the final policy; "
             "for a benchmark-curve seed its row is that iteration's): "
             + ", ".join(f"{seed}: iteration {it}" for seed, it in report.get("validation_best_iteration", {}).items()) + ".", "",
             "![PPO curves](ppo_curve.png)", "", "![BC, DAgger and PPO against the experts](il_ppo_result.png)", "",
             "| comparison (A vs B) | split | A vs B | 95% CI | cells | per PPO seed | verdict |", "|---|---|---|---|---|---|---|"]
    for name, per_split in report["comparisons"].items():
        for split, s in per_split.items():
            low, high = s["mean"] - s["ci"], s["mean"] + s["ci"]
            seeds = ", ".join(_pct_of_log(x) for x in s["per_seed"])
            lines.append(f"| {name} | {split} | {_pct_of_log(s['mean'])} | [{_pct_of_log(low)}, {_pct_of_log(high)}] | {s['cells']} | {seeds} | {s['verdict']} |")
    changes = report.get("validation_change", {})
    if any(changes.values()):
        iterations = sorted({it for per_seed in changes.values() for it in per_seed})
        lines += ["", "### PPO's validation runs vs its start, per iteration (geometric-mean loss change; what says the curve has flattened)", "",
                  "| PPO seed | " + " | ".join(f"it {it}" for it in iterations) + " |", "|---|" + "---|" * len(iterations)]
        for seed, per_seed in changes.items():
            lines.append(f"| {seed} | " + " | ".join(f"{100 * per_seed[it]:+.1f}%" if it in per_seed else "-" for it in iterations) + " |")
        means = [np.mean([per_seed[it] for per_seed in changes.values() if it in per_seed]) for it in iterations]
        lines.append("| mean of seeds | " + " | ".join(f"{100 * m:+.1f}%" for m in means) + " |")
    if report.get("benchmark_curve"):
        iterations = next(iter(report["benchmark_curve"].values()))["iterations"]  # every curve seed has the same budget
        lines += ["", "### PPO on the benchmark per iteration (mean excess over the best tuned expert; 0 = the DAgger start)", "",
                  "![PPO return and benchmark score per iteration](ppo_benchmark_curve.png)", "",
                  "| PPO seed | split | " + " | ".join(f"it {it}" for it in iterations) + " |", "|---|---|" + "---|" * len(iterations)]
        for seed, curve in report["benchmark_curve"].items():
            for split in ("training", "held-out"):
                if split in curve:
                    lines.append(f"| {seed} | {split} | " + " | ".join(f"{100 * x:+.1f}%" for x in curve[split]) + " |")
    lines += ["", f"### Early safety: trainee runs that diverged or rose above their starting loss, per PPO iteration (first {c['early_iterations']})", "",
              "| arm | seed | per iteration | total |", "|---|---|---|---|"]
    for arm, per_seed in report["early_safety"].items():
        for seed, counts in per_seed.items():
            lines.append(f"| {arm} | {seed} | {' '.join(map(str, counts))} | {sum(counts)}/{len(counts) * c['runs']} |")
    lines += ["", "### Every stage on the benchmark (mean excess over the best tuned expert; worst; gap at x1)", "",
              "| contender | training: mean | worst | gap x1 | held-out: mean | worst | gap x1 |", "|---|---|---|---|---|---|---|"]
    by_split = report["summary_by_split"]
    for label in sorted(by_split["training"], key=lambda k: by_split["training"][k]["mean_excess"]):
        cells = []
        for split in ("training", "held-out"):
            s = by_split.get(split, {}).get(label)
            cells += [f"{100 * s[k]:+.1f}%" for k in ("mean_excess", "worst_excess", "mean_gap_at_1")] if s else ["-"] * 3
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

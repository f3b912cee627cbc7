"""The figures: LR and loss curves of one run or several schedules side by side."""

from __future__ import annotations

import itertools
import math
import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (headless machines, CI)
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from learned_lr.control import held_back  # noqa: E402
from learned_lr.experiments.evaluate import RunRecord  # noqa: E402


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far)."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) == 0:
        return values
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(len(values)):
        lo = max(0, i + 1 - window)
        out[i] = (cumsum[i + 1] - cumsum[lo]) / (i + 1 - lo)
    return out


# One colour per scheduler in every figure. Hugging Face's schedule names share their twin's colour
# ("linear" is linear warm-up and decay). The policies shipped in the package keep theirs by name
# (the default, "bundled", is always red); other learned policies, whose labels are the user's, get
# the colours of _POLICY_COLORS in the order they appear, none of which a named scheduler uses.
_FIXED_COLORS = {
    "linear-warmup": "tab:blue", "linear": "tab:blue", "cosine": "tab:orange", "polynomial": "tab:green",
    "constant": "tab:gray", "constant_with_warmup": "0.35", "plateau": "tab:olive", "ReduceLROnPlateau": "tab:olive",
    "greedy": "tab:cyan", "GreedyLR": "tab:cyan",
    "prodigy": "#8c564b", "dadapt-adam": "#c49c94", "dog": "#bcbd22", "mechanic-sgd": "#17becf", "mechanic-adamw": "#9edae5",
    "sgd-schedulefree": "#2ca02c", "adamw-schedulefree": "#98df8a",
    "bundled": "tab:red", "BC (bundled)": "tab:red", "learned": "tab:red", "default": "tab:red",
    "general": "tab:purple", "mnist-bc": "#e377c2", "dagger-k32": "#843c39",
}
_POLICY_COLORS = ("#393b79", "#ad494a", "#e7ba52", "#5254a3", "#ff9896", "#aec7e8", "#ffbb78", "#c5b0d5")


def scheduler_colors(labels: Sequence[str]) -> dict[str, object]:
    """A colour per label: the fixed one of a known scheduler or bundled policy, else the next policy colour.

    Example:
        >>> scheduler_colors(["cosine", "general", "my policy"])
        {'cosine': 'tab:orange', 'general': 'tab:purple', 'my policy': '#393b79'}
    """
    colors: dict[str, object] = {}
    spare = itertools.cycle(_POLICY_COLORS)
    for label in dict.fromkeys(labels):
        colors[label] = _FIXED_COLORS.get(label) or next(spare)
    return colors


def legend_outside(fig, ax) -> None:
    """The axes' legend to the right of the figure, where it covers no data."""
    handles, names = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)


def _panel_title(task: str, what: str) -> str:
    """"task: what" on one line, or on two when a long task label would run into the next panel's title."""
    return f"{task}: {what}" if len(task) + len(what) <= 45 else f"{task}\n{what}"


def save_figure(fig, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_runs(records: Sequence[RunRecord], path: str | Path, title: str = "") -> None:
    """Three panels: LR, train loss (smoothed), validation loss (smoothed) vs step; one line per record.

    The legend gives each run's final test accuracy.
    """
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    color_of = scheduler_colors([record.schedule for record in records])
    for record in records:
        steps = np.arange(len(record.lrs))
        window = max(1, record.total_steps // 50)
        accuracy = "diverged" if record.diverged else f"test acc {record.test_accuracy:.2%}"
        label = f"{record.schedule} (seed {record.seed}, {accuracy})"
        style = dict(color=color_of[record.schedule], label=label)
        axes[0].plot(steps, record.lrs, **style)
        axes[1].plot(steps, smooth(record.train_loss, window), **style)
        axes[2].plot(steps, smooth(record.val_loss, window), **style)
    axes[0].set(xlabel="step", ylabel="learning rate", title="LR")
    axes[1].set(xlabel="step", ylabel="train loss (moving avg)", yscale="log", title="train loss")
    axes[2].set(xlabel="step", ylabel="val loss (moving avg)", yscale="log", title="validation loss")
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    legend_outside(fig, axes[0])
    save_figure(fig, path)


def plot_sweep(results: dict[str, dict[float, list[float]]], path: str | Path, title: str = "") -> None:
    """Final validation loss vs peak LR (log x), one line per schedule; mean over seeds with min-max band."""
    fig, ax = plt.subplots(figsize=(6, 4))
    color_of = scheduler_colors(list(results))
    for schedule, by_lr in results.items():
        lrs = sorted(by_lr)
        values = [np.asarray(by_lr[lr], dtype=float) for lr in lrs]
        mean = [float(np.mean(v)) if np.isfinite(v).all() else np.nan for v in values]
        ax.plot(lrs, mean, marker="o", label=schedule, color=color_of[schedule])
        lo = [float(np.min(v)) for v in values]
        hi = [float(np.max(v)) for v in values]
        ax.fill_between(lrs, lo, hi, alpha=0.2, color=color_of[schedule])
    ax.set(xscale="log", yscale="log", xlabel="peak LR", ylabel="final validation loss", title=title or "peak-LR sweep")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    save_figure(fig, path)


def _mean_curve(episodes, attribute: str, window: int) -> np.ndarray:
    curves = []
    for episode in episodes:
        values = getattr(episode.history, attribute)[: episode.history.steps]
        curves.append(smooth(values, window) if attribute == "train_loss" else values)
    length = min(len(c) for c in curves)
    return np.mean([c[:length] for c in curves], axis=0)


def plot_bc_vs_experts(curves: dict[str, dict[str, list]], expert_names: Sequence[str], path: str | Path) -> None:
    """Per task, two rows (LR as a fraction of the base LR, train loss) and one column per expert:
    the expert (black), its BC policy (dashed), the combined policy started under it (dotted),
    and the combined policy on its own (grey). Curves are means over the evaluation seeds."""
    tasks = list(curves)
    fig, axes = plt.subplots(2 * len(tasks), len(expert_names), figsize=(5 * len(expert_names), 3.2 * 2 * len(tasks)), squeeze=False)
    styles = [
        ("expert:{name}", dict(color="black", lw=2.0), "expert"),
        ("BC {name}|{name}", dict(color="tab:blue", ls="--", lw=1.6), "BC on this expert"),
        ("BC all, started under {name}|{name}", dict(color="tab:orange", ls=":", lw=2.0), "BC all, started under expert"),
        ("BC all, on its own", dict(color="grey", lw=1.0, alpha=0.8), "BC all, on its own"),
    ]
    for t, task in enumerate(tasks):
        for c, name in enumerate(expert_names):
            ax_lr, ax_loss = axes[2 * t, c], axes[2 * t + 1, c]
            for key_pattern, style, label in styles:
                key = key_pattern.format(name=name)
                if key not in curves[task]:
                    continue
                episodes = curves[task][key]
                total = episodes[0].history.total_steps
                factors = _mean_curve(episodes, "lrs", 1) / episodes[0].base_lr
                ax_lr.plot(np.arange(len(factors)), factors, label=label, **style)
                loss = _mean_curve(episodes, "train_loss", max(1, total // 40))
                ax_loss.plot(np.arange(len(loss)), loss, label=label, **style)
            ax_lr.set(title=f"{task}: {name}", xlabel="step", ylabel="LR / base LR", yscale="log", ylim=(5e-4, 2))
            ax_loss.set(xlabel="step", ylabel="train loss (moving avg)", yscale="log")
            ax_lr.grid(alpha=0.3), ax_loss.grid(alpha=0.3)
    fig.tight_layout()
    legend_outside(fig, axes[0, 0])
    save_figure(fig, path)


def plot_scheduler_comparison(curves_by_task: dict[str, dict[str, dict]], rows: Sequence[dict], path: str | Path) -> None:
    """Per task: LR / base LR, train loss (moving average), and final test loss with 95% CIs,
    one line or bar per scheduler. Curves are ``evaluate_schedulers``' means over the seeds."""
    tasks = list(curves_by_task)
    fig, axes = plt.subplots(len(tasks), 3, figsize=(17, 4 * len(tasks)), squeeze=False)
    color_of = scheduler_colors([label for task in tasks for label in curves_by_task[task]] + [r["scheduler"] for r in rows])
    for t, task in enumerate(tasks):
        ax_lr, ax_loss, ax_bar = axes[t]
        for label, curve in curves_by_task[task].items():
            style = dict(color=color_of[label], lw=2.0 if label.startswith("PPO") else 1.2, ls="-" if not label.startswith("BC") else "--")
            ax_lr.plot(np.arange(len(curve["lr_factor"])), curve["lr_factor"], label=label, **style)
            loss = smooth(curve["train_loss"], max(1, len(curve["train_loss"]) // 30))
            ax_loss.plot(np.arange(len(loss)), loss, label=label, **style)
        task_rows = [r for r in rows if r["task"] == task]
        _final_loss_points(ax_bar, task_rows, color_of)
        ax_lr.set(title=_panel_title(task, "LR"), xlabel="step", ylabel="LR / base LR", yscale="log")
        ax_loss.set(title=_panel_title(task, "train loss"), xlabel="step", ylabel="train loss (moving avg)", yscale="log")
        for ax in (ax_lr, ax_loss, ax_bar):
            ax.grid(alpha=0.3)
    fig.tight_layout()
    legend_outside(fig, axes[0, 0])
    save_figure(fig, path)


def _swamps(ci, mean) -> bool:
    """Whether a 95% CI half-width is wider than half its mean: a bar drawn with it would hide the value."""
    return bool(np.any(np.asarray(ci) > 0.5 * np.abs(np.asarray(mean))))


def _final_loss_points(ax, task_rows: Sequence[dict], color_of: dict) -> None:
    """Final test loss per scheduler with its 95% CI: bars, or points on a log axis where a CI is
    wider than half its mean (a bar would be swamped by it)."""
    means = np.array([r["test_loss"]["mean"] for r in task_rows], dtype=float)
    errors = np.array([r["test_loss"]["ci"] if np.isfinite(r["test_loss"]["ci"]) else 0.0 for r in task_rows], dtype=float)
    y = np.arange(len(task_rows))
    colors = [color_of[r["scheduler"]] for r in task_rows]
    finite = np.isfinite(means) & (means > 0)
    if finite.any() and _swamps(errors[finite], means[finite]):
        lower = np.minimum(errors, 0.9 * np.where(finite, means, 0.0))  # a log axis cannot show a CI reaching 0
        for i in np.flatnonzero(finite):
            ax.errorbar(means[i], y[i], xerr=[[lower[i]], [errors[i]]], fmt="o", color=colors[i], capsize=3)
        ax.set_xscale("log")
        ax.set(title=_panel_title(task_rows[0]["task"], "final test loss (mean, 95% CI; log)"), xlabel="test loss")
    else:
        ax.barh(y, means, xerr=errors, color=colors, capsize=3)
        if finite.any():
            ax.set_xlim(max(0.0, 0.9 * means[finite].min() - errors.max()), 1.05 * means[finite].max() + errors.max())
        ax.set(title=_panel_title(task_rows[0]["task"] if task_rows else "", "final test loss (mean, 95% CI)"), xlabel="test loss")
    ax.set_yticks(y, [r["scheduler"] for r in task_rows], fontsize=8)
    ax.invert_yaxis()


def plot_robustness(summary: dict, results: Sequence[dict], path: str | Path, title: str = "") -> None:
    """Final test loss and accuracy vs base LR (log x), one line per scheduler with 95% CI bars (or
    its seeds as points where the CIs would swamp the panel); and the LR each policy used over the run."""
    policies = [r for r in results if r["kind"] == "policy"]
    panels = 2 + len(policies)
    columns = min(4, panels)  # a grid, so many policies do not make a strip too wide to read
    rows = -(-panels // columns)
    fig, grid = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.2 * rows), squeeze=False)
    axes = grid.ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    color_of = scheduler_colors([row["label"] for row in summary["rows"]])
    runs_of = {result["label"]: result["runs"] for result in results}
    # With few seeds a 95% CI can be wider than the values themselves (t = 12.7 at 2 seeds): such a
    # panel shows each seed as a point around the mean line instead of bars that hide every line.
    swamped = {key: any(_swamps(s["ci"], s["mean"]) for row in summary["rows"] for s in (v[key] for v in row["per_lr"].values())
                        if np.isfinite(s["ci"])) for key in ("test_loss", "test_accuracy")}
    for row in summary["rows"]:
        lrs = [float(lr) for lr in row["per_lr"]]
        style = "-" if row["kind"] == "policy" else ("--" if row["kind"] == "baseline" else ":")
        color = color_of[row["label"]]
        for ax, key, scale in ((axes[0], "test_loss", 1.0), (axes[1], "test_accuracy", 100.0)):
            means = np.array([scale * row["per_lr"][k][key]["mean"] for k in row["per_lr"]])
            if swamped[key]:
                ax.plot(lrs, means, style, marker="o", ms=3, label=row["label"], color=color)
                seeds = [(run["base_lr"], scale * run[key]) for run in runs_of.get(row["label"], []) if np.isfinite(run[key])]
                ax.scatter([x for x, _ in seeds], [y for _, y in seeds], s=12, alpha=0.45, color=color)
            else:
                cis = np.array([scale * row["per_lr"][k][key]["ci"] for k in row["per_lr"]])
                ax.errorbar(lrs, means, yerr=np.nan_to_num(cis), fmt=style, marker="o", ms=3, capsize=2, label=row["label"], color=color)
    for lr in summary["core_lrs"][:1] + summary["core_lrs"][-1:]:
        for ax in axes[:2]:
            ax.axvline(lr, color="0.8", lw=0.8, zorder=0)
    spread = {key: " (line: mean; points: seeds)" if swamped[key] else " (mean, 95% CI)" for key in swamped}
    axes[0].set(xscale="log", yscale="log", xlabel="base LR", ylabel="final test loss" + spread["test_loss"],
                title=title or "final test loss vs base LR")
    axes[1].set(xscale="log", xlabel="base LR", ylabel="final test accuracy (%)" + spread["test_accuracy"],
                title="final test accuracy vs base LR")
    axes[1].set_ylim(max(0.0, axes[1].get_ylim()[0]), min(100.0, axes[1].get_ylim()[1]))
    all_lrs = sorted({float(lr) for row in summary["rows"] for lr in row["per_lr"]})
    for ax in axes[:2]:
        ax.set_xticks(all_lrs, [f"{lr:g}" for lr in all_lrs])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    for ax, result in zip(axes[2:], policies):
        lr_colors = plt.cm.viridis(np.linspace(0, 0.9, len(result["curves"])))
        for color, (lr, curve) in zip(lr_colors, result["curves"].items()):
            steps = np.linspace(0, result["steps"] - 1, len(curve["lr"]))
            ax.plot(steps, curve["lr"], color=color, label=f"base {lr}")
        ax.set(yscale="log", xlabel="step", ylabel="LR used (mean over seeds)", title=f"{result['label']}: LR it set")
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    legend_outside(fig, axes[0])
    save_figure(fig, path)


def plot_llm_comparison(results: Sequence[dict], path: str | Path, title: str = "") -> None:
    """Per batch size (rows): the LR each scheduler set and its training loss (smoothed over 10
    steps), both averaged over seeds; plus held-out loss after vs forgetting, one point per run."""
    sizes = sorted({r["batch_size"] for r in results})
    names = list(dict.fromkeys(r["scheduler"] for r in results))
    colors = scheduler_colors(names)
    fig, axes = plt.subplots(len(sizes), 3, figsize=(16, 4.0 * len(sizes)), squeeze=False)
    for row, size in zip(axes, sizes):
        for name in names:
            runs = [r for r in results if r["batch_size"] == size and r["scheduler"] == name and not r["diverged"]]
            if not runs:
                continue
            lrs = np.mean([r["lrs"] for r in runs], axis=0)
            losses = np.mean([smooth(r["train_losses"], 10) for r in runs], axis=0)
            row[0].plot(lrs, color=colors[name], label=name, lw=2.2 if name == "learned" else 1.2)
            row[1].plot(losses, color=colors[name], label=name, lw=2.2 if name == "learned" else 1.2)
            row[2].scatter([r["forgetting"] for r in runs], [r["held_out_after"] for r in runs], color=colors[name], label=name,
                           marker="*" if name == "learned" else "o", s=80 if name == "learned" else 30)
        row[0].set(xlabel="step", ylabel="LR (mean over seeds)", title=f"batch size {size}: LR")
        row[1].set(xlabel="step", ylabel="train loss (10-step mean, mean over seeds)", title=f"batch size {size}: training loss")
        row[2].set(xlabel="forgetting (fortunes loss after - before)", ylabel="held-out loss after",
                   title=f"batch size {size}: each run (lower-left is better)")
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    legend_outside(fig, axes[0, 0])
    save_figure(fig, path)


def _plain_log_labels(ax) -> matplotlib.ticker.FuncFormatter:
    """Log-axis tick labels as plain numbers ("2.9", not "2.9 x 10^0"); where the axis spans more than
    about 4x, only the 1-2-5 ticks are labelled, so the labels of 3, 4, 6-9 do not pile up."""

    def label(value: float, _position: int) -> str:
        low, high = ax.get_ylim()
        if value <= 0 or low <= 0:
            return ""
        leading_digit = round(value / 10 ** math.floor(math.log10(value) + 1e-9))
        wide = math.log10(high / low) > 0.6
        return f"{value:.3g}" if not wide or leading_digit in (1, 2, 5) else ""

    return matplotlib.ticker.FuncFormatter(label)


def plot_benchmark(result: dict, path: str | Path) -> None:
    """Final held-out loss vs LR multiplier (log x), one panel per family, one line per contender.

    Each contender keeps its colour in every panel; line style tells the kind (solid: learned
    policy, dashed: LR-free optimizer, dotted: schedule, dash-dot: loss-driven baseline).
    """
    families = result["families"]
    labels = list(result["summary"])
    color_of = scheduler_colors(labels)
    style_of = {"policy": "-", "anchor": "--", "schedule": ":", "baseline": "-."}
    columns = min(4, len(families))
    rows = -(-len(families) // columns)
    fig, grid = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.8 * rows), squeeze=False)
    axes = grid.ravel()
    for ax in axes[len(families):]:
        ax.set_visible(False)
    multipliers = result["multipliers"]
    for ax, family in zip(axes, families):
        fam = result["per_family"][family]
        cells = {label: [fam["rows"][label]["per_multiplier"][f"{m:g}"] for m in multipliers] for label in labels}
        # Few seeds can make a 95% CI wider than the values (t = 12.7 at 2 seeds): such a panel shows
        # each seed as a point around the mean line (where the JSON has them) instead of bars that hide every line.
        swamped = any(_swamps(c["test_loss"]["ci"], c["test_loss"]["mean"]) for per in cells.values() for c in per
                      if np.isfinite(c["test_loss"]["ci"]))
        for label in labels:
            kind = fam["rows"][label]["kind"]
            means = [c["test_loss"]["mean"] for c in cells[label]]
            style = dict(marker="o", ms=3, lw=2.0 if kind == "policy" else 1.2, color=color_of[label], label=label)
            if swamped:
                ax.plot(multipliers, means, style_of.get(kind, "-"), **style)
                seeds = [(m, v) for m, c in zip(multipliers, cells[label]) for v in c.get("test_losses", []) if np.isfinite(v)]
                ax.scatter([m for m, _ in seeds], [v for _, v in seeds], s=10, alpha=0.4, color=color_of[label])
            else:
                cis = [c["test_loss"]["ci"] for c in cells[label]]
                ax.errorbar(multipliers, means, yerr=np.nan_to_num(cis), fmt=style_of.get(kind, "-"), capsize=2, **style)
        ax.axhline(fam["best_tuned_expert_loss"], color="0.6", lw=0.8, zorder=0)
        ax.set(xscale="log", yscale="log", xlabel="LR multiplier (x tuned / default)",
               ylabel="final held-out loss" + (" (line: mean; points: seeds)" if swamped else " (mean, 95% CI)"),
               title=f"{family} ({result['setups'][family]['task']['optimizer']})")
        ax.set_xticks(multipliers, [f"{m:g}" for m in multipliers])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_formatter(_plain_log_labels(ax))
        ax.yaxis.set_minor_formatter(_plain_log_labels(ax))
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(8, len(names)), fontsize=8, bbox_to_anchor=(0.5, -0.02 - 0.03 * (len(names) // 8)))
    fig.suptitle(f"learned-lr benchmark, suite {result['suite']}: loss vs LR multiplier (grey: best tuned expert at x1)")
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    save_figure(fig, path)


def plot_decisions(result: dict, path: str | Path) -> None:
    """Top: the LR ``LearnedLR`` set each step (log), each decision marked where it was taken; bottom: the losses it read."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.2), sharex=True, gridspec_kw={"height_ratios": [1.2, 1]})
    steps = np.arange(len(result["lrs"]))
    top.plot(steps, result["lrs"], color="tab:blue", lw=1.5, label="LR set")
    top.axhline(result["base_lr"], color="0.6", lw=0.8, ls="--", label=f"base LR {result['base_lr']:g}")
    decisions = result["decisions"]
    cadence = result.get("cadence") or f"every {result['decision_interval']} steps"  # (results saved before "cadence" existed)
    by = f" by {result['deciders']}" if result.get("deciders") else ""  # (results saved before "deciders" existed)
    top.plot([d["step"] for d in decisions], [d["lr"] for d in decisions], "v", color="tab:red", ms=5,
             label=textwrap.fill(f"decision{by} ({cadence}: the LR its block ramps to)", 72))  # wrapped, so the legend stays inside the axes
    held = [d for d in decisions if held_back(d)]
    if held:
        top.plot([d["step"] for d in held], [result["base_lr"] * d["asked_factor"] for d in held], "v", mfc="none",
                 color="tab:red", ms=5, label=f"what it asked for, where the rise limit held it back ({len(held)})")
    top.set(yscale="log", ylabel="learning rate",
            title=f"{result['task']} ({result['optimizer']}), policy {result['policy']}, seed {result['seed']}: "
                  f"test loss {result['test_loss']:.4f}")
    top.legend(fontsize=8, loc="lower left")
    bottom.plot(steps, result["train_loss"], color="0.55", lw=0.7, label="train loss (each step)")
    bottom.plot(steps, result["val_loss"], color="tab:green", lw=0.7, alpha=0.8, label="validation batch loss")
    bottom.set(yscale="log", xlabel="step", ylabel="loss")
    bottom.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path)


def plot_validation(result: dict, path: str | Path) -> None:
    """``learned-lr validate``: each policy's excess over the tuned experts vs the LR multiplier, one panel per family."""
    families, multipliers = result["families"], result["multipliers"]
    color_of = scheduler_colors(list(result["policies"]))
    fig, axes = plt.subplots(1, len(families), figsize=(3.6 * len(families), 3.4), squeeze=False)
    for ax, family in zip(axes[0], families):
        for label, row in result["policies"].items():
            excess = [100 * math.expm1(x) for x in row["per_family_multiplier"][family]]
            ax.plot(multipliers, excess, "-o", ms=3, lw=1.5, color=color_of[label], label=label)
        ax.axhline(0.0, color="0.6", lw=0.8, zorder=0)
        ax.set(xscale="log", xlabel="LR multiplier (x tuned)", ylabel="loss over tuned expert (%)", title=family)
        ax.set_xticks(multipliers, [f"{m:g}" for m in multipliers])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)

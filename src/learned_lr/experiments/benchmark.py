"""The ruler: every contender on every task family, each at base LR = tuned LR x a multiplier.

For each family of a suite (``experiments.suites``):

1. **Tuned LR.** ``tuned_lr`` sweeps the family's optimizer (cosine schedule) and each
   Schedule-Free variant (constant, its own warm-up) over a grid on validation seeds (90,000 on)
   and picks the LR with the lowest final validation loss (never the test split); a best LR
   at the grid's edge extends the grid. Results are cached in ``work/sweep``.
2. **Cells.** Every contender x multiplier runs on the same held-out seeds (100,000 on; same
   initialization and data order for every contender). Experts, ``constant``, the loss-driven
   baselines and the learned policies drive the family's optimizer from base LR = tuned x m;
   an LR-free optimizer replaces it with its own LR argument = its default (1) x m, and
   Schedule-Free uses its own tuned LR x m. Each cell is saved in ``work/cells`` as it finishes
   and reused only for exactly the same setting (``robustness.run_or_load``).
3. **Scores.** Per family x contender: final held-out loss (and accuracy) with 95% CIs per
   multiplier; the worst case over the multipliers; the gap at x1 to the family's best tuned
   expert (the best of linear warm-up, cosine and polynomial at x1); the LR sensitivity (mean
   relative excess over that best across the multipliers). Across families, per contender:
   the mean and the worst of loss / best tuned expert - 1, over all families and over each side of
   the general policy's split (``training.distribution``). For every learned policy, per family,
   the general policy's targets (``_targets``): its worst case against the best fixed schedule's
   worst case and against the best LR-free optimizer at its default LR (x1).

Diverged runs score the untrained model's loss (``TaskData.chance_loss``) and are counted; so
does a run that ends worse than that (a blown-up loss the divergence check did not stop), since
its raw loss (up to 1e5 at x10 on ResNet-18) would swamp every mean.

Example:
    >>> result = run_benchmark(SUITES["smoke"], ["digits"], contenders(["cosine", "prodigy"]), Path("runs/b"))  # doctest: +SKIP
    >>> print(markdown_report(result))
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from learned_lr.experiments.robustness import Contender, run_or_load
from learned_lr.experiments.stats import format_stat, mean_ci
from learned_lr.experiments.suites import (
    ANCHOR_CONTENDERS,
    BASELINE_CONTENDERS,
    CONTENDER_NAMES,
    SCHEDULE_CONTENDERS,
    SWEEP_EXTENSIONS,
    Suite,
)
from learned_lr.tasks.config import LR_FREE_DEFAULT_LR, lr_grid_neighbor
from learned_lr.tasks.seeds import EVAL_SEED_START, VALIDATION_SEED_START
from learned_lr.training.config import EXPERT_NAMES
from learned_lr.training.distribution import HELD_OUT_FAMILIES, TRAINING_FAMILIES

SCHEDULE_FREE = ("sgd-schedulefree", "adamw-schedulefree")


def contenders(names: Sequence[str], policies: Sequence[tuple[str, str]] = ()) -> list[Contender]:
    """Contenders by name (``CONTENDER_NAMES``; ``bundled`` is the packaged policy) plus LABEL=PATH policies."""
    from learned_lr.bundled import resolve_policy

    out = []
    for name in names:
        if name in SCHEDULE_CONTENDERS:
            out.append(Contender(name, "schedule", name))
        elif name in BASELINE_CONTENDERS:
            out.append(Contender(name, "baseline", name))
        elif name in ANCHOR_CONTENDERS:
            out.append(Contender(name, "anchor", name))
        elif name == "bundled":
            out.append(Contender("bundled", "policy", str(resolve_policy("bundled"))))
        else:
            raise ValueError(f"unknown contender {name!r}; choose from {', '.join(CONTENDER_NAMES)}")
    out += [Contender(label, "policy", path) for label, path in policies]
    return out


def tuned_lr(suite: Suite, family: str, optimizer: str, work: Path, progress: bool = True, workers: int = 1) -> dict:
    """The LR with the lowest mean final validation loss over the suite's sweep grid (extended at an edge)."""
    setup = suite.families[family]
    task = dataclasses.replace(setup.task, optimizer=optimizer)
    schedule = "constant" if optimizer in SCHEDULE_FREE else "cosine"
    contender = Contender(schedule, "schedule", schedule)
    scores: dict[float, float] = {}

    def score(lrs: Sequence[float]) -> None:
        jobs = [dict(contender=contender, task=task, steps=setup.steps, lrs=[lr], seeds=suite.sweep_seeds, work=work / "sweep" / family,
                     progress=False, first_seed=VALIDATION_SEED_START, name=f"{optimizer}-{schedule}-lr{lr:g}") for lr in lrs]
        for lr, result in zip(lrs, run_jobs(jobs, workers, f"tune {family} {optimizer}", progress, leave=False)):
            values = [r["final_val_loss"] for r in result["runs"]]
            scores[lr] = math.inf if any(v is None or not math.isfinite(v) for v in values) else float(np.mean(values))

    score(list(suite.sweep_grid(optimizer)))
    for _ in range(SWEEP_EXTENSIONS):
        best = min(scores, key=scores.get)
        if best not in (min(scores), max(scores)) or len(scores) == 1:
            break
        score([lr_grid_neighbor(best, up=best == max(scores))])
    best = min(scores, key=scores.get)
    return {"family": family, "optimizer": optimizer, "schedule": schedule, "lr": best,
            "grid": {f"{lr:g}": scores[lr] for lr in sorted(scores)}, "seeds": suite.sweep_seeds, "steps": setup.steps}


def _worker_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_jobs(jobs: Sequence[dict], workers: int, desc: str, progress: bool = True, leave: bool = True) -> list[dict]:
    """``run_or_load(**job)`` for every job, results in the jobs' order; each is cached as it finishes.

    With ``workers`` > 1 the jobs run in that many processes at once: on a GPU they share it (small
    trainees leave it idle between kernels; ResNet-18 at width 64 keeps an H200 busy, where 5 processes
    ran ~1.4x one), on a CPU each gets cores / workers torch threads (on 2 cores: no gain).
    The processes are spawned, not forked, since CUDA cannot be used in a forked child.
    """
    with tqdm(total=len(jobs), desc=desc, disable=not progress, leave=leave) as bar:
        if workers <= 1 or len(jobs) <= 1:
            results = []
            for job in jobs:
                results.append(run_or_load(**job))
                bar.update()
            return results
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_worker_threads, initargs=(threads,))
        try:
            futures = [pool.submit(run_or_load, **job) for job in jobs]
            for future in as_completed(futures):
                future.result()  # a failed job stops the command now, with its own error (the others' results stay cached)
                bar.update()
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # on a failure, jobs not yet started are dropped


def base_lr(contender: Contender, multiplier: float, tuned: dict[str, float], family_optimizer: str) -> float:
    """The LR a contender is given at ``multiplier`` (see the module doc)."""
    if contender.kind == "anchor":
        reference = tuned[contender.name] if contender.name in SCHEDULE_FREE else LR_FREE_DEFAULT_LR[contender.name]
    else:
        reference = tuned[family_optimizer]
    return reference * multiplier


def run_benchmark(suite: Suite, families: Sequence[str], entrants: Sequence[Contender], work: Path,
                  multipliers: Sequence[float] | None = None, seeds: int | None = None, progress: bool = True,
                  workers: int = 1) -> dict:
    """Tune, then run every cell (resumable; ``workers`` processes at once, see ``run_jobs``); per-family rows and the cross-family summary."""
    multipliers = list(multipliers or suite.multipliers)
    # ``seeds`` (the command's --seeds) overrides every family; else a family's own number, else the suite's.
    family_seeds = {family: seeds or suite.families[family].seeds or suite.seeds for family in families}
    tuning, per_family = {}, {}
    for family in families:
        setup = suite.families[family]
        needed = {setup.task.optimizer} | {c.name for c in entrants if c.kind == "anchor" and c.name in SCHEDULE_FREE}
        tuning[family] = {opt: tuned_lr(suite, family, opt, work, progress, workers) for opt in sorted(needed)}
    cells = [(family, c, m) for family in families for c in entrants for m in multipliers]
    jobs, base_lrs = [], []
    for family, contender, m in cells:
        setup = suite.families[family]
        tuned = {opt: t["lr"] for opt, t in tuning[family].items()}
        base_lrs.append(base_lr(contender, m, tuned, setup.task.optimizer))
        jobs.append(dict(contender=contender, task=setup.task, steps=setup.steps, lrs=[base_lrs[-1]], seeds=family_seeds[family],
                         work=work / "cells" / family, progress=False, first_seed=EVAL_SEED_START, name=f"{contender.slug}-x{m:g}"))
    results: dict[str, dict[str, dict[str, dict]]] = {}
    for (family, contender, m), lr, result in zip(cells, base_lrs, run_jobs(jobs, workers, f"benchmark ({suite.name})", progress)):
        runs = [_scored(r, result["chance_loss"]) for r in result["runs"]]
        results.setdefault(family, {}).setdefault(contender.label, {})[f"{m:g}"] = {"base_lr": lr, "runs": runs}
    for family in families:
        per_family[family] = _family_rows(results[family], entrants, multipliers)
    setups = {f: {"task": suite.families[f].task.setting(), "steps": suite.families[f].steps, "seeds": family_seeds[f]} for f in families}
    by_split = {split: _summary({f: per_family[f] for f in families if f in members}, entrants)
                for split, members in (("training", TRAINING_FAMILIES), ("held-out", HELD_OUT_FAMILIES)) if set(families) & set(members)}
    return {"suite": suite.name, "families": list(families), "multipliers": multipliers, "seeds": max(family_seeds.values()), "setups": setups,
            "tuning": tuning, "per_family": per_family, "summary": _summary(per_family, entrants), "summary_by_split": by_split,
            "targets": _targets(per_family, entrants)}


def _scored(run: dict, chance_loss: float) -> dict:
    loss = run["test_loss"]
    if loss is not None and math.isfinite(loss) and loss <= chance_loss:
        return run
    return {**run, "test_loss": chance_loss, "diverged": True}


def _family_rows(cells: dict[str, dict[str, dict]], entrants: Sequence[Contender], multipliers: Sequence[float]) -> dict:
    rows = {}
    for c in entrants:
        per_m = {}
        for m in multipliers:
            cell = cells[c.label][f"{m:g}"]
            runs = cell["runs"]
            per_m[f"{m:g}"] = {"base_lr": cell["base_lr"], "test_loss": mean_ci([r["test_loss"] for r in runs]),
                               "test_losses": [r["test_loss"] for r in runs],  # per seed: the figure shows them where CIs swamp
                               "test_accuracy": mean_ci([r["test_accuracy"] for r in runs]),
                               "diverged": sum(bool(r["diverged"]) for r in runs), "runs": len(runs)}
        rows[c.label] = {"kind": c.kind, "per_multiplier": per_m}
    experts_at_1 = [rows[name]["per_multiplier"]["1"]["test_loss"]["mean"] for name in EXPERT_NAMES if name in rows and "1" in rows[name]["per_multiplier"]]
    best = min(experts_at_1) if experts_at_1 else math.nan
    for row in rows.values():
        losses = {m: v["test_loss"]["mean"] for m, v in row["per_multiplier"].items()}
        excess = {m: loss / best - 1.0 for m, loss in losses.items()}
        row["worst_loss"] = max(losses.values())
        row["gap_at_1"] = excess.get("1", math.nan)
        row["sensitivity"] = float(np.mean(list(excess.values())))
        row["worst_excess"] = max(excess.values())
    return {"best_tuned_expert_loss": best, "rows": rows}


def _summary(per_family: dict, entrants: Sequence[Contender]) -> dict:
    out = {}
    for c in entrants:
        sens = [per_family[f]["rows"][c.label]["sensitivity"] for f in per_family]
        worst = [per_family[f]["rows"][c.label]["worst_excess"] for f in per_family]
        gaps = [per_family[f]["rows"][c.label]["gap_at_1"] for f in per_family]
        out[c.label] = {"kind": c.kind, "mean_excess": float(np.mean(sens)), "worst_excess": float(np.max(worst)),
                        "mean_gap_at_1": float(np.mean(gaps))}
    return out


# The general policy's targets (issue 18), per family: its worst case over the multipliers at least
# 20% below the best fixed schedule's worst case, at most 5% above the best LR-free optimizer at its
# default LR (x1), and within 2% of the best tuned expert at x1.
TARGET_VS_SCHEDULES, TARGET_VS_LR_FREE, TARGET_GAP_AT_1 = -0.20, 0.05, 0.02


def _targets(per_family: dict, entrants: Sequence[Contender]) -> dict:
    """Per policy contender and family: its worst case against the best fixed schedule's and the LR-free optimizers' at x1,
    and the best tuned expert's x1 loss against that LR-free one: where the tuned expert is itself more than 5% above it,
    a scheduler of the family's optimizer meets the second target only by beating the tuned expert at every multiplier."""
    out: dict[str, dict] = {}
    for c in (c for c in entrants if c.kind == "policy"):
        for family, fam in per_family.items():
            rows = fam["rows"]
            schedules = [rows[n]["worst_loss"] for n in SCHEDULE_CONTENDERS if n in rows]
            lr_free = [rows[n]["per_multiplier"]["1"]["test_loss"]["mean"] for n in LR_FREE_DEFAULT_LR if n in rows and "1" in rows[n]["per_multiplier"]]
            worst = rows[c.label]["worst_loss"]
            vs_schedules = worst / min(schedules) - 1 if schedules else math.nan
            vs_lr_free = worst / min(lr_free) - 1 if lr_free else math.nan
            gap = rows[c.label]["gap_at_1"]
            met = [vs_schedules <= TARGET_VS_SCHEDULES, vs_lr_free <= TARGET_VS_LR_FREE, gap <= TARGET_GAP_AT_1]
            tuned_vs_lr_free = fam["best_tuned_expert_loss"] / min(lr_free) - 1 if lr_free else math.nan
            out.setdefault(c.label, {})[family] = {"worst_loss": worst, "vs_best_schedule_worst": vs_schedules, "vs_best_lr_free_at_1": vs_lr_free,
                                                   "gap_at_1": gap, "all_met": all(met) and bool(schedules) and bool(lr_free),
                                                   "tuned_expert_vs_best_lr_free_at_1": tuned_vs_lr_free}
    return out


def _split_of(family: str) -> str:
    return "held-out" if family in HELD_OUT_FAMILIES else "training"


def _pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{100 * x:+.1f}%"


def markdown_report(result: dict) -> str:
    """The cross-family summary, then one table per family (loss per multiplier with 95% CIs), as markdown."""
    ms = [f"{m:g}" for m in result["multipliers"]]
    fewer = {f: s["seeds"] for f, s in result["setups"].items() if s.get("seeds", result["seeds"]) < result["seeds"]}
    lines = [f"Suite `{result['suite']}`: {result['seeds']} held-out seeds per cell"
             + "".join(f" ({n} for {f})" for f, n in fewer.items()) + ", base LR = tuned LR x multiplier "
             f"({', '.join(ms)}). Excess = final held-out loss / the family's best tuned expert at x1 - 1.", "",
             "### Across families", "", "| contender | mean excess over multipliers and families | worst excess | mean gap at x1 |",
             "|---|---|---|---|"]
    ranked = sorted(result["summary"].items(), key=lambda kv: kv[1]["mean_excess"])
    for label, s in ranked:
        lines.append(f"| {label} | {_pct(s['mean_excess'])} | {_pct(s['worst_excess'])} | {_pct(s['mean_gap_at_1'])} |")
    for split, summary in result.get("summary_by_split", {}).items():
        lines += ["", f"### Across the {split} families (the general policy's split, `training.distribution`)", "",
                  "| contender | mean excess | worst excess | mean gap at x1 |", "|---|---|---|---|"]
        for label, s in sorted(summary.items(), key=lambda kv: kv[1]["mean_excess"]):
            lines.append(f"| {label} | {_pct(s['mean_excess'])} | {_pct(s['worst_excess'])} | {_pct(s['mean_gap_at_1'])} |")
    families = result["families"]
    if result.get("targets"):
        lines += ["", "### The general policy's targets, per family", "",
                  f"Worst case over the multipliers vs the best fixed schedule's worst case (target <= {_pct(TARGET_VS_SCHEDULES)}) and vs the "
                  f"best LR-free optimizer at its default LR, x1 (target <= {_pct(TARGET_VS_LR_FREE)}); gap at x1 to the best tuned expert "
                  f"(target <= {_pct(TARGET_GAP_AT_1)}). The last column is the best tuned expert at x1 against that LR-free optimizer: "
                  f"where it is above {_pct(TARGET_VS_LR_FREE)}, a policy meets the second target only by beating the tuned expert at "
                  "every multiplier.", "",
                  "| policy | family | split | worst loss | vs best schedule's worst | vs best LR-free at x1 | gap at x1 | all met | "
                  "tuned expert vs best LR-free at x1 |", "|---|---|---|---|---|---|---|---|---|"]
        for label, per in result["targets"].items():
            for family, t in per.items():
                lines.append(f"| {label} | {family} | {_split_of(family)} | {t['worst_loss']:.4f} | {_pct(t['vs_best_schedule_worst'])} | "
                             f"{_pct(t['vs_best_lr_free_at_1'])} | {_pct(t['gap_at_1'])} | {'yes' if t['all_met'] else 'no'} | "
                             f"{_pct(t.get('tuned_expert_vs_best_lr_free_at_1', math.nan))} |")
    lines += ["", "### Per family: mean excess over the multipliers (worst multiplier's excess)", "",
              "| contender | " + " | ".join(families) + " |", "|---|" + "---|" * len(families)]
    for label, _ in ranked:
        cells = [f"{_pct(result['per_family'][f]['rows'][label]['sensitivity'])} ({_pct(result['per_family'][f]['rows'][label]['worst_excess'])})"
                 for f in families]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for family in families:
        fam = result["per_family"][family]
        setup = result["setups"][family]
        tuning = ", ".join(f"{opt} {t['lr']:g}" for opt, t in result["tuning"][family].items())
        lines += ["", f"### {family}", "", f"{setup['task']['optimizer']}, {setup['steps']} steps, {setup.get('seeds', result['seeds'])} seeds per cell; tuned LR (sweep on validation seeds): "
                  f"{tuning}; best tuned expert at x1: {fam['best_tuned_expert_loss']:.4f}. Final held-out loss (mean ± 95% CI half-width); "
                  "`d`: runs that diverged or ended no better than an untrained model (scored as one).", "",
                  "| contender | " + " | ".join(f"x{m}" for m in ms) + " | worst | gap at x1 | sensitivity |",
                  "|---|" + "---|" * (len(ms) + 3)]
        for label, row in sorted(fam["rows"].items(), key=lambda kv: kv[1]["sensitivity"]):
            cells = []
            for m in ms:
                cell = row["per_multiplier"][m]
                cells.append(format_stat(cell["test_loss"], digits=3) + (f" ({cell['diverged']}d)" if cell["diverged"] else ""))
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {row['worst_loss']:.3f} | {_pct(row['gap_at_1'])} | {_pct(row['sensitivity'])} |")
    return "\n".join(lines) + "\n"


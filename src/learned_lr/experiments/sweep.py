"""`learned-lr sweep`: pick a peak LR for a task by the final validation loss of full runs.

Every finished run is saved at once (``OUT/sweep_runs.json``, keyed by the setting), so an
interrupted sweep continues where it stopped and a sweep with another setting starts afresh.

Example:
    >>> results, mean, best = run_sweep(SweepConfig(lrs="0.05,0.1", seeds=2, out="runs/sweep"))   # doctest: +SKIP
    >>> best
    0.1
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from tqdm.auto import tqdm

from learned_lr.experiments.config import SweepConfig
from learned_lr.experiments.evaluate import final_val_loss
from learned_lr.files import read_saved, write_json
from learned_lr.training.experts import expert_schedule


def run_sweep(config: SweepConfig, progress: bool = True) -> tuple[dict[float, list[float]], dict[float, float], float]:
    """(final val loss per LR and seed, their mean per LR (inf if any run diverged), the best LR); writes OUT/sweep.json."""
    schedule = expert_schedule(config.schedule, config.schedule_shape)
    out = Path(config.out)
    progress_path = out / "sweep_runs.json"
    setting = {"task": config.task.setting(), "schedule": config.schedule,
               "schedule_shape": dataclasses.asdict(config.schedule_shape), "steps": config.steps}
    saved = read_saved(progress_path, setting)
    # JSON has no inf: a diverged run (inf) was saved as null.
    done = {k: (math.inf if v is None else float(v)) for k, v in saved["val_loss"].items()} if saved else {}
    results: dict[float, list[float]] = {}
    jobs = [(lr, seed) for lr in config.lr_values for seed in range(config.seeds)]
    for lr, seed in tqdm(jobs, desc=f"sweep {config.task.task} {config.schedule}", disable=not progress):
        key = f"{lr!r}/{seed}"
        if key not in done:
            done[key] = final_val_loss(config.task, schedule, config.steps, lr, seed)
            write_json(progress_path, {"setting": setting, "val_loss": done})
        results.setdefault(lr, []).append(done[key])
    mean = {lr: (sum(v) / len(v) if all(math.isfinite(x) for x in v) else math.inf) for lr, v in results.items()}
    best = min(mean, key=mean.get)
    write_json(out / "sweep.json", {"task": config.task.setting(), "schedule": config.schedule, "steps": config.steps,
                                    "val_loss_by_lr": {str(k): v for k, v in results.items()}, "best_peak_lr": best})
    return results, mean, best

"""How far does a variant's tuned LR move when its sweep is run again on other trainee seeds?

Every "x m" of the validation draws and the ruler is relative to a tuned LR: the best (shape, LR) of a 1-3-10 sweep
on one trainee seed (``training.distribution.tune_variant``). The signal studies (``lr_scale_signals.py``,
``lr_range_probe.py``) ask how well a signal reads log10(m); if the tuned LR itself moves from seed to seed, no signal
can read it better than that noise allows. This runs each variant's sweep (same task, run length, grid and shapes)
twice on disjoint trainee seeds, ``--sweep-seeds`` N each (sweep a: the variant's sweep seeds, N = 1 being the draw's
own sweep; sweep b: the N seeds after them), each (shape, LR) scored by its mean over its N seeds, and reports:

* how often the two sweeps pick the same LR (and the same shape), and the spread of log10(LR_b / LR_a);
* the ceiling that noise puts on R^2 of log10(m) over the multipliers {0.1, 0.3, 1, 3, 10} (variance 0.5): with each
  tuned LR off its variant's "true" one by noise of variance s^2 / 2 (s: the spread of the difference of two draws),
  a perfect reader of the true LR scale reaches R^2 = 1 - (s^2 / 2) / 0.5 at best;
* what the choice costs: on seed b's sweep, seed a's (shape, LR) against seed b's best (final validation loss), so
  a choice within the noise shows as a small loss.

    python benchmarks/tuned_lr_noise.py --validation results/validation-deep-120/validation.json --trainable-only
    python benchmarks/tuned_lr_noise.py --validation results/validation-deep-120/validation.json --trainable-only --sweep-seeds 2

Only training-family variants of `learned-lr validate` draws are run (with N = 1 their first sweeps are read from
each draw's ``--work`` folder, not rerun).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from learned_lr.experiments.validate import expert_trains
from learned_lr.tasks.config import TaskConfig
from learned_lr.training.distribution import Variant, tune_variant


@dataclasses.dataclass(frozen=True)
class ShiftedVariant(Variant):
    """A variant whose sweep seeds start ``shift`` after its own (so its sweep is cached under another setting)."""

    shift: int = 0

    @property
    def sweep_seed(self) -> int:
        return super().sweep_seed + self.shift


# the signal studies' multipliers (lr_scale_signals.MULTIPLIERS; that module imports this one, so they are written out)
MULTIPLIER_VARIANCE = float(np.var(np.log10([0.1, 0.3, 1.0, 3.0, 10.0])))
NOISE_WORK = "runs/tuned-lr-noise"  # where this study's sweeps are cached, one folder per draw


def saved_sweep(draw_file: str, variant: dict) -> tuple[Variant, int, dict]:
    """(the variant, its sweep's grid points, its one-seed sweep's result) of a ``validate`` draw's variant, from the
    sweep cached in the draw's work folder (assumed to be runs/<the draw's results folder name>)."""
    sweep_file = Path("runs") / Path(draw_file).parent.name / "sweeps" / f"{variant['name']}.json"
    if not sweep_file.is_file():
        raise SystemExit(f"{sweep_file}: no sweep (the draw's --work folder is assumed to be runs/<its results folder's name>)")
    saved = json.loads(sweep_file.read_text())
    task = TaskConfig(**variant["task"])
    if (variant["steps"], task.setting()) != (saved["setting"]["steps"], saved["setting"]["task"]):
        raise SystemExit(f"{sweep_file}: not the sweep of the draw's variant {variant['name']}")
    ordinal = (saved["setting"]["seed"] - 900) // 1000
    return Variant(variant["name"], ordinal, task, variant["steps"]), len(saved["setting"]["grid"]), saved["result"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validation", required=True, help="comma-separated validation.json files of `learned-lr validate` draws")
    parser.add_argument("--trainable-only", action="store_true", help="leave out the variants whose tuned expert does not train")
    parser.add_argument("--families", default="", help="comma-separated: only these families' variants (default: all)")
    parser.add_argument("--sweep-seeds", type=int, default=1, help="trainee seeds per sweep (each (shape, LR) scored by their mean)")
    parser.add_argument("--work", default=NOISE_WORK, help="where this study's sweeps are cached")
    args = parser.parse_args()
    rows = []  # (name, first sweep, second sweep)
    for path in args.validation.split(","):
        draw = json.loads(Path(path).read_text())
        for variant, expert in zip(draw["variants"], draw["experts"]):
            if (args.trainable_only and not expert_trains(expert)) or (args.families and variant["family"] not in args.families.split(",")):
                continue
            drawn, grid_points, saved = saved_sweep(path, variant)
            folder = Path(args.work) / Path(path).parent.name
            a, b = (ShiftedVariant(drawn.name, drawn.ordinal, drawn.task, drawn.steps, shift) for shift in (0, args.sweep_seeds))
            first = saved if args.sweep_seeds == 1 else tune_variant(a, folder, grid_points, args.sweep_seeds)
            second = tune_variant(b, folder, grid_points, args.sweep_seeds)
            rows.append((variant["name"], first, second))
            print(f"{variant['name']}: {first['shape']} {first['lr']:g} then {second['shape']} {second['lr']:g}", flush=True)
    moves = np.array([math.log10(b["lr"] / a["lr"]) for _, a, b in rows])
    same_lr = float(np.mean(np.abs(moves) < 0.01))
    same_shape = float(np.mean([a["shape"] == b["shape"] for _, a, b in rows]))
    spread = float(np.sqrt(np.mean(moves**2)))
    costs = []
    for _, a, b in rows:
        score = b["grid"].get(a["shape"], {}).get(f"{a['lr']:g}")
        costs.append(math.inf if score is None else score / b["score"] - 1)
    finite = [c for c in costs if math.isfinite(c)]
    print(f"\n{len(rows)} variants, {args.sweep_seeds} seed(s) per sweep: the same LR on both seeds {same_lr:.0%}, the same shape {same_shape:.0%}; "
          f"log10(LR_b / LR_a): mean {moves.mean():+.2f}, root mean square {spread:.2f} (|move| of 0.5 decade or more: "
          f"{np.mean(np.abs(moves) >= 0.49):.0%})")
    print(f"the ceiling this noise puts on R^2 of log10(m): {1 - spread**2 / 2 / MULTIPLIER_VARIANCE:.2f}")
    print(f"seed a's (shape, LR) on seed b's sweep: final validation loss {np.mean(finite):+.1%} above seed b's best on average "
          f"(median {np.median(finite):+.1%}, largest {max(finite):+.1%}; {len(costs) - len(finite)} not on seed b's grid or diverged)")


if __name__ == "__main__":
    main()

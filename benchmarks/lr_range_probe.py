"""Does a deliberate LR probe read a model's LR scale where per-step summaries do not?

The thirty-third session's signal study (``lr_scale_signals.py``) found that no cheap summary of a run at a fixed
LR (losses, gradient norms, distance from the start, update-to-weight ratios, a line search along the step) explains
more than about 0.4 of the variance of log10(m), m = base LR / tuned LR, on trainable training-family variants: a
policy that reads them can place the base LR only to within a factor of ~3.5 either way. The next step named there
is a change of the action: the scheduler raises the LR on purpose and reads the loss's answer. Before building that
into a policy, this measures what such a probe could know, on the same variants and the same multipliers.

The probe is an LR range test (Smith 2017, "Cyclical learning rates"; the "LR finder" of fastai and Lightning): from
the run's initial weights, ``--probe-steps`` optimizer steps at an LR rising geometrically from base x 10^-LOW to base
x 10^HIGH, each on the run's own next training batch. It costs those steps, and the weights and optimizer state must
be put back afterwards (the scheduler already keeps the initial weights for its distance input). The loss curve is
smoothed (an exponential moving average, bias-corrected) and read three ways, each as log10 of the LR over the
base LR:

* ``probe_min``: the LR at the smoothed loss's minimum;
* ``probe_steep``: the LR where the smoothed loss falls fastest per decade of LR;
* ``probe_blowup``: the first LR where the smoothed loss exceeds ``BLOWUP`` x its minimum so far (the ramp's top if
  it never does); the probe stops there.

If the probe read the LR scale perfectly, each would be log10(c / m) for one constant c across models; the table
gives the R^2 of log10(m) from each (a line fitted on the other variants, each variant predicted by a fit it is not
in, as ``lr_scale_signals`` does for the policies' inputs: directly comparable with its 0.40 / 0.31 / 0.41), and
the spread of log10(probe LR / tuned LR) across variants (the error a constant c cannot remove).

    python benchmarks/lr_range_probe.py --validation results/validation-deep-120/validation.json --trainable-only

Only training-family variants are read (``learned-lr validate`` draws); held-out families are never run.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from lr_scale_signals import DISTANCE, MULTIPLIERS, TODAY, held_out_variant_r_squared, signals_of_run, study_variants

from learned_lr.tasks.run import TrainingRun

READINGS = ("probe_min", "probe_steep", "probe_blowup")
BLOWUP = 4.0  # the loss x its smoothed minimum at which a range test calls the LR too high (fastai stops at 4x)
PASSIVE = TODAY + DISTANCE  # the default policy's inputs, as lr_scale_signals summarises them
SMOOTHING = 0.9  # the moving average's weight on the past (fastai's LR finder uses 0.98 over 100+ steps)


def range_test(run: TrainingRun, base_lr: float, steps: int, low: float, high: float) -> dict[str, float]:
    """log10(LR / base) at each reading of a geometric LR ramp from base x 10^-low to base x 10^high."""
    exponents = np.linspace(-low, high, steps)  # log10(LR / base) at each step
    smoothed, average, lowest = [], 0.0, math.inf
    blowup = exponents[-1]
    for k, exponent in enumerate(exponents):
        loss = run.step(base_lr * 10.0 ** exponent).train_loss
        if not math.isfinite(loss):
            blowup = exponent
            break
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        value = average / (1 - SMOOTHING ** (k + 1))
        smoothed.append(value)
        lowest = min(lowest, value)
        if k >= 5 and value > BLOWUP * lowest:
            blowup = exponent
            break
    curve = np.array(smoothed)
    reached = exponents[:len(curve)]
    best = int(np.argmin(curve))
    # the fall per decade of LR, over a span of steps so that one noisy batch does not decide it
    span = max(2, steps // 20)
    if len(curve) > span:
        slopes = (curve[span:] - curve[:-span]) / (reached[span:] - reached[:-span])
        steep = float(reached[int(np.argmin(slopes)) + span // 2])
    else:
        steep = float(reached[best])
    return {"probe_min": float(reached[best]), "probe_steep": steep, "probe_blowup": float(blowup)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validation", required=True, help="comma-separated validation.json files of `learned-lr validate` draws")
    parser.add_argument("--trainable-only", action="store_true", help="leave out the variants whose tuned expert does not train")
    parser.add_argument("--tuned-sweep-seeds", type=int, default=1, help="the tuned LR of a sweep over this many trainee seeds "
                        "(as lr_scale_signals.py's option) instead of the draw's one-seed one")
    parser.add_argument("--probe-steps", type=int, default=60, help="steps of the range test")
    parser.add_argument("--low", type=float, default=3.0, help="the ramp starts at base x 10^-LOW")
    parser.add_argument("--high", type=float, default=3.0, help="the ramp ends at base x 10^HIGH")
    parser.add_argument("--with-passive", action="store_true", help="also run each variant and multiplier at a constant LR for 60 "
                        "steps and read the default's inputs there (lr_scale_signals' signals_of_run), alone and beside the range test")
    args = parser.parse_args()
    if args.probe_steps < 10 or args.low < 0 or args.high <= 0:
        parser.error("--probe-steps must be >= 10, --low >= 0 and --high > 0")
    args.work, args.variants_per_family, args.min_steps, args.max_steps, args.seed = "", 0, 0, 0, 0  # study_variants' other mode
    torch.manual_seed(0)
    rows = []  # (variant name, optimizer, log10 m, readings)
    for name, task, seed, steps, tuned_lr in study_variants(args):
        at_tuned: dict[str, float] = {}
        for m in MULTIPLIERS:
            run = TrainingRun(task, seed, total_steps=steps)
            readings = range_test(run, tuned_lr * m, args.probe_steps, args.low, args.high)
            if args.with_passive:
                passive = signals_of_run(TrainingRun(task, seed, total_steps=steps), tuned_lr * m, 60, 10)
                if passive is None:  # blew up at a constant LR within 60 steps: not comparable, left out
                    continue
                readings.update({k: passive[k] for k in PASSIVE})
            readings["log10_run_steps"] = math.log10(steps)  # known to a scheduler; the best LR falls with the run's length
            rows.append((name, task.optimizer, math.log10(m), readings))
            at_tuned = readings if m == 1.0 else at_tuned
        print(f"{name}: tuned LR {tuned_lr:g}; at x1 " + ", ".join(f"{k} {at_tuned.get(k, math.nan):+.2f}" for k in READINGS), flush=True)
    y = np.array([row[2] for row in rows])
    names = np.array([row[0] for row in rows])
    groups = {"all": lambda row: True, "sgd": lambda row: row[1] == "sgd", "adam/adamw": lambda row: row[1] != "sgd"}
    counts = {g: len({row[0] for row in rows if keep(row)}) for g, keep in groups.items()}
    print(f"\n{len(rows)} range tests ({counts['all']} variants x {len(MULTIPLIERS)} multipliers), {args.probe_steps} steps "
          f"from base x 1e-{args.low:g} to base x 1e{args.high:g}")
    print("| reading | " + " | ".join(f"R^2 {g} ({counts[g]} variants)" for g in groups) + " | error: sd of log10(probe LR / tuned LR), all |")
    print("|---|" + "---|" * (len(groups) + 1))
    together = {"all three": READINGS, "all three + log10 run steps": (*READINGS, "log10_run_steps")}
    if args.with_passive:
        together |= {"the default's inputs at a constant LR (steps 10-60)": PASSIVE, "the default's inputs + all three": PASSIVE + READINGS}
    for reading in (*READINGS, *together):
        keys = together.get(reading, (reading,))
        cells = []
        for keep in groups.values():
            chosen = [i for i, row in enumerate(rows) if keep(row)]
            x = np.array([[rows[i][3][k] for k in keys] for i in chosen])
            cells.append(f"{held_out_variant_r_squared(x, y[chosen], names[chosen], quadratic=False):.2f}" if len(set(names[chosen])) > 2 else "-")
        # probe LR / tuned LR = 10^(reading) x base / tuned = 10^(reading + log10 m): its spread is what no constant removes
        error = f"{np.std([rows[i][3][keys[0]] + rows[i][2] for i in range(len(rows))]):.2f}" if len(keys) == 1 else ""
        print(f"| {reading} | " + " | ".join(cells) + f" | {error} |")


if __name__ == "__main__":
    main()

"""Do the default's early decisions see anything that tells a too-low base LR from a too-high one?

The rise limit's trade on short runs (docs/results.md section 7): a faster climb helps a base LR ten times too
low and hurts one ten times too high, and a rule in steps cannot tell the two apart. A condition on a signal
the run shows could; this measures, under the default policy (rise limit and all), what its decisions at
given steps read, per multiplier of the tuned LR: the layers' mean log distance from their initial weights
relative to those weights (``init_distance_mean``, the signal that carried the LR scale best in
``benchmarks/lr_scale_signals.py``) and the log train loss relative to its first value. For each signal and
step, the AUC of telling the low multipliers (x0.1, x0.3) from the high ones (x3, x10): 0.5 says nothing,
1 (or 0) separates them perfectly.

It runs the variants of `learned-lr validate` results (training families only: their ``validation.json``),
each at its tuned LR times each multiplier, with ``experiments.explain.explain_run`` (the README's drop-in loop):

    python benchmarks/early_scale_signals.py results/validation-short-66-span/validation.json results/validation-short-67-span/validation.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from tqdm.auto import tqdm

from learned_lr.experiments.explain import explain_run
from learned_lr.tasks.config import TaskConfig

MULTIPLIERS = (0.1, 0.3, 1.0, 3.0, 10.0)
SIGNALS = ("init_distance_mean", "log_train_loss")


def auc(low: list[float], high: list[float]) -> float:
    """P(a high-multiplier value > a low-multiplier value), ties counted half."""
    low_a, high_a = np.asarray(low)[:, None], np.asarray(high)[None, :]
    return float(((high_a > low_a).mean() + 0.5 * (high_a == low_a).mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="validation.json files of `learned-lr validate`")
    parser.add_argument("--policy", default="default")
    parser.add_argument("--steps", default="17,33,49", help="decision steps to read (a run shorter than a step has none there)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    at = [int(s) for s in args.steps.split(",")]
    variants = [v for path in args.results for v in json.load(open(path))["variants"]]
    seen: dict[tuple[str, int, float], list[float]] = {}
    for variant in tqdm(variants, desc="variants"):
        for m in MULTIPLIERS:
            run = explain_run(TaskConfig(**variant["task"]), variant["steps"], variant["oracle_lr"] * m, seed=0, policy=args.policy)
            for decision in run["decisions"]:
                if decision["step"] in at and decision["seen"]:
                    for signal in SIGNALS:
                        value = decision["seen"][signal]
                        if np.isfinite(value):
                            seen.setdefault((signal, decision["step"], m), []).append(value)
    print(f"{len(variants)} variants x {len(MULTIPLIERS)} multipliers, policy {args.policy!r}")
    print("| signal | step | " + " | ".join(f"x{m:g} median (q25, q75)" for m in MULTIPLIERS) + " | AUC low (x0.1, x0.3) vs high (x3, x10) |")
    print("|---" * (3 + len(MULTIPLIERS)) + "|")
    for signal in SIGNALS:
        for step in at:
            cells = []
            for m in MULTIPLIERS:
                values = seen.get((signal, step, m), [])
                cells.append(f"{np.median(values):+.2f} ({np.quantile(values, 0.25):+.2f}, {np.quantile(values, 0.75):+.2f})" if values else "-")
            low = seen.get((signal, step, 0.1), []) + seen.get((signal, step, 0.3), [])
            high = seen.get((signal, step, 3.0), []) + seen.get((signal, step, 10.0), [])
            separation = f"{auc(low, high):.2f} ({len(low)} / {len(high)} runs)" if low and high else "-"
            print(f"| {signal} | {step} | " + " | ".join(cells) + f" | {separation} |")


if __name__ == "__main__":
    main()

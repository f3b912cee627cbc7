"""How closely can a policy that decides every K steps follow each expert? (no training involved)

For each expert and run length, the mean |log error| per step between the exact schedule and
the best a K-step controller can do, both clipped to the action's bounds: holding the LR for K
steps (a staircase) vs ramping log-linearly to each decision (what learned-lr does). This is
the floor under the BC policies' LR error and why the default K is 8.

    .venv/bin/python benchmarks/decision_interval.py
"""

from __future__ import annotations

import numpy as np

from learned_lr.control import LRRamp, expert_action
from learned_lr.settings import ControlConfig
from learned_lr.training.config import EXPERT_NAMES
from learned_lr.training.experts import expert_schedule


def main() -> None:
    bounds = ControlConfig().log_bounds
    lo, hi = bounds
    print(f"mean |log LR error| vs the exact schedule, bounds [{np.exp(lo):g}, {np.exp(hi):g}] x base LR")
    print(f"{'expert':14s} {'steps':>6s} " + " ".join(f"{'K=' + str(k) + ' hold':>11s} {'K=' + str(k) + ' ramp':>11s}" for k in (4, 8, 16, 32)))
    for name in EXPERT_NAMES:
        for total in (300, 1000, 2000):
            factors = expert_schedule(name).factors(total)
            with np.errstate(divide="ignore"):
                exact = np.clip(np.log(factors), lo, hi)
            cells = []
            for k in (4, 8, 16, 32):
                held = np.concatenate([np.full(min(k, total - s), exact[s : s + k].mean()) for s in range(0, total, k)])
                ramp = LRRamp(total, k, bounds)
                ramped = np.concatenate([np.log(ramp.apply(s, expert_action(factors, s, ramp.block_length(s), bounds))) for s in ramp.decision_steps()])
                cells += [np.abs(held - exact).mean(), np.abs(ramped - exact).mean()]
            print(f"{name:14s} {total:6d} " + " ".join(f"{c:11.4f}" for c in cells))


if __name__ == "__main__":
    main()

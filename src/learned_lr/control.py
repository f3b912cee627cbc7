"""From the policy's action to an LR per step.

The action is the log of the LR as a fraction of the base LR, clipped to the configured bounds.
A decision sets the LR to reach at the end of the next K steps; in between, the LR moves
log-linearly from the previous decision's value. Why a ramp rather than holding the LR for K
steps: a held LR is a staircase whose error against a smooth expert grows linearly with K
(mean |log error| at K=8, 1,000 steps: 0.023 linear-warm-up, 0.014 cosine; see
benchmarks/decision_interval.py), while the ramp's error is second-order (0.006 and 0.001)
and the LR curve stays smooth. The very first decision acts for one step only, so a schedule
that starts low (warm-up) is not ramped from a guess.

A dense start (``ControlConfig.start_decision_interval`` and ``start_steps``) takes the decisions
of the run's first steps more often than every K, where a run's fate is decided and the policy has
read least; the rest of the run pays K's cost.

A rise limit (``ControlConfig.max_lr_rise``, r > 1) caps how far one decision may raise the LR: the
block ends at most r times above where it starts (r^(n/K) for a block of n steps: a dense start's, the last); a cut
is never limited. Why: early in a run a policy has read almost nothing, and a decision that ramps
the LR 25x over its first block can end a run whose base LR is already too high before the next
decision could cut it (docs/results.md section 7, `mnist-cnn` at x10). With ``rise_span_fraction`` f, a run
shorter than K / f steps gets its r-fold rise per f of its steps instead (r^(n/(f T)) for a block of n steps of a
T-step run): a rise limit in steps is a slower climb, as a share of the run, the shorter the run, and a 60-300-step run
that must climb from a base LR ten times too low ran out of steps under it (docs/results.md section 7). Conditions on
the short span (``rise_span_from_step``, ``rise_span_distance``, ``rise_span_while_falling``) read the run, so the
loop judges them (``DecisionLoop._short_span_allowed``) and tells ``apply`` through its ``short_span`` argument. The
default's: from step 17, while the weights have moved less than 5% from their start (a too-low LR hardly moves them).

A cooldown (``ControlConfig.cooldown_fraction`` c) multiplies the LR of a run's last c of its steps by a linear decay
to zero (the policy's factor times (T - t) / (c T) at step t, never below the lower bound), as warm-up-stable-decay
schedules end: on runs under 300 steps the default's actors mostly end well above their own peak's tenth (a policy
that already decays is decayed further, which a run's end rarely minds). ``cooldown_max_steps`` N keeps it to runs
shorter than N steps. The policy's own action, and so the rise limit, are unchanged by it. (Tried on the default,
not shipped: docs/results.md section 7, "A cooldown at the end of short runs".)

After a block whose mean training loss rose above the block's before it (``ControlConfig.after_loss_rise`` r), a
decision may set at most r times the LR it starts from: r = 1 holds the LR, r < 1 cuts it. A rising loss is what a
too-high LR shows first, on any model; the loop reads it (``DecisionLoop._block_loss_change``). (Tried on the default,
not shipped: a noisy loss rises block to block at too low an LR too; section 7, "No rise after a block whose loss rose".)
While the last block's mean training loss is above ``ControlConfig.loss_over_lowest`` b times the lowest block mean of
the run so far, a decision may set at most ``over_lowest_factor`` times the LR it starts from: a loss that climbs back
well above the lowest it reached is what a too-high LR does to a run that was learning, and a too-low LR does not
(``DecisionLoop._last_block_over_lowest``; section 7, "A brake on a loss that climbs back above its lowest"). With
``over_lowest_below_layers`` N it acts only on models of fewer than N layers (a deep MLP's loss climbs above its lowest
without a too-high LR: section 7, "The brake on models of under 6 layers").

Example:
    >>> ramp = LRRamp(total_steps=20, decision_interval=8, log_bounds=(-6.9, 1.39))
    >>> ramp.decision_steps()
    [0, 1, 9, 17]
    >>> ramp.apply(0, -1.0).shape, ramp.apply(1, 0.0).shape   # LR factors for steps 0 and 1..8
    ((1,), (8,))
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from learned_lr.settings import ControlConfig


def clip_action(action: float, log_bounds: tuple[float, float]) -> float:
    """A finite action within bounds, whatever came in (NaN reads as the lowest, safest LR)."""
    lo, hi = log_bounds
    if not math.isfinite(action):
        return hi if action == math.inf else lo
    return min(max(action, lo), hi)


def held_back(decision: dict) -> bool:
    """True when the rise limit held a decision (a ``LearnedLR.decisions()`` entry) back: it set a lower LR factor than
    the policy asked for, beyond float rounding (decisions recorded before ``asked_factor`` existed: False)."""
    return decision.get("asked_factor", 0.0) > decision["lr_factor"] * (1 + 1e-6)


def rise_span(total_steps: int, decision_interval: int, rise_span_fraction: float = 0.0) -> float:
    """The steps over which a rise limit allows its r-fold rise: K, or ``rise_span_fraction`` of a run shorter than
    K / ``rise_span_fraction`` steps (at least one step).

    Example:
        >>> rise_span(1000, 32, 0.125), rise_span(100, 32, 0.125), rise_span(100, 32)
        (32, 12.5, 32)
    """
    share = rise_span_fraction * total_steps
    return max(1.0, share) if 0 < share < decision_interval else decision_interval


def cooldown_steps(total_steps: int, cooldown_fraction: float = 0.0, cooldown_max_steps: int = 0) -> int:
    """How many of a run's last steps the cooldown decays (0: none).

    Example:
        >>> cooldown_steps(100, 0.2), cooldown_steps(100, 0.2, cooldown_max_steps=100), cooldown_steps(3, 0.1)
        (20, 0, 1)
    """
    if cooldown_fraction <= 0 or (cooldown_max_steps and total_steps >= cooldown_max_steps):
        return 0
    return max(1, round(cooldown_fraction * total_steps))


class LRRamp:
    """Turns a run's sequence of decisions into per-step LR factors."""

    def __init__(self, total_steps: int, decision_interval: int, log_bounds: tuple[float, float], max_rise: float = 0.0,
                 start_interval: int = 0, start_steps: int = 0, rise_span_fraction: float = 0.0, cooldown: int = 0):
        self.total_steps = total_steps
        self.decision_interval = decision_interval
        self.log_bounds = log_bounds
        self.log_max_rise = math.log(max_rise) if max_rise > 0 else math.inf  # per rise_span steps
        self.rise_span = rise_span(total_steps, decision_interval, rise_span_fraction)
        self.cooldown = cooldown  # the last steps that decay linearly to zero (``cooldown_steps``)
        # Over the run's first ``start_steps`` steps, decisions every ``start_interval`` steps instead of K.
        self.start_interval, self.start_steps = (start_interval, start_steps) if start_interval and start_steps else (0, 0)
        self.previous_action: float | None = None
        self._steps: list[int] | None = None

    @classmethod
    def of(cls, total_steps: int, control: ControlConfig) -> LRRamp:
        """The ramp a ``ControlConfig`` describes (every runner builds its ramp here, so they all agree)."""
        return cls(total_steps, control.decision_interval, control.log_bounds, control.max_lr_rise,
                   control.start_decision_interval, control.start_steps, control.rise_span_fraction,
                   cooldown_steps(total_steps, control.cooldown_fraction, control.cooldown_max_steps))

    def decision_steps(self) -> list[int]:
        """The steps at which a decision is taken (before that step's update)."""
        if self._steps is None:
            steps, step = [0], 1
            while step < self.total_steps:
                steps.append(step)
                step += self.start_interval if step - 1 < self.start_steps else self.decision_interval
            self._steps = steps
        return list(self._steps)

    def block_length(self, step: int) -> int:
        """How many steps the decision taken at ``step`` controls."""
        if step == 0:
            return 1
        if self.start_interval and step - 1 < self.start_steps:
            return min(self.start_interval, self.total_steps - step)
        return min(self.decision_interval, self.total_steps - step)

    def apply(self, step: int, action: float, short_span: bool = True, most_log_rise: float = math.inf) -> np.ndarray:
        """LR factors (fractions of the base LR) for the block starting at ``step``; ``short_span`` False: the rise
        limit per K steps, whatever ``rise_span_fraction`` says; ``most_log_rise``: a further cap on this decision's
        log-change from where the LR is (``ControlConfig.after_loss_rise``; <= 0 forces a hold or a cut)."""
        action = clip_action(action, self.log_bounds)
        n = self.block_length(step)
        if self.previous_action is not None and self.log_max_rise < math.inf:
            span = self.rise_span if short_span else self.decision_interval
            action = min(action, self.previous_action + self.log_max_rise * n / span)
        if self.previous_action is not None and most_log_rise < math.inf:
            action = max(min(action, self.previous_action + most_log_rise), self.log_bounds[0])
        if self.previous_action is None:
            logs = np.full(n, action)
        else:
            logs = self.previous_action + (action - self.previous_action) * np.arange(1, n + 1) / n
        self.previous_action = action  # the policy's own (rise-limited) level: the cooldown only scales what it sets
        if not self.cooldown:
            return np.exp(logs)
        return np.maximum(np.exp(logs) * self.cooldown_multiplier(np.arange(step, step + n)), math.exp(self.log_bounds[0]))

    def cooldown_multiplier(self, steps: np.ndarray | int) -> np.ndarray | float:
        """The cooldown's factor at ``steps``: 1 before its last ``cooldown`` steps, then (T - t) / cooldown."""
        if not self.cooldown:
            return 1.0
        return np.minimum(1.0, (self.total_steps - np.asarray(steps, dtype=float)) / self.cooldown)

    def state(self) -> dict:
        return {"previous_action": self.previous_action}

    def load_state(self, state: dict) -> None:
        value = state.get("previous_action")
        self.previous_action = None if value is None else float(value)


def expert_action(factors: np.ndarray, step: int, block_length: int, log_bounds: tuple[float, float]) -> float:
    """What an expert schedule would decide at ``step``: its log factor at the block's last step, clipped."""
    factor = float(factors[min(step + block_length - 1, len(factors) - 1)])
    return clip_action(math.log(factor) if factor > 0 else -math.inf, log_bounds)

"""One run's control cycle: decide every K steps, ramp the LR, record what the step observed, reward.

This is the one implementation of the per-step loop a policy acts through. ``LearnedLR`` drives
one in a user's training loop, the rollouts drive N of them over a group of trainee runs, and the
gymnasium env drives one per episode, so a policy sees and acts on a user's run exactly as it did
in training.

The cycle, per run:

1. ``needs_decision()``: true at the steps of ``LRRamp.decision_steps()`` (0, 1, 1+K, ...);
   the controller then reads ``observation()`` and gives ``decide(action)`` one action;
2. ``lr()``: the LR of the next step, ramped log-linearly towards the last decision (pure: it
   can be read any number of times);
3. ``record(train_loss, val_loss, layer_grad_norms)``: what that step observed, at ``lr()``;
   at the end of a decision's block (or when the run diverges) the decision's reward is appended
   to ``rewards`` when a ``RewardConfig`` was given.

Example:
    >>> from learned_lr.settings import ControlConfig, RewardConfig
    >>> loop = DecisionLoop(total_steps=20, base_lr=0.1, control=ControlConfig(decision_interval=8), reward=RewardConfig())
    >>> loop.needs_decision()
    True
    >>> _ = loop.decide(0.0); loop.lr()
    0.1
    >>> loop.record(train_loss=2.3, val_loss=2.2, layer_grad_norms=(1.0, 0.5))
    >>> loop.step, loop.needs_decision(), len(loop.rewards)
    (1, True, 1)
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from learned_lr.control import LRRamp
from learned_lr.features import recorded_feature_names
from learned_lr.observation import RunHistory
from learned_lr.reward import block_reward, final_reward, subramanian_reward
from learned_lr.settings import ControlConfig, RewardConfig

# A run whose training loss exceeds this multiple of its first loss, or is not finite, is
# called diverged: continuing wastes compute and its numbers mean nothing.
DIVERGENCE_FACTOR = 10.0


def is_diverged(loss: float, first_loss: float) -> bool:
    """True if ``loss`` is not finite or above ``DIVERGENCE_FACTOR`` times the run's first loss."""
    return not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * first_loss


class DecisionLoop:
    """Decisions, LRs, observations and rewards of one run (see the module docstring).

    Args:
        total_steps: steps in the run.
        base_lr: the optimizer's base (peak) LR; ``lr()`` is this times the ramped factor.
        control: window, decision interval, action bounds and inputs of the policy.
        reward: the reward to give each decision; None records no rewards (``LearnedLR``).
        keep_steps: how many of the latest steps the history holds (None: all; ``RunHistory``'s ``keep``).
    """

    def __init__(self, total_steps: int, base_lr: float, control: ControlConfig, reward: RewardConfig | None = None,
                 keep_steps: int | None = None):
        self.control = control
        self.reward_config = reward
        self.history = RunHistory.of(total_steps, base_lr, control, keep=keep_steps)
        self.ramp = LRRamp.of(total_steps, control)
        self.decision_steps: list[int] = []
        self.actions: list[float] = []  # as the controller gave them (before clipping)
        self.decision_factors: list[float] = []  # the LR factor each decision set (reached at the end of its block)
        self.rewards: list[float] = []
        self.diverged = False
        # The current decision's LR factors, for steps [block_start, block_end). Before the first
        # decision (and so past none) the run is at its base LR.
        self._block: list[float] = [1.0]
        self._block_start = 0
        self.block_end = 0
        self._first_train_loss = math.nan
        self._best_val = math.nan  # the Subramanian reward's best validation loss so far
        self._lowest_block_loss = math.inf  # the lowest block mean of the training loss (``loss_over_lowest``)

    @property
    def total_steps(self) -> int:
        return self.history.total_steps

    @property
    def base_lr(self) -> float:
        return self.history.base_lr

    @property
    def step(self) -> int:
        """The next step to run (= the steps recorded so far)."""
        return self.history.steps

    @property
    def done(self) -> bool:
        return self.history.steps >= self.history.total_steps

    def needs_decision(self) -> bool:
        """True when the next step starts a new decision's block."""
        return self.history.steps == self.block_end and not self.done

    def observation(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(window, mask, context) the decision at the next step reads."""
        return self.history.observation(self.history.steps)

    def decide(self, action: float) -> np.ndarray:
        """Take the decision for the block starting at the next step; returns the block's LR factors."""
        step = self.history.steps
        if not self.needs_decision():
            raise RuntimeError(f"no decision is due at step {step} (the current one controls steps up to {self.block_end})")
        factors = self.ramp.apply(step, float(action), self._short_span_allowed(), self._most_log_rise())
        self._block = factors.tolist()
        self._block_start = step
        self.block_end = step + len(self._block)
        self.decision_steps.append(step)
        self.actions.append(float(action))
        self.decision_factors.append(self._block[-1])
        return factors

    def _most_log_rise(self) -> float:
        """The cap the loss's conditions put on this decision's log-change of the LR (inf: none): ``after_loss_rise`` after
        a block whose loss rose, ``over_lowest_factor`` while the last block's loss is above ``loss_over_lowest`` times
        the run's lowest block (a run whose loss climbs back up, as a too-high LR makes it, on any model)."""
        control, cap = self.control, math.inf
        if control.after_loss_rise and self._block_loss_change() > 0:
            cap = math.log(control.after_loss_rise)
        if control.loss_over_lowest and self._brakes_this_model() and self._last_block_over_lowest() > control.loss_over_lowest:
            cap = min(cap, math.log(control.over_lowest_factor))
        return cap

    def _brakes_this_model(self) -> bool:
        """Whether the loss-over-lowest brake acts on this run's model: any model, or (``over_lowest_below_layers``) one
        of fewer layers, read from the run's first step (``RunHistory.structure``; before it there is no block to read)."""
        below, structure = self.control.over_lowest_below_layers, self.history.structure
        return not below or (structure is not None and structure[0] < below)

    def _last_block_over_lowest(self) -> float:
        """The last block's mean training loss over the lowest block mean of the run so far, that block's included (NaN
        before a block, without a finite positive lowest; inf for a non-finite block after a finite one). Call it once per
        decision: it keeps the lowest block mean (a running minimum, as the history may no longer hold old steps)."""
        if not self.decision_steps or self.decision_steps[-1] < self.history.first_step or self.history.steps <= self.decision_steps[-1]:
            return math.nan
        last = float(np.mean(self.history.normalized_losses(self.decision_steps[-1], self.history.steps)[0]))
        if math.isfinite(last):
            self._lowest_block_loss = min(self._lowest_block_loss, last)
        lowest = self._lowest_block_loss
        if not (math.isfinite(lowest) and lowest > 0):
            return math.nan
        return last / lowest if math.isfinite(last) else math.inf

    def _short_span_allowed(self) -> bool:
        """Whether this decision may use the rise limit's short span (``rise_span_fraction``): always, unless a
        condition on it is set and the run does not meet it."""
        control = self.control
        if self.ramp.rise_span == control.decision_interval:  # this run has no short span (long, or none set): nothing to read
            return True
        if self.history.steps < control.rise_span_from_step:
            return False
        if control.rise_span_while_falling and not self._block_loss_change() < 0:
            return False
        return not control.rise_span_distance or self._near_init(control.rise_span_distance)

    def _near_init(self, distance: float) -> bool:
        """True if the layers' distance from their initial weights, relative to them (the geometric mean over layers the
        policy reads as ``init_distance_mean``, as last measured), is below ``distance`` (False before a measurement):
        a run whose weights have hardly moved has an LR too low to move them, whatever its model (docs/results.md
        section 7, `benchmarks/early_scale_signals.py`)."""
        if not self.history.steps:
            return False
        column = recorded_feature_names(self.control.inputs).index("init_distance_mean")
        return bool(self.history.features[-1][column] < math.log(distance))

    def _block_loss_change(self) -> float:
        """The last block's mean training loss minus the block's before it, over the run's first loss (NaN before two
        blocks, or without losses: neither fell nor rose, so a run that shows nothing gets neither condition)."""
        if len(self.decision_steps) < 2 or self.decision_steps[-2] < self.history.first_step:
            return math.nan
        before, last = self.decision_steps[-2], self.decision_steps[-1]
        train = self.history.normalized_losses(before, self.history.steps)[0]  # over a positive first loss (or 1): order kept
        return float(np.mean(train[last - before:]) - np.mean(train[: last - before]))

    def measures_distance(self) -> bool:
        """True when the step about to be recorded needs each layer's distance from its initial weights.

        Only a policy reading them (``inputs="all+distance"``) does: at every step of the run's first
        K (where the weights start to move and the distance grows fastest, by orders of magnitude), then
        at the last step of each decision's block, the one the next decision reads; the steps in between
        read the straight line between two measurements (``RunHistory.record``). Measured every step the
        distances cost ~10% of a small MLP's training step (``benchmarks/overhead_breakdown.py``); this
        way about 1/K of that. On MNIST-MLP runs at K = 16 the line is within 0.1 log-units of the
        per-step value (``tests/test_momentum_features.py``); in a block where a run blows up it lags
        behind (the weights jump in a few steps) until the block's last step, which the decision reads.
        """
        step = self.history.steps
        return self.history.reads_distance and (step < self.control.decision_interval or step + 1 == self.block_end)

    def lr_factor(self) -> float:
        """The next step's LR as a fraction of the base LR (past the run's end: the last one)."""
        offset = min(self.history.steps - self._block_start, len(self._block) - 1)
        return self._block[offset]

    def lr(self) -> float:
        """The next step's LR."""
        return self.history.base_lr * self.lr_factor()

    def record(self, train_loss: float, val_loss: float, layer_grad_norms: Sequence[float] | np.ndarray,
               layer_momentum_cos: Sequence[float] | np.ndarray | None = None,
               layer_init_distance: Sequence[float] | np.ndarray | None = None) -> None:
        """What the next step observed, run at ``lr()``; gives the decision its reward when its block ends.

        ``layer_momentum_cos``, ``layer_init_distance``: per layer, the step's gradient-momentum
        cosine and distance from the initial weights (kept only for a policy that reads them,
        ``inputs="all+momentum"`` / ``"all+distance"``); the distances only at the steps where
        ``measures_distance()`` is true (given at another step they are ignored, so a runner that
        measures every step and one that measures only when asked record the same run).

        This runs every step of a user's training loop (``LearnedLR``), so it is kept to a few
        float operations besides ``RunHistory.record``.
        """
        step = self.history.steps
        if step >= self.block_end:
            raise RuntimeError(f"step {step} has no decision yet: call decide() first")
        distance = layer_init_distance if self.measures_distance() else None
        self.history.record(self.lr(), train_loss, val_loss, layer_grad_norms, layer_momentum_cos, distance)
        if step == 0:
            self._first_train_loss = train_loss
        newly_diverged = not self.diverged and is_diverged(train_loss, self._first_train_loss)
        self.diverged = self.diverged or newly_diverged
        if self.reward_config is None:
            return
        if newly_diverged:
            self.rewards.append(-self.reward_config.divergence_penalty)
        elif not self.diverged and step + 1 == self.block_end:
            self.rewards.append(self._block_reward())

    def _block_reward(self) -> float:
        config, history = self.reward_config, self.history
        end = history.steps
        start = self._block_start
        train, val = history.normalized_losses(start, end)
        if config.kind == "subramanian":
            value, self._best_val = subramanian_reward(val, self._best_val, (history.total_steps - end) / history.total_steps, config)
            return value
        if config.kind == "final":
            return final_reward(val, end == history.total_steps, config)
        previous = float(history.normalized_losses(start - 1, start)[0][0]) if start > 0 else math.nan
        return block_reward(train, val, previous, config)

    # ---- checkpointing (``LearnedLR.state_dict``): plain values and arrays ----

    def state(self) -> dict:
        return {
            **{f"history_{k}": v for k, v in self.history.state().items()},
            "ramp_previous_action": self.ramp.previous_action,
            "block": np.asarray(self._block, dtype=np.float64),
            "block_start": self._block_start,
            "block_end": self.block_end,
            "decision_steps": np.asarray(self.decision_steps, dtype=np.int64),
            "decision_actions": np.asarray(self.actions, dtype=np.float64),
            "decision_factors": np.asarray(self.decision_factors, dtype=np.float64),
            "first_train_loss": self._first_train_loss,
            "diverged": self.diverged,
            "lowest_block_loss": self._lowest_block_loss,
        }

    def load_state(self, state: dict) -> None:
        self.history.load_state({k[len("history_"):]: v for k, v in state.items() if k.startswith("history_")})
        self.ramp.load_state({"previous_action": state["ramp_previous_action"]})
        block = state["block"]
        self._block = [float(v) for v in (block.tolist() if hasattr(block, "tolist") else block)]
        self._block_start = int(state["block_start"])
        self.block_end = int(state["block_end"])
        as_list = lambda value: (value.tolist() if hasattr(value, "tolist") else list(value))  # noqa: E731
        self.decision_steps = [int(v) for v in as_list(state["decision_steps"])]
        self.actions = [float(v) for v in as_list(state["decision_actions"])]
        self.decision_factors = [float(v) for v in as_list(state["decision_factors"])]
        self._first_train_loss = float(state["first_train_loss"])
        self.diverged = bool(state["diverged"])
        self._lowest_block_loss = float(state.get("lowest_block_loss", math.inf))  # a state saved before it kept none

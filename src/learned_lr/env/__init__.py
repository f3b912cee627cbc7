"""The POMDP: what the policy observes of a training run, how its action becomes an LR, the reward.

``observation``: the per-step features and the window the policy reads.
``control``: the bounded action and the log-linear LR ramp between decisions.
``reward``: the proposal's reward.
``gym_env``: all of it as a ``gymnasium.Env`` over one trainee run.
"""

from learned_lr.env.control import LRRamp, clip_action
from learned_lr.env.observation import FEATURE_NAMES, NUM_CONTEXT, NUM_FEATURES, RunHistory, stack_observations
from learned_lr.env.reward import block_reward

__all__ = [
    "FEATURE_NAMES",
    "NUM_CONTEXT",
    "NUM_FEATURES",
    "LRRamp",
    "RunHistory",
    "block_reward",
    "clip_action",
    "stack_observations",
]

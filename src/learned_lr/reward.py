"""The proposal's reward, on losses normalized by the run's first training loss.

    r = -mean_i( l1 * max(0, L_train_i - L_train_{i-1}) + l2 * L_train_i + l3 * L_val_i )

over the steps the decision controlled (its block of K steps). The proposal writes the mean
over the last 512 steps; summed over an episode, a sliding 512-step mean counts almost every
step equally often, so it is the same objective up to scale and edge effects, while the
block mean credits each decision with the steps it actually set. A diverged run ends with
``-divergence_penalty`` instead.

Example:
    >>> round(block_reward(np.array([1.0, 0.5, 0.6]), np.array([0.9, 0.5, 0.5]), previous_train=1.0, config=RewardConfig()), 4)
    -1.3667
"""

from __future__ import annotations

import math

import numpy as np

from learned_lr.settings import RewardConfig


def block_reward(train: np.ndarray, val: np.ndarray, previous_train: float, config: RewardConfig) -> float:
    """Reward of one block from its normalized train and val losses; -penalty if any is non-finite."""
    train = np.asarray(train, dtype=np.float64)
    val = np.asarray(val, dtype=np.float64)
    if train.size == 0:
        return 0.0
    if not (np.isfinite(train).all() and np.isfinite(val).all()):
        return -config.divergence_penalty
    previous = np.concatenate([[previous_train if math.isfinite(previous_train) else train[0]], train[:-1]])
    increases = np.maximum(0.0, train - previous)
    per_step = config.stability_weight * increases + config.train_loss_weight * train + config.val_loss_weight * val
    return float(-per_step.mean())


def subramanian_reward(val: np.ndarray, best_val: float, remaining_fraction: float, config: RewardConfig) -> tuple[float, float]:
    """Subramanian et al. (2023): g * (best val loss so far - val loss) + l * (time left).

    Per decision, the val loss is the block's mean normalized validation loss; returns
    (reward, updated best). Non-finite losses give -penalty, as for the proposal's reward.
    """
    val = np.asarray(val, dtype=np.float64)
    if val.size == 0:
        return 0.0, best_val
    if not np.isfinite(val).all():
        return -config.divergence_penalty, best_val
    current = float(val.mean())
    best = current if not np.isfinite(best_val) else best_val
    reward = config.subramanian_gain * (best - current) + config.subramanian_time_weight * remaining_fraction
    return float(reward), min(best, current)


def final_reward(val: np.ndarray, is_last_block: bool, config: RewardConfig) -> float:
    """A reward only at the run's end: -log(the last block's mean normalized validation loss), 0 before.

    This is the quantity the benchmark scores (the final loss, on a log scale so that every family
    weighs the same); with ``discount=1`` each decision's return is the run's outcome. Non-finite
    losses give -penalty, as for the other rewards.

    >>> round(final_reward(np.array([0.5, 0.5]), True, RewardConfig(kind="final")), 4), final_reward(np.array([0.5]), False, RewardConfig(kind="final"))
    (0.6931, 0.0)
    """
    val = np.asarray(val, dtype=np.float64)
    if val.size and not np.isfinite(val).all():
        return -config.divergence_penalty
    if not is_last_block or val.size == 0:
        return 0.0
    return float(-math.log(max(float(val.mean()), 1e-12)))

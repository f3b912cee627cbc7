"""Validation runs of the training variants: how PPO's snapshots are scored and chosen, never on a held-out family.

``policy_runs`` and ``tuned_expert_run`` are also the runs of ``learned-lr validate`` (``experiments.validate``).

A PPO run across the distribution (``PPOConfig.variants``) cannot be judged by its per-iteration
return: each iteration runs other variants, whose returns differ in scale. Instead, every
``validate_every`` iterations the deterministic policy runs a fixed set of validation runs:
every other variant of ``variants.json`` (family-major order, so each training family keeps
half of its variants) at its oracle's tuned LR x ``VALIDATION_MULTIPLIERS``, on validation seeds
(``tasks.seeds``: no stage trains there). A run's score is the log of its mean validation loss
over its last 10% of steps (the oracle sweep's measure, ``distribution.FINAL_VAL_FRACTION``); a
run that diverged scores the log of its first validation loss (no progress at all). The same
runs at every snapshot make the scores paired: a snapshot's mean difference to the start says
whether PPO has improved on it on the training families.

Example:
    >>> variants = load_variants("runs/general/variants.json")          # doctest: +SKIP
    >>> scores = validation_scores(actor, validation_variants(variants))
    >>> scores.shape                                                        # 3 multipliers per variant
    (30,)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from learned_lr.settings import ControlConfig, RewardConfig
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.groups import make_run_group
from learned_lr.tasks.seeds import VALIDATION_SEED_START
from learned_lr.training.distribution import FINAL_VAL_FRACTION
from learned_lr.training.experts import expert_schedule
from learned_lr.training.rollout import PolicyController, rollout, rollout_exact_schedule

VALIDATION_MULTIPLIERS = (0.1, 1.0, 10.0)


def validation_variants(variants: list[dict]) -> list[dict]:
    """Every other variant (family-major order): half of each training family's variants."""
    return variants[::2]


def run_score(val_loss: np.ndarray, steps_run: int, total_steps: int, diverged: bool) -> float:
    """log of the mean validation loss over the last 10% of the run; log of the first one if it diverged.

    >>> round(run_score(np.array([2.0, 1.0, 0.5, 0.5]), 4, 4, False), 4)
    -0.6931
    >>> round(run_score(np.array([2.0, np.nan]), 2, 4, True), 4)
    0.6931
    """
    tail = max(1, int(FINAL_VAL_FRACTION * total_steps))
    last = val_loss[max(0, total_steps - tail) : total_steps]
    if diverged or steps_run < total_steps or not np.isfinite(last).all():
        return float(np.log(val_loss[0]))
    return float(np.log(np.mean(last)))


def policy_runs(actor: torch.nn.Module, variant: dict, seed: int, multipliers: Sequence[float]) -> list[dict]:
    """The deterministic actor's runs of one variant at its tuned LR x each multiplier, all on ``seed`` (paired).

    Each run gives ``score`` (``run_score``), ``start`` (log of its first validation loss), ``diverged`` and ``mean_lr``.
    """
    task, steps = TaskConfig(**variant["task"]), int(variant["steps"])
    group = make_run_group(task, [seed] * len(multipliers), total_steps=steps)
    base_lrs = [float(variant["oracle_lr"]) * m for m in multipliers]
    episodes = rollout(group, PolicyController(actor, deterministic=True), steps, base_lrs, actor.control_config, RewardConfig(),
                       evaluate_test=False)
    return [_record(e, steps) for e in episodes]


def tuned_expert_run(variant: dict, seed: int) -> dict:
    """The variant's oracle (its sweep's best shape at its best LR), run exactly on ``seed``: what a tuned user gets."""
    task, steps = TaskConfig(**variant["task"]), int(variant["steps"])
    group = make_run_group(task, [seed], total_steps=steps)
    episode = rollout_exact_schedule(group, expert_schedule(variant["oracle_shape"]), steps, [float(variant["oracle_lr"])], ControlConfig(),
                                     evaluate_test=False)[0]
    return _record(episode, steps)


def _record(episode, steps: int) -> dict:
    """A run's score, start and divergence, and ``mean_lr``: the mean LR over the steps it ran (its LR budget, which
    ``experiments.validate`` sets against the tuned expert's to say whether a policy ran too hot or too cold)."""
    history = episode.history
    return {"score": run_score(history.val_loss, history.steps, steps, episode.diverged), "start": float(np.log(history.val_loss[0])),
            "diverged": bool(episode.diverged), "mean_lr": float(np.mean(history.lrs[: history.steps]))}


def validation_scores(actor: torch.nn.Module, variants: list[dict]) -> np.ndarray:
    """One score per validation run (``len(variants) * len(VALIDATION_MULTIPLIERS)``, variant-major); lower is better.

    Not under ``torch.no_grad``: the trainees need their gradients (the controller runs the actor without them).
    """
    was_training = actor.training
    actor.eval()
    scores = []
    for index, variant in enumerate(variants):  # same seed at every multiplier: paired
        scores += [run["score"] for run in policy_runs(actor, variant, VALIDATION_SEED_START + index, VALIDATION_MULTIPLIERS)]
    actor.train(was_training)
    return np.asarray(scores, dtype=np.float64)

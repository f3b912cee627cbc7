"""Which trainee runs a PPO iteration rolls out: the task, run length, base LRs and seeds, from (seed, iteration).

On MNIST-MLP (no ``--variants``): a width, a run length and base LRs drawn from the config's
ranges. With a ``general-train`` ``variants.json``: one variant (or ``variants_per_iteration``
distinct ones sharing the runs) at its oracle's tuned LR x log-uniform multipliers, for its run
length x ``run_length_scale``. A variant of a held-out family is refused when the file is read.

Example:
    >>> [name for name, *_ in iteration_chunks(PPOConfig(variants="runs/g/variants.json", variants_per_iteration=2), 0,
    ...                                       load_variants("runs/g/variants.json"))]      # doctest: +SKIP
    ['digits-1-adam-h64-b32-t410', 'mnist1d-3-sgd-w16-b64-t170']
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from learned_lr.checkpoint import CheckpointError
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.seeds import PPO_SEED_SPAN, PPO_SEED_START
from learned_lr.training.config import PPOConfig, log_uniform

# PPO trainee seeds live in [50000, 90000): above BC demonstrations and DAgger, below validation and evaluation seeds.


def iteration_setting(config: PPOConfig, iteration: int, variants: list[dict] | None = None) -> tuple[TaskConfig, int, np.ndarray, list[int]]:
    """Trainee, run length, base LRs and trainee seeds of one iteration, all from (seed, iteration).

    With ``variants`` (``load_variants``), the iteration runs one of them, drawn uniformly, at
    base LRs = its tuned LR x log-uniform multipliers; otherwise ``config.task`` with a width
    from ``hidden_sizes``, a length from ``total_steps`` and base LRs from the peak-LR range.
    """
    rng = np.random.default_rng([config.seed, iteration])
    first = PPO_SEED_START + (config.seed * 997 + iteration * config.runs_per_iteration) % PPO_SEED_SPAN
    seeds = list(range(first, first + config.runs_per_iteration))
    if variants:
        variant = variants[int(rng.integers(len(variants)))]
        multipliers = log_uniform(rng, config.min_multiplier, config.max_multiplier, config.runs_per_iteration)
        return TaskConfig(**variant["task"]), int(variant["steps"]), float(variant["oracle_lr"]) * multipliers, seeds
    total_steps = int(rng.choice(config.total_steps_list))
    base_lrs = log_uniform(rng, config.min_peak_lr, config.max_peak_lr, config.runs_per_iteration)
    widths = config.hidden_size_list
    # Drawn only when there is a choice, so a single width leaves the other draws as they were.
    hidden = widths[0] if len(widths) == 1 else int(rng.choice(widths))
    return dataclasses.replace(config.task, hidden=hidden), total_steps, base_lrs, seeds


def iteration_chunks(config: PPOConfig, iteration: int, variants: list[dict] | None = None) -> list[tuple[str, TaskConfig, int, np.ndarray, list[int]]]:
    """The iteration's runs as (variant name, trainee, run length, base LRs, seeds) per variant.

    One chunk (``iteration_setting``, as before) unless ``variants_per_iteration`` > 1: then that
    many distinct variants, drawn from (seed, iteration), share the iteration's runs and seeds evenly.
    """
    if not variants or config.variants_per_iteration == 1:
        task, steps, lrs, seeds = iteration_setting(config, iteration, variants)
        return [(_variant_name(task, steps, variants), task, _scaled_length(steps, config), lrs, seeds)]
    rng = np.random.default_rng([config.seed, iteration, config.variants_per_iteration])
    chosen = rng.choice(len(variants), size=min(config.variants_per_iteration, len(variants)), replace=False)
    multipliers = log_uniform(rng, config.min_multiplier, config.max_multiplier, config.runs_per_iteration)
    first = PPO_SEED_START + (config.seed * 997 + iteration * config.runs_per_iteration) % PPO_SEED_SPAN
    bounds = np.linspace(0, config.runs_per_iteration, len(chosen) + 1).round().astype(int)
    chunks = []
    for index, a, b in zip(chosen, bounds[:-1], bounds[1:]):
        variant = variants[int(index)]
        chunks.append((variant["name"], TaskConfig(**variant["task"]), _scaled_length(int(variant["steps"]), config),
                       float(variant["oracle_lr"]) * multipliers[a:b],
                       list(range(first + a, first + b))))
    return chunks


def _scaled_length(steps: int, config: PPOConfig) -> int:
    """A rollout's run length: the variant's x ``run_length_scale`` (the "longer runs per episode" lever)."""
    return max(2, int(round(steps * config.run_length_scale)))


def _variant_name(task: TaskConfig, steps: int, variants: list[dict] | None) -> str:
    if not variants:
        return f"{task.task}-t{steps}"
    return next(v["name"] for v in variants if TaskConfig(**v["task"]) == task and int(v["steps"]) == steps)


def load_variants(path: str | Path) -> list[dict]:
    """The variants of a ``general-train`` ``variants.json``; a variant of a held-out family is refused."""
    from learned_lr.training.distribution import HELD_OUT_FAMILIES

    try:
        variants = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable variants file ({exc})") from None
    if not isinstance(variants, list) or not variants:
        raise CheckpointError(f"{path} holds no variants (expected general-train's variants.json: a list)")
    for variant in variants:
        missing = {"name", "task", "steps", "oracle_lr"} - set(variant if isinstance(variant, dict) else ())
        if missing:
            raise CheckpointError(f"{path}: a variant lacks {sorted(missing)}")
        if variant["task"].get("task") in HELD_OUT_FAMILIES:
            raise CheckpointError(f"{path}: variant {variant['name']} is of held-out family {variant['task']['task']}; PPO must not train on it")
    return variants

"""The general policy's task distribution: the declared train / held-out split, randomized variants, their tuned LRs.

**The split** (declared here, before any general policy was trained, and in the README):
the policy trains only on ``TRAINING_FAMILIES``; ``HELD_OUT_FAMILIES`` are never run by any
training stage, sweep or checkpoint choice, so the benchmark's numbers on them measure
generalization to architectures it has never seen (residual networks with batch norm, 2-D and 1-D, a
character-level Transformer, LoRA fine-tuning of a pretrained LLM).

**Variants.** ``sample_variants`` draws, per training family, trainees of random width, batch
size, optimizer (SGD with momentum, Adam, AdamW; or each in turn per family, ``stratify_optimizers``)
and run length (log-uniform), and if asked, initial-weight scale, training-data fraction, batch norm and, for the MLP
families (``tasks.config.MLP_TASKS``; the CNNs keep their fixed layers), the number of hidden layers (or keeps each
variant and adds a copy with batch norm, ``batch_norm_copies``, or with one of the others changed, ``structure_copies``). Each variant's
tuned LR comes from ``tune_variant``: the oracle's expert shapes x the optimizer's LR grid
(``tasks.config.LR_SWEEP_GRIDS``, extended at an edge), one run each on the variant's sweep
seed, scored by the mean validation loss over the last 10% of steps (never a test split). The
best (shape, LR) is the oracle that labels the variant's demonstrations and DAgger states,
whatever base LR a run is given. Results are cached per variant, keyed on the full setting.

Seeds (``tasks.seeds``): a variant's runs use the demonstration range; variant ``ordinal`` (its
position within its family, < 10) sweeps on seed ``ordinal * 1000 + 900`` and collects its
demonstrations from ``ordinal * 1000`` (``collect``'s ``--seed``).

Example:
    >>> variants = sample_variants(per_family=1, min_steps=200, max_steps=400, seed=0)
    >>> [v.task.task for v in variants] == list(TRAINING_FAMILIES)
    True
    >>> sorted(set(TRAINING_FAMILIES) & set(HELD_OUT_FAMILIES))
    []
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from learned_lr.files import saved_or_computed
from learned_lr.settings import ControlConfig
from learned_lr.tasks.config import MLP_TASKS, ZERO_HEAD_TASKS, TaskConfig, lr_grid_neighbor, sweep_grid

TRAINING_FAMILIES = ("mnist-mlp", "mnist-cnn", "mnist1d", "digits", "diabetes")
# mnist1d-resnet (a 1-D ResNet with batch norm on MNIST-1D) was added on 2026-12-04 (ninth session), before any run of it:
# mnist-resnet18 had by then informed choices about batch-norm recipes (docs/results.md section 7), so a
# batch-norm model that no choice has seen is kept for judging them.
HELD_OUT_FAMILIES = ("mnist-resnet18", "char-lm", "llm-lora", "mnist1d-resnet")

# What a variant draws, per family: the size field of TaskConfig and its choices (CPU-sized).
VARIANT_SIZES = {
    "mnist-mlp": ("hidden", (32, 64, 128, 256)),
    "mnist-cnn": ("width", (4, 8)),
    "mnist1d": ("width", (16, 32, 64)),
    "digits": ("hidden", (32, 64, 128, 256)),
    "diabetes": ("hidden", (32, 64, 128, 256)),
}
VARIANT_BATCH_SIZES = (16, 32, 64, 128)
VARIANT_OPTIMIZERS = ("sgd", "adam", "adamw")
ADAMW_WEIGHT_DECAY = 0.01
# diabetes has 66 validation rows: its validation batch is capped there.
MAX_VAL_BATCH = {"diabetes": 64}
# The shapes the oracle may run (polynomial was never the best tuned expert on the benchmark's families).
ORACLE_SHAPES = ("linear-warmup", "cosine")
SWEEP_EXTENSIONS = 2
MAX_SWEEP_SEEDS = 8  # a sweep's trainee seeds stay inside its ordinal's block 900-999 (tasks.seeds)
FINAL_VAL_FRACTION = 0.1
# structure_copies: the field each kind of copy changes and the values it draws from (the unusual ends of the
# validation sets' draws, `learned-lr validate`: depths 1-3, initial scales 0.5-2, data fractions 0.1-1).
STRUCTURE_COPIES = {"mlp_layers": (2, 3), "init_scale": (0.5, 2.0), "train_fraction": (0.1, 0.3)}
# Every kind of copy by name (``copy_kinds``): the field it changes, the values it draws from and the name suffix. The
# first three are STRUCTURE_COPIES (the default); "deep" and "zero-head" are the models the default was weakest on in
# the twenty-third session's validation draws (`validate --depths 6,8,12,16`, `validate --zero-head`).
COPY_KINDS = {"depth": ("mlp_layers", STRUCTURE_COPIES["mlp_layers"], "-d"), "init-scale": ("init_scale", STRUCTURE_COPIES["init_scale"], "-s"),
              "data": ("train_fraction", STRUCTURE_COPIES["train_fraction"], "-f"), "deep": ("mlp_layers", (6, 8, 12, 16), "-d"),
              "zero-head": ("zero_head", (True,), "-z")}
DEFAULT_COPY_KINDS = ("depth", "init-scale", "data")
MAX_VARIANTS_PER_FAMILY = 9  # seed blocks of 1,000 per variant inside the demonstration range


@dataclass(frozen=True)
class Variant:
    """One trainee of the distribution: its family's task at drawn sizes, and its run length."""

    name: str
    ordinal: int  # position within its family: sets its seeds
    task: TaskConfig
    steps: int

    @property
    def sweep_seed(self) -> int:
        return self.ordinal * 1000 + 900

    def sweep_seed_list(self, count: int) -> list[int]:
        """The trainee seeds of a ``count``-seed sweep: ``sweep_seed`` and the ones after it (inside the demonstration
        range's block 900-999 of this ordinal, which no demonstration uses; ``tasks.seeds``)."""
        return [self.sweep_seed + k for k in range(count)]

    @property
    def demo_seed(self) -> int:
        """``CollectConfig.seed`` of its demonstrations (runs from ``demo_seed * 1000``)."""
        return self.ordinal


def sample_variants(per_family: int, min_steps: int, max_steps: int, seed: int, init_scales: Sequence[float] = (),
                    train_fractions: Sequence[float] = (), stratify_optimizers: bool = False, depths: Sequence[int] = (),
                    batch_norm_fraction: float = 0.0, batch_norm_copies: bool = False, structure_copies: bool = False,
                    copy_kinds: Sequence[str] = DEFAULT_COPY_KINDS) -> list[Variant]:
    """``per_family`` random variants of every training family (family-major order), reproducible from ``seed``.

    ``init_scales`` / ``train_fractions``: if given, each variant also draws its initial-weight scale and
    the fraction of its training split it trains on from these, with a generator of its own, so the
    draws without them (sizes, optimizers, batch sizes, run lengths) stay what they were.
    ``depths``: likewise, each MLP-family variant draws its number of hidden layers from these
    (a generator of their own again; the other families keep their fixed depth).
    ``batch_norm_fraction``: each variant has batch norm after its hidden layers or convolutions with this
    probability (``TaskConfig.batch_norm``; a generator of its own, so the other draws stay the same).
    ``batch_norm_copies``: every variant drawn without batch norm is kept and also added again with it
    (same sizes, seeds and run length, name suffix ``-bn``): batch-norm models are added to the
    distribution instead of replacing some of its plain ones.
    ``structure_copies``: every variant is kept and also added again with one change of structure
    (``STRUCTURE_COPIES``): more hidden layers (MLP families only), another initial-weight scale or a
    fraction of its training data, each family's variants taking the kinds in turn in an order drawn
    per family, the value drawn from the kind's choices (a generator of its own; same sizes, seeds and
    run length, the name suffixed as the draws above suffix it). The unusual models are added beside
    the ordinary ones instead of replacing most of them, as drawing all three for every variant does.
    ``copy_kinds``: the kinds of copy (``COPY_KINDS`` names) the variants take in turn instead of the
    default three (a kind that changes the depth only in the MLP families; a family that no kind
    applies to gets no copies).
    ``stratify_optimizers``: a family's variants take the optimizers in turn, in an order drawn per
    family (so 3 or more variants include each one), in place of independent draws (which leave a
    family without SGD, say, in (2/3)^4 of the draws of 4); the other draws are unchanged.
    """
    if not 1 <= per_family <= MAX_VARIANTS_PER_FAMILY:
        raise ValueError(f"per_family must be in 1..{MAX_VARIANTS_PER_FAMILY}, got {per_family}")
    if not 0 <= batch_norm_fraction <= 1:
        raise ValueError(f"batch_norm_fraction must be in [0, 1], got {batch_norm_fraction}")
    if structure_copies and (len(init_scales) or len(train_fractions) or len(depths)):
        raise ValueError("structure_copies adds copies of variants at init scale 1, all data and one hidden layer; "
                         "it cannot be combined with init_scales, train_fractions or depths")
    if not 1 < min_steps <= max_steps:
        raise ValueError(f"need 1 < min_steps <= max_steps, got {min_steps}, {max_steps}")
    unknown = sorted(set(copy_kinds) - set(COPY_KINDS))
    if unknown or not copy_kinds or len(set(copy_kinds)) < len(copy_kinds):
        raise ValueError(f"copy_kinds must be distinct names among {', '.join(COPY_KINDS)}, got {', '.join(copy_kinds) or 'none'}")
    rng, extra_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    order_rng, depth_rng = np.random.default_rng([seed, 2]), np.random.default_rng([seed, 3])
    norm_rng, copy_rng = np.random.default_rng([seed, 4]), np.random.default_rng([seed, 5])
    copy_order = {family: [str(kind) for kind in copy_rng.permutation(_copy_kinds(family, copy_kinds))] for family in TRAINING_FAMILIES}
    optimizer_order = {family: [str(o) for o in order_rng.permutation(VARIANT_OPTIMIZERS)] for family in TRAINING_FAMILIES}
    variants = []
    for ordinal in range(per_family):
        for family in TRAINING_FAMILIES:
            field, sizes = VARIANT_SIZES[family]
            size = int(rng.choice(sizes))
            optimizer = str(rng.choice(VARIANT_OPTIMIZERS))  # drawn even when stratified, so the later draws stay the same
            if stratify_optimizers:
                optimizer = optimizer_order[family][ordinal % len(VARIANT_OPTIMIZERS)]
            batch = int(rng.choice(VARIANT_BATCH_SIZES[:3] if family == "diabetes" else VARIANT_BATCH_SIZES))
            steps = int(round(math.exp(rng.uniform(math.log(min_steps), math.log(max_steps))) / 10) * 10)
            steps = min(max(steps, min_steps), max_steps)
            scale = float(extra_rng.choice(init_scales)) if len(init_scales) else 1.0
            fraction = float(extra_rng.choice(train_fractions)) if len(train_fractions) else 1.0
            depth = int(depth_rng.choice(depths)) if len(depths) and family in MLP_TASKS else 1
            batch_norm = bool(norm_rng.uniform() < batch_norm_fraction)  # never at 0: uniform() is in [0, 1)
            task = TaskConfig(task=family, optimizer=optimizer, batch_size=batch, val_batch_size=min(batch, MAX_VAL_BATCH.get(family, batch)),
                              weight_decay=ADAMW_WEIGHT_DECAY if optimizer == "adamw" else 0.0, init_scale=scale, train_fraction=fraction,
                              mlp_layers=depth, batch_norm=batch_norm, **{field: size})
            name = f"{family}-{ordinal}-{optimizer}-{field[0]}{size}-b{batch}-t{steps}"
            name += (f"-s{scale:g}" if len(init_scales) else "") + (f"-f{fraction:g}" if len(train_fractions) else "")
            name += f"-d{depth}" if len(depths) and family in MLP_TASKS else ""
            name += "-bn" if batch_norm else ""
            variants.append(Variant(name, ordinal, task, steps))
            if structure_copies and copy_order[family]:  # a family no kind applies to ("deep" alone on a CNN) keeps its plain variants
                variants.append(_structure_copy(variants[-1], copy_order[family][ordinal % len(copy_order[family])], copy_rng))
            if batch_norm_copies and not batch_norm:
                variants.append(Variant(name + "-bn", ordinal, dataclasses.replace(task, batch_norm=True), steps))
    return sorted(variants, key=lambda v: (TRAINING_FAMILIES.index(v.task.task), v.ordinal, v.task.batch_norm))


def _copy_kinds(family: str, kinds: Sequence[str]) -> tuple[str, ...]:
    """The kinds of ``structure_copies`` a family's variants take in turn (depth only where the family's depth varies,
    a zero head only where the family has one)."""
    field = {kind: COPY_KINDS[kind][0] for kind in kinds}
    return tuple(kind for kind in kinds if (field[kind] != "mlp_layers" or family in MLP_TASKS)
                 and (field[kind] != "zero_head" or family in ZERO_HEAD_TASKS))


def _structure_copy(variant: Variant, kind: str, rng: np.random.Generator) -> Variant:
    """``variant`` with the ``TaskConfig`` field of its ``kind`` of copy (``COPY_KINDS``) set to a value drawn from the kind's."""
    field, values, suffix = COPY_KINDS[kind]
    value = values[int(rng.integers(len(values)))]
    name = variant.name + suffix + ("" if isinstance(value, bool) else f"{value:g}")
    return Variant(name, variant.ordinal, dataclasses.replace(variant.task, **{field: value}), variant.steps)


def _final_val_losses(variant: Variant, shape: str, lrs: list[float], seeds: Sequence[int] = ()) -> list[float]:
    """Mean validation loss over the last 10% of steps of one run per LR and seed, averaged over ``seeds`` (default:
    the variant's sweep seed alone); inf if any of an LR's runs diverged. The runs of every seed train as one group."""
    from learned_lr.tasks.groups import make_run_group
    from learned_lr.training.experts import expert_schedule
    from learned_lr.training.rollout import rollout_exact_schedule

    seeds = list(seeds) or [variant.sweep_seed]
    group = make_run_group(variant.task, [seed for seed in seeds for _ in lrs], total_steps=variant.steps)
    episodes = rollout_exact_schedule(group, expert_schedule(shape), variant.steps, [lr for _ in seeds for lr in lrs], ControlConfig(),
                                      evaluate_test=False)
    tail = max(1, int(FINAL_VAL_FRACTION * variant.steps))
    scores = []
    for episode in episodes:
        value = float(np.mean(episode.history.val_loss[variant.steps - tail :])) if not episode.diverged else math.inf
        scores.append(value if math.isfinite(value) else math.inf)
    per_seed = np.array(scores).reshape(len(seeds), len(lrs))
    return [float(per_seed[:, i].mean()) if np.isfinite(per_seed[:, i]).all() else math.inf for i in range(len(lrs))]


def tune_variant(variant: Variant, work: str | Path, grid_points: int = 5, sweep_seeds: int = 1) -> dict:
    """The oracle of ``variant``: the best (shape, LR) of its sweep, cached in ``work/<variant name>.json``
    (``work/<variant name>-seeds<N>.json`` for a sweep over N seeds).

    Returns ``{"shape", "lr", "score", "grid": {shape: {lr: score}}}``; a score is inf (saved as
    None) for a run that diverged. ``sweep_seeds`` > 1 scores each (shape, LR) by its mean over that many
    trainee seeds (``Variant.sweep_seed_list``; inf if any run diverged): on trainable deep MLPs one seed's best
    LR is another seed's best about half the time (``benchmarks/tuned_lr_noise.py``, docs/results.md section 7).
    One seed is the sweep every earlier result was tuned by, with the same cache key.
    """
    if not (isinstance(sweep_seeds, int) and 1 <= sweep_seeds <= MAX_SWEEP_SEEDS):
        raise ValueError(f"sweep_seeds must be an integer in 1..{MAX_SWEEP_SEEDS}, got {sweep_seeds!r}")
    grid = list(sweep_grid(variant.task.optimizer, grid_points))
    seeds = variant.sweep_seed_list(sweep_seeds)
    setting = {"task": variant.task.setting(), "steps": variant.steps, "seed": variant.sweep_seed, "grid": grid,
               "shapes": list(ORACLE_SHAPES), "extensions": SWEEP_EXTENSIONS, "final_val_fraction": FINAL_VAL_FRACTION,
               **({"seeds": seeds} if sweep_seeds > 1 else {})}  # (only then: one-seed sweeps keep their cache keys)

    def sweep() -> dict:
        table = {}
        for shape in ORACLE_SHAPES:
            scores = dict(zip(grid, _final_val_losses(variant, shape, grid, seeds)))
            for _ in range(SWEEP_EXTENSIONS):
                best = min(scores, key=scores.get)
                if best not in (min(scores), max(scores)) or len(scores) == 1 or not math.isfinite(scores[best]):
                    break
                lr = lr_grid_neighbor(best, up=best == max(scores))
                scores[lr] = _final_val_losses(variant, shape, [lr], seeds)[0]
            table[shape] = {f"{lr:g}": scores[lr] for lr in sorted(scores)}
        shape, lr = min(((s, lr) for s in table for lr in table[s]), key=lambda key: table[key[0]][key[1]])
        return {"shape": shape, "lr": float(lr), "score": table[shape][lr], "grid": table}

    file = f"{variant.name}.json" if sweep_seeds == 1 else f"{variant.name}-seeds{sweep_seeds}.json"  # both kept side by side
    result = saved_or_computed(Path(work) / file, setting, sweep)
    if result["score"] is None:
        raise RuntimeError(f"every LR of the sweep diverged on variant {variant.name}; its oracle is undefined")
    return result

"""The benchmark's suites (each task family's trainee, run length and LR grid, per budget) and its command's config.

``smoke`` runs every family x every contender for a few steps (the CI test); ``small`` fits in
about an hour on 2 CPU cores (small models, short runs, 3 seeds), and ``llm-lora`` (SmolLM2-135M
LoRA, 2 seeds; run only when named, ``DEFAULT_FAMILIES``) about another hour; ``full`` is the real thing
(the families at their usual sizes, 5 seeds; ResNet-18 at width 64 and ``llm-lora`` want a GPU).

Each family trains with one optimizer of the suite (SGD with momentum, Adam or AdamW, so the
suite covers all three); its tuned LR is not written here: ``benchmark.tuned_lr`` sweeps
``SWEEP_GRIDS[optimizer]`` on validation seeds and caches the result.

Example:
    >>> suite = SUITES["small"]
    >>> suite.families["char-lm"].task.optimizer, suite.multipliers
    ('adamw', (0.1, 0.3, 1.0, 3.0, 10.0))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from learned_lr.settings import arg, check_choice, labeled_paths, parse_list, require
from learned_lr.tasks.config import LR_SWEEP_GRIDS, TaskConfig, sweep_grid

# The schedule each LR-free optimizer runs under, as its package's README recommends (tasks.optimizers).
ANCHOR_SCHEDULES = {"prodigy": "cosine", "dadapt-adam": "cosine", "dog": "constant", "mechanic-sgd": "cosine",
                    "mechanic-adamw": "cosine", "sgd-schedulefree": "constant", "adamw-schedulefree": "constant"}
SCHEDULE_CONTENDERS = ("linear-warmup", "cosine", "polynomial", "constant")
BASELINE_CONTENDERS = ("plateau", "greedy")
ANCHOR_CONTENDERS = tuple(ANCHOR_SCHEDULES)
# Every contender by name; "bundled" is the policy LearnedLR ships. Learned checkpoints come as LABEL=PATH.
CONTENDER_NAMES = SCHEDULE_CONTENDERS + BASELINE_CONTENDERS + ANCHOR_CONTENDERS + ("bundled",)
FAMILY_NAMES = ("mnist-mlp", "mnist-cnn", "mnist-resnet18", "mnist1d", "char-lm", "digits", "diabetes", "llm-lora", "mnist1d-resnet")
# What `learned-lr benchmark` runs unless told: every family but llm-lora, which needs the llm extra
# and a 135M-parameter model per run, and mnist1d-resnet, the held-out family added on 2026-12-04 (ninth
# session), which runs when named so that the tables measured before it keep their meaning
# (``--families llm-lora,mnist1d-resnet`` or ``all`` adds them).
LATER_FAMILIES = ("llm-lora", "mnist1d-resnet")
DEFAULT_FAMILIES = tuple(f for f in FAMILY_NAMES if f not in LATER_FAMILIES)
DEFAULT_MULTIPLIERS = (0.1, 0.3, 1.0, 3.0, 10.0)
STRESS_MULTIPLIERS = (0.03, 30.0)

# The LRs the tuning sweep tries first, per optimizer (one table for every sweep, in tasks.config);
# a best LR at either end extends the grid by one more point, up to ``SWEEP_EXTENSIONS`` times.
SWEEP_GRIDS = LR_SWEEP_GRIDS
SWEEP_EXTENSIONS = 2


@dataclass(frozen=True)
class FamilySetup:
    """One family in a suite: its trainee (model size, batch, optimizer), run length, and seeds per
    cell where the suite's number is too many for it (None: the suite's)."""

    task: TaskConfig
    steps: int
    seeds: int | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    families: dict[str, FamilySetup]
    seeds: int
    sweep_seeds: int
    multipliers: tuple[float, ...] = DEFAULT_MULTIPLIERS
    sweep_grid_points: int = 5  # how many of each SWEEP_GRIDS entry (the middle ones) the suite tries

    def sweep_grid(self, optimizer: str) -> tuple[float, ...]:
        return sweep_grid(optimizer, self.sweep_grid_points)


def _family(task: str, steps: int, optimizer: str, seeds: int | None = None, **sizes) -> FamilySetup:
    return FamilySetup(TaskConfig(task=task, optimizer=optimizer, **sizes), steps, seeds)


SUITES: dict[str, Suite] = {
    "smoke": Suite("smoke", {
        "mnist-mlp": _family("mnist-mlp", 6, "sgd", hidden=16, batch_size=16, val_batch_size=16),
        "mnist-cnn": _family("mnist-cnn", 6, "sgd", width=2, batch_size=8, val_batch_size=8),
        "mnist-resnet18": _family("mnist-resnet18", 6, "sgd", width=2, batch_size=8, val_batch_size=8),
        "mnist1d": _family("mnist1d", 6, "adamw", width=4, batch_size=16, val_batch_size=16),
        "char-lm": _family("char-lm", 6, "adamw", width=8, lm_layers=1, lm_context=8, batch_size=4, val_batch_size=4),
        "digits": _family("digits", 6, "sgd", hidden=8, batch_size=16, val_batch_size=16),
        "diabetes": _family("diabetes", 6, "adam", hidden=8, batch_size=16, val_batch_size=16),
        "llm-lora": _family("llm-lora", 4, "adamw", lora_rank=2, lm_context=12, batch_size=1, val_batch_size=1, test_examples=4,
                            clip_grad_norm=1.0),
        "mnist1d-resnet": _family("mnist1d-resnet", 6, "sgd", width=4, batch_size=16, val_batch_size=16),
    }, seeds=1, sweep_seeds=1, multipliers=(1.0, 10.0), sweep_grid_points=2),
    "small": Suite("small", {
        "mnist-mlp": _family("mnist-mlp", 500, "sgd", hidden=128, batch_size=64, val_batch_size=64),
        "mnist-cnn": _family("mnist-cnn", 200, "sgd", width=4, batch_size=32, val_batch_size=32),
        "mnist-resnet18": _family("mnist-resnet18", 100, "sgd", width=4, batch_size=32, val_batch_size=32),
        "mnist1d": _family("mnist1d", 300, "adamw", width=32, batch_size=64, val_batch_size=64),
        "char-lm": _family("char-lm", 200, "adamw", width=32, lm_context=32, batch_size=16, val_batch_size=16),
        "digits": _family("digits", 500, "sgd", hidden=64, batch_size=32, val_batch_size=32),
        "diabetes": _family("diabetes", 500, "adam", hidden=64, batch_size=32, val_batch_size=32),
        # A LoRA step of the 135M model takes ~0.45 s on 2 CPU cores at one example (~1.1 s at four):
        # 48 steps of one example, 2 seeds, 64 test examples keep the family near an hour.
        "llm-lora": _family("llm-lora", 48, "adamw", seeds=2, lm_context=40, batch_size=1, val_batch_size=1, test_examples=64,
                            clip_grad_norm=1.0),
        "mnist1d-resnet": _family("mnist1d-resnet", 300, "sgd", width=16, batch_size=64, val_batch_size=64),
    }, seeds=3, sweep_seeds=2, sweep_grid_points=3),
    "full": Suite("full", {
        "mnist-mlp": _family("mnist-mlp", 2000, "sgd"),
        "mnist-cnn": _family("mnist-cnn", 2000, "sgd", width=32),
        "mnist-resnet18": _family("mnist-resnet18", 2000, "sgd", width=64, device="auto"),
        "mnist1d": _family("mnist1d", 3000, "adamw", width=64, batch_size=100, val_batch_size=100),
        "char-lm": _family("char-lm", 3000, "adamw", width=128, lm_context=128, batch_size=32, val_batch_size=32),
        "digits": _family("digits", 2000, "sgd", hidden=256, batch_size=64, val_batch_size=64),
        "diabetes": _family("diabetes", 2000, "adam", hidden=256, batch_size=32, val_batch_size=32),
        "llm-lora": _family("llm-lora", 300, "adamw", lm_context=64, batch_size=8, val_batch_size=8, clip_grad_norm=1.0, device="auto"),
        "mnist1d-resnet": _family("mnist1d-resnet", 3000, "sgd", width=64, batch_size=100, val_batch_size=100),
    }, seeds=5, sweep_seeds=3),
}


@dataclass(frozen=True)
class BenchmarkConfig:
    """`learned-lr benchmark`: every contender on every task family across LR multipliers; table, JSON, figure."""

    suite: str = arg("small", "smoke (a few steps: the CI test), small (about an hour on 2 CPU cores) or full", choices=tuple(SUITES))
    families: str = arg(",".join(DEFAULT_FAMILIES), "comma-separated task families, or all; llm-lora (SmolLM2-135M LoRA: "
                        "the llm extra, about an hour more at small on 2 CPU cores) and mnist1d-resnet (a held-out family added "
                        "after the README's tables) run only when named")
    contenders: str = arg(",".join(CONTENDER_NAMES), "comma-separated contenders (bundled = the packaged policy)")
    policies: str = arg("", "comma-separated LABEL=PATH learned policy checkpoints to add")
    multipliers: str = arg("", f"comma-separated LR multipliers (default: the suite's, {','.join(f'{m:g}' for m in DEFAULT_MULTIPLIERS)})")
    seeds: int = arg(0, "held-out seeds per cell (0: the suite's)")
    work: str = arg("runs/benchmark", "folder for the cached sweeps and cells (a rerun trains nothing that is finished)")
    out: str = arg("results/benchmark", "output folder for benchmark.md, benchmark.json and benchmark.png")
    workers: int = arg(1, "cells (and tuning runs) run at once, each in its own process with cores / workers threads; "
                       "several share a GPU (ResNet-18 on an H200: 5 ran ~1.4x one); on 2 CPU cores 2 gain nothing")

    def __post_init__(self) -> None:
        check_choice(self.suite, tuple(SUITES), "suite")
        require(self.workers >= 1, "workers", f"must be >= 1, got {self.workers}")
        require(bool(self.family_list), "families", "give at least one family")
        require(bool(self.contender_list) or bool(self.policy_list), "contenders", "give at least one contender or policy")
        require(self.seeds >= 0, "seeds", f"must be >= 0, got {self.seeds}")
        require(all(math.isfinite(m) and m > 0 for m in self.multiplier_list), "multipliers", f"every multiplier must be finite and > 0, got {self.multipliers}")
        require(not self.multipliers.strip() or 1.0 in self.multiplier_list, "multipliers", "must include 1 (the tuned point every score is relative to)")

    @property
    def family_list(self) -> list[str]:
        if self.families.strip() == "all":
            return list(FAMILY_NAMES)
        return parse_list(self.families, "families", str, FAMILY_NAMES) if self.families.strip() else []

    @property
    def contender_list(self) -> list[str]:
        return parse_list(self.contenders, "contenders", str, CONTENDER_NAMES) if self.contenders.strip() else []

    @property
    def policy_list(self) -> list[tuple[str, str]]:
        return labeled_paths(self.policies, "policies")

    @property
    def multiplier_list(self) -> list[float]:
        return sorted(parse_list(self.multipliers, "multipliers", float)) if self.multipliers.strip() else []

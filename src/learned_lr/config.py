"""Frozen config dataclasses, one per stage: the one home of every default.

The CLI (`learned_lr.cli`) builds its flags from these fields and their ``help`` metadata,
the library API takes them as arguments, and the tests construct them directly, so a
default lives in exactly one place. Each config validates itself in ``__post_init__`` and
raises ``ConfigError`` naming the offending field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

TaskName = Literal["mnist-mlp", "mnist-resnet18"]
OptimizerName = Literal["sgd", "adam", "adamw"]
ScheduleName = Literal["constant", "linear-warmup", "cosine", "polynomial"]

TASK_NAMES: tuple[str, ...] = TaskName.__args__  # type: ignore[attr-defined]
OPTIMIZER_NAMES: tuple[str, ...] = OptimizerName.__args__  # type: ignore[attr-defined]
SCHEDULE_NAMES: tuple[str, ...] = ScheduleName.__args__  # type: ignore[attr-defined]
EXPERT_NAMES: tuple[str, ...] = ("linear-warmup", "cosine", "polynomial")


class ConfigError(ValueError):
    """A config value is invalid. ``field`` names the offending field (its CLI flag)."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"--{field_name.replace('_', '-')}: {message}")
        self.field = field_name


def arg(default, help: str, **kwargs):  # noqa: A002 - mirrors argparse's name
    """A dataclass field with a one-line help text the CLI shows."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise ConfigError(field_name, message)


def _check_choice(value: str, choices: tuple[str, ...], field_name: str) -> None:
    _require(value in choices, field_name, f"unknown value {value!r}; choose from {', '.join(choices)}")


# Peak (base) LRs picked by `learned-lr sweep` (validation loss, cosine schedule, 3 seeds);
# see README "Choosing the peak LR". Keyed by (task, optimizer).
TUNED_PEAK_LR: dict[tuple[str, str], float] = {
    ("mnist-mlp", "sgd"): 0.1,
    ("mnist-mlp", "adam"): 1e-3,
    ("mnist-mlp", "adamw"): 1e-3,
    ("mnist-resnet18", "sgd"): 0.05,
    ("mnist-resnet18", "adam"): 1e-3,
    ("mnist-resnet18", "adamw"): 1e-3,
}


@dataclass(frozen=True)
class TaskConfig:
    """A trainee: dataset, model and optimizer. Knows nothing of schedules or RL."""

    task: str = arg("mnist-mlp", "trainee: mnist-mlp (784-H-10 MLP) or mnist-resnet18", choices=TASK_NAMES)
    hidden: int = arg(256, "hidden units of the MLP")
    width: int = arg(64, "ResNet-18 base width (64 is the real ResNet-18; 16 suits a CPU)")
    optimizer: str = arg("sgd", "optimizer: sgd (momentum), adam or adamw", choices=OPTIMIZER_NAMES)
    momentum: float = arg(0.9, "SGD momentum")
    weight_decay: float = arg(0.0, "weight decay")
    batch_size: int = arg(128, "training batch size")
    val_batch_size: int = arg(128, "size of the rotating validation batch evaluated every step")

    def __post_init__(self) -> None:
        _check_choice(self.task, TASK_NAMES, "task")
        _check_choice(self.optimizer, OPTIMIZER_NAMES, "optimizer")
        _require(self.hidden > 0, "hidden", f"must be > 0, got {self.hidden}")
        _require(self.width > 0, "width", f"must be > 0, got {self.width}")
        _require(0.0 <= self.momentum < 1.0, "momentum", f"must be in [0, 1), got {self.momentum}")
        _require(self.weight_decay >= 0.0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        _require(self.batch_size > 0, "batch_size", f"must be > 0, got {self.batch_size}")
        _require(self.val_batch_size > 0, "val_batch_size", f"must be > 0, got {self.val_batch_size}")

    @property
    def tuned_peak_lr(self) -> float:
        """The peak LR `learned-lr sweep` found for this task and optimizer."""
        return TUNED_PEAK_LR[(self.task, self.optimizer)]


@dataclass(frozen=True)
class ScheduleConfig:
    """Shape parameters of the expert schedules (all scaled by the peak LR)."""

    warmup_fraction: float = arg(0.1, "linear-warmup: fraction of the run spent warming up")
    warmup_start_factor: float = arg(0.01, "linear-warmup: LR at step 0 as a fraction of the peak")
    final_factor: float = arg(0.0, "linear-warmup/cosine: LR at the last step as a fraction of the peak")
    poly_power: float = arg(2.0, "polynomial: decay power")

    def __post_init__(self) -> None:
        _require(0.0 <= self.warmup_fraction < 1.0, "warmup_fraction", f"must be in [0, 1), got {self.warmup_fraction}")
        _require(0.0 < self.warmup_start_factor <= 1.0, "warmup_start_factor", f"must be in (0, 1], got {self.warmup_start_factor}")
        _require(0.0 <= self.final_factor <= 1.0, "final_factor", f"must be in [0, 1], got {self.final_factor}")
        _require(self.poly_power > 0.0, "poly_power", f"must be > 0, got {self.poly_power}")


@dataclass(frozen=True)
class TrainConfig:
    """`learned-lr train`: one trainee run under one schedule."""

    task: TaskConfig = field(default_factory=TaskConfig)
    schedule_shape: ScheduleConfig = field(default_factory=ScheduleConfig)
    schedule: str = arg("cosine", "LR schedule: constant, linear-warmup, cosine or polynomial", choices=SCHEDULE_NAMES)
    steps: int = arg(1000, "number of training steps")
    lr: float | None = arg(None, "peak (base) LR; default: the tuned peak LR of the task and optimizer")
    seed: int = arg(0, "random seed (init, data order, validation batches)")
    out: str = arg("runs/train", "output folder for metrics.csv, summary.json and curves.png")

    def __post_init__(self) -> None:
        _check_choice(self.schedule, SCHEDULE_NAMES, "schedule")
        _require(self.steps > 0, "steps", f"must be > 0, got {self.steps}")
        if self.lr is not None:
            _require(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be a finite number > 0, got {self.lr}")

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else self.task.tuned_peak_lr


@dataclass(frozen=True)
class SweepConfig:
    """`learned-lr sweep`: pick a peak LR for a task by final validation loss."""

    task: TaskConfig = field(default_factory=TaskConfig)
    schedule_shape: ScheduleConfig = field(default_factory=ScheduleConfig)
    schedule: str = arg("cosine", "schedule whose peak LR is swept", choices=SCHEDULE_NAMES)
    steps: int = arg(1000, "steps per run")
    lrs: str = arg("0.01,0.02,0.05,0.1,0.2,0.4", "comma-separated peak LRs to try")
    seeds: int = arg(2, "seeds per LR (0..seeds-1)")
    out: str = arg("runs/sweep", "output folder for sweep.json and sweep.png")

    def __post_init__(self) -> None:
        _check_choice(self.schedule, SCHEDULE_NAMES, "schedule")
        _require(self.steps > 0, "steps", f"must be > 0, got {self.steps}")
        _require(self.seeds > 0, "seeds", f"must be > 0, got {self.seeds}")
        try:
            values = self.lr_values
        except ValueError:
            raise ConfigError("lrs", f"expected comma-separated numbers, got {self.lrs!r}") from None
        _require(len(values) > 0, "lrs", "give at least one LR")
        _require(all(math.isfinite(v) and v > 0 for v in values), "lrs", f"every LR must be > 0, got {self.lrs!r}")

    @property
    def lr_values(self) -> list[float]:
        return [float(v) for v in self.lrs.split(",") if v.strip()]


@dataclass(frozen=True)
class CompareConfig:
    """`learned-lr compare-experts`: one trainee per expert schedule (and constant), one plot."""

    task: TaskConfig = field(default_factory=TaskConfig)
    schedule_shape: ScheduleConfig = field(default_factory=ScheduleConfig)
    steps: int = arg(1000, "steps per run")
    lr: float | None = arg(None, "peak (base) LR; default: the tuned peak LR of the task and optimizer")
    seed: int = arg(0, "random seed")
    out: str = arg("results/experts", "output folder")

    def __post_init__(self) -> None:
        _require(self.steps > 0, "steps", f"must be > 0, got {self.steps}")
        if self.lr is not None:
            _require(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be a finite number > 0, got {self.lr}")

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else self.task.tuned_peak_lr


def replace(config, **changes):
    """``dataclasses.replace`` that re-runs validation (it does: frozen dataclasses re-init)."""
    return dataclasses.replace(config, **changes)

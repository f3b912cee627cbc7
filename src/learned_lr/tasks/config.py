"""The trainee's config: dataset, model and optimizer, and the tuned peak LRs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from learned_lr.settings import arg, check_choice, require, resolve_device

TaskName = Literal["mnist-mlp", "mnist-resnet18"]


OptimizerName = Literal["sgd", "adam", "adamw"]


TASK_NAMES: tuple[str, ...] = TaskName.__args__  # type: ignore[attr-defined]


OPTIMIZER_NAMES: tuple[str, ...] = OptimizerName.__args__  # type: ignore[attr-defined]


# Default peak (base) LRs, keyed by (task, optimizer). The two SGD values were picked by
# `learned-lr sweep` (commands and numbers in the README); the Adam/AdamW values are common
# defaults not yet swept.
TUNED_PEAK_LR: dict[tuple[str, str], float] = {
    ("mnist-mlp", "sgd"): 0.1,
    ("mnist-mlp", "adam"): 1e-3,
    ("mnist-mlp", "adamw"): 1e-3,
    ("mnist-resnet18", "sgd"): 0.05,
    ("mnist-resnet18", "adam"): 1e-3,
    ("mnist-resnet18", "adamw"): 1e-3,
}


# MNIST's splits here: the 60,000 training images as 55,000 for training and 5,000 for validation, and the test set.
TRAIN_SIZE, VAL_SIZE, TEST_SIZE = 55_000, 5_000, 10_000


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
    device: str = arg("cpu", "where trainees train: cpu, cuda (fails clearly without a GPU), or auto (cuda when present)",
                      choices=("cpu", "cuda", "auto"))

    def __post_init__(self) -> None:
        check_choice(self.task, TASK_NAMES, "task")
        check_choice(self.device, ("cpu", "cuda", "auto"), "device")
        check_choice(self.optimizer, OPTIMIZER_NAMES, "optimizer")
        require(self.hidden > 0, "hidden", f"must be > 0, got {self.hidden}")
        require(self.width > 0, "width", f"must be > 0, got {self.width}")
        require(0.0 <= self.momentum < 1.0, "momentum", f"must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0.0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(0 < self.batch_size <= TRAIN_SIZE, "batch_size", f"must be in 1..{TRAIN_SIZE} (the training split), got {self.batch_size}")
        require(0 < self.val_batch_size <= VAL_SIZE, "val_batch_size", f"must be in 1..{VAL_SIZE} (the validation split), got {self.val_batch_size}")

    @property
    def torch_device(self) -> str:
        """The torch device the trainees use; ``ConfigError`` if cuda is asked for and absent."""
        return resolve_device(self.device)

    @property
    def tuned_peak_lr(self) -> float:
        """The peak LR `learned-lr sweep` found for this task and optimizer."""
        return TUNED_PEAK_LR[(self.task, self.optimizer)]

"""The trainee's config: dataset, model and optimizer, and the tuned peak LRs."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from learned_lr.settings import ConfigError, arg, check_choice, require, resolve_device

TaskName = Literal["mnist-mlp", "mnist-resnet18", "mnist-cnn", "mnist1d", "char-lm", "digits", "diabetes", "llm-lora", "mnist1d-resnet"]


# The optimizers a schedule (or the policy) drives, and the "no LR tuning" ones that come in
# with the anchors extra (tasks.optimizers says how each is built, from its package's README).
OptimizerName = Literal["sgd", "adam", "adamw", "prodigy", "dadapt-adam", "dog", "mechanic-sgd", "mechanic-adamw",
                        "sgd-schedulefree", "adamw-schedulefree"]


TASK_NAMES: tuple[str, ...] = TaskName.__args__  # type: ignore[attr-defined]


MNIST_TASKS = ("mnist-mlp", "mnist-resnet18", "mnist-cnn")
MLP_TASKS = ("mnist-mlp", "digits", "diabetes")


OPTIMIZER_NAMES: tuple[str, ...] = OptimizerName.__args__  # type: ignore[attr-defined]


SCHEDULED_OPTIMIZERS = ("sgd", "adam", "adamw")


# The LR-free optimizers' own default LR (their "tuned" point: the LR argument scales the step
# size they estimate). Schedule-Free is not LR-free: its LR is tuned like SGD's.
LR_FREE_DEFAULT_LR: dict[str, float] = {"prodigy": 1.0, "dadapt-adam": 1.0, "dog": 1.0, "mechanic-sgd": 1.0, "mechanic-adamw": 1.0}


# Default peak (base) LRs of the MNIST pipeline (demo, imitate, ppo), keyed by (task, optimizer).
# The two SGD values were picked by `learned-lr sweep` (commands and numbers in the README); the
# Adam/AdamW values are common defaults not yet swept. `learned-lr benchmark` does not use these:
# it sweeps every family's LR itself and caches the result.
TUNED_PEAK_LR: dict[tuple[str, str], float] = {
    ("mnist-mlp", "sgd"): 0.1,
    ("mnist-mlp", "adam"): 1e-3,
    ("mnist-mlp", "adamw"): 1e-3,
    ("mnist-resnet18", "sgd"): 0.05,
    ("mnist-resnet18", "adam"): 1e-3,
    ("mnist-resnet18", "adamw"): 1e-3,
}


# The LRs a tuning sweep tries first, per optimizer (the benchmark's family sweeps and the general
# policy's variant sweeps); a best LR at either end extends the grid along the 1-3-10 steps of
# ``lr_grid_neighbor``.
LR_SWEEP_GRIDS: dict[str, tuple[float, ...]] = {
    "sgd": (0.01, 0.03, 0.1, 0.3, 1.0),
    "adam": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
    "adamw": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
    "sgd-schedulefree": (0.03, 0.1, 0.3, 1.0, 3.0),
    "adamw-schedulefree": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
}


def sweep_grid(optimizer: str, points: int) -> tuple[float, ...]:
    """The middle ``points`` LRs of ``optimizer``'s grid: where a sweep of that many points starts."""
    grid = LR_SWEEP_GRIDS[optimizer]
    start = (len(grid) - points) // 2
    return grid[start : start + points]


def lr_grid_neighbor(lr: float, up: bool) -> float:
    """The next point of the 1-3-10 grid the sweeps use: 0.3 -> 1 (up) or 0.1 (down).

    Example:
        >>> lr_grid_neighbor(0.3, up=True), lr_grid_neighbor(0.3, up=False), lr_grid_neighbor(1e-3, up=False)
        (1.0, 0.1, 0.0003)
    """
    exponent = math.floor(math.log10(lr) + 1e-9)
    mantissa = lr / 10**exponent
    if up:
        return float(f"{(3 if mantissa < 2 else 10) * 10**exponent:.3g}")
    return float(f"{(0.3 if mantissa < 2 else 1) * 10**exponent:.3g}")


# TaskConfig fields added after results were cached, with their defaults (``TaskConfig.setting``).
LATER_FIELDS = {"init_scale": 1.0, "train_fraction": 1.0, "mlp_layers": 1, "batch_norm": False, "zero_head": False}

# The tasks whose model takes batch norm on request, and those whose model always has it.
BATCH_NORM_TASKS = MLP_TASKS + ("mnist-cnn", "mnist1d")
ALWAYS_BATCH_NORM_TASKS = ("mnist-resnet18", "mnist1d-resnet")
# The tasks whose output layer may start at zero (TaskConfig.zero_head): the same models, the training families'.
ZERO_HEAD_TASKS = BATCH_NORM_TASKS

# MNIST's splits here: the 60,000 training images as 55,000 for training and 5,000 for validation, and the test set.
TRAIN_SIZE, VAL_SIZE, TEST_SIZE = 55_000, 5_000, 10_000


@dataclass(frozen=True)
class TaskConfig:
    """A trainee: dataset, model and optimizer. Knows nothing of schedules or RL."""

    task: str = arg("mnist-mlp", "trainee: mnist-mlp (784-H-10 MLP), mnist-resnet18, mnist-cnn, mnist1d (1-D CNN), "
                    "char-lm (byte Transformer on Shakespeare), digits or diabetes (sklearn sets, MLPs), "
                    "llm-lora (SmolLM2-135M LoRA on chatterbot questions; the llm extra), mnist1d-resnet (a 1-D ResNet with batch norm)", choices=TASK_NAMES)
    hidden: int = arg(256, "hidden units of the MLPs (mnist-mlp, digits, diabetes)")
    width: int = arg(64, "ResNet-18 base width (64 is the real ResNet-18; 16 suits a CPU), CNN/1-D CNN channels (the 1-D ResNet's "
                     "first stage), char-lm model width")
    lm_layers: int = arg(2, "char-lm Transformer blocks")
    lm_context: int = arg(128, "char-lm context length in characters; llm-lora tokens per example at most")
    lora_rank: int = arg(8, "llm-lora adapter rank (on q_proj and v_proj, alpha = 2 x rank)")
    optimizer: str = arg("sgd", "optimizer: sgd (momentum), adam, adamw, or a no-tuning one from the anchors extra: "
                         "prodigy, dadapt-adam, dog, mechanic-sgd, mechanic-adamw, sgd-schedulefree, adamw-schedulefree",
                         choices=OPTIMIZER_NAMES)
    momentum: float = arg(0.9, "SGD momentum")
    weight_decay: float = arg(0.0, "weight decay")
    clip_grad_norm: float = arg(0.0, "clip the gradient's global norm to this before each step, as Hugging Face Trainer "
                               "does (1.0); 0: no clipping. Gradient norms are observed before clipping")
    batch_size: int = arg(128, "training batch size")
    val_batch_size: int = arg(128, "size of the rotating validation batch evaluated every step")
    test_examples: int = arg(0, "score the final model on the first this many test examples (0: the whole test split; "
                             "fewer make a cheaper, noisier smoke score)")
    device: str = arg("cpu", "where trainees train: cpu, cuda (fails clearly without a GPU), or auto (cuda when present)",
                      choices=("cpu", "cuda", "auto"))
    init_scale: float = arg(1.0, "multiply the model's initial weight matrices and kernels (parameters of 2+ dimensions) by this")
    train_fraction: float = arg(1.0, "train on this fraction of the training split (its first examples, at least one batch); "
                                "not for char-lm or llm-lora")
    mlp_layers: int = arg(1, "hidden layers of the MLPs (mnist-mlp, digits, diabetes), each of --hidden units")
    batch_norm: bool = arg(False, "batch norm after each hidden layer or convolution, before its ReLU (the MLPs, mnist-cnn, "
                           "mnist1d; the ResNets always have it)")
    zero_head: bool = arg(False, "the model's output layer (its last linear layer) starts at zero, weights and bias, as zero-"
                          "initialised heads, residual branches and LoRA's B matrices do; the first gradient of every layer before "
                          "it is then zero (the MLPs, mnist-cnn, mnist1d)")

    def __post_init__(self) -> None:
        check_choice(self.task, TASK_NAMES, "task")
        check_choice(self.device, ("cpu", "cuda", "auto"), "device")
        check_choice(self.optimizer, OPTIMIZER_NAMES, "optimizer")
        require(self.hidden > 0, "hidden", f"must be > 0, got {self.hidden}")
        require(self.width > 0, "width", f"must be > 0, got {self.width}")
        require(self.task != "char-lm" or self.width % 4 == 0, "width", f"char-lm needs a multiple of 4 (4 heads), got {self.width}")
        require(self.lm_layers > 0, "lm_layers", f"must be > 0, got {self.lm_layers}")
        require(0 < self.lm_context <= 4096, "lm_context", f"must be in 1..4096, got {self.lm_context}")
        require(self.task != "llm-lora" or self.lm_context >= 8, "lm_context", f"llm-lora needs >= 8 tokens per example, got {self.lm_context}")
        require(self.lora_rank >= 1, "lora_rank", f"must be >= 1, got {self.lora_rank}")
        require(math.isfinite(self.clip_grad_norm) and self.clip_grad_norm >= 0, "clip_grad_norm", f"must be >= 0, got {self.clip_grad_norm}")
        require(0.0 <= self.momentum < 1.0, "momentum", f"must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0.0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        # The MNIST splits' sizes are known here; other families check theirs when their data loads.
        train_size, val_size = (TRAIN_SIZE, VAL_SIZE) if self.task in MNIST_TASKS else (10**9, 10**9)
        require(0 < self.batch_size <= train_size, "batch_size", f"must be in 1..{train_size} (the training split), got {self.batch_size}")
        require(self.test_examples >= 0, "test_examples", f"must be >= 0 (0: the whole test split), got {self.test_examples}")
        require(0 < self.val_batch_size <= val_size, "val_batch_size", f"must be in 1..{val_size} (the validation split), got {self.val_batch_size}")
        require(math.isfinite(self.init_scale) and self.init_scale > 0, "init_scale", f"must be finite and > 0, got {self.init_scale}")
        require(1 <= self.mlp_layers <= 16, "mlp_layers", f"must be in 1..16, got {self.mlp_layers}")
        require(self.mlp_layers == 1 or self.task in MLP_TASKS, "mlp_layers",
                f"only the MLP tasks ({', '.join(MLP_TASKS)}) have a depth to set, not {self.task}")
        require(not self.batch_norm or self.task in BATCH_NORM_TASKS, "batch_norm",
                f"only {', '.join(BATCH_NORM_TASKS)} take batch norm on request, not {self.task}")
        require(not self.batch_norm or self.batch_size >= 2, "batch_size", f"batch norm needs batches of 2 or more, got {self.batch_size}")
        require(0 < self.train_fraction <= 1, "train_fraction", f"must be in (0, 1], got {self.train_fraction}")
        require(not self.zero_head or self.task in ZERO_HEAD_TASKS, "zero_head",
                f"only {', '.join(ZERO_HEAD_TASKS)} take a zero-initialised head, not {self.task}")
        require(self.train_fraction == 1 or self.task not in ("char-lm", "llm-lora"), "train_fraction",
                f"{self.task} trains on a text stream, not examples: only 1 is allowed")

    def setting(self) -> dict:
        """The fields as a dict, for the result caches' settings: the fields added since results were first
        cached (``LATER_FIELDS``) appear only when not at their defaults, so a cached result of a task
        without them stays valid, and one with them is never mistaken for it."""
        fields = dataclasses.asdict(self)
        return {k: v for k, v in fields.items() if not (k in LATER_FIELDS and v == LATER_FIELDS[k])}

    @property
    def torch_device(self) -> str:
        """The torch device the trainees use; ``ConfigError`` if cuda is asked for and absent."""
        return resolve_device(self.device)

    @property
    def tuned_peak_lr(self) -> float:
        """The peak LR `learned-lr sweep` found for this task and optimizer (the MNIST pipeline's defaults)."""
        if self.optimizer in LR_FREE_DEFAULT_LR:
            return LR_FREE_DEFAULT_LR[self.optimizer]
        if (self.task, self.optimizer) not in TUNED_PEAK_LR:
            raise ConfigError("lr", f"no default LR for {self.task} with {self.optimizer}: give one (learned-lr benchmark sweeps its own)")
        return TUNED_PEAK_LR[(self.task, self.optimizer)]

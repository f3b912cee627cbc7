"""Frozen config dataclasses, one per stage: the one home of every default.

The CLI (`learned_lr.cli`) builds its flags from these fields and their ``help`` metadata,
the library API takes them as arguments, and the tests construct them directly, so a
default lives in exactly one place. Each config validates itself in ``__post_init__`` and
raises ``ConfigError`` naming the offending field.
"""

from __future__ import annotations

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


class MissingExtraError(ImportError):
    """An optional dependency (a pip extra) is needed for what was asked; the message says which."""


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


def _resolve_device(device: str) -> str:
    """cpu, cuda or auto -> the torch device; ``ConfigError`` if cuda is asked for and absent."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda was asked for but torch sees no CUDA GPU here (use cpu or auto)")
    return device


def _check_choice(value: str, choices: tuple[str, ...], field_name: str) -> None:
    _require(value in choices, field_name, f"unknown value {value!r}; choose from {', '.join(choices)}")


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
        _check_choice(self.task, TASK_NAMES, "task")
        _check_choice(self.device, ("cpu", "cuda", "auto"), "device")
        _check_choice(self.optimizer, OPTIMIZER_NAMES, "optimizer")
        _require(self.hidden > 0, "hidden", f"must be > 0, got {self.hidden}")
        _require(self.width > 0, "width", f"must be > 0, got {self.width}")
        _require(0.0 <= self.momentum < 1.0, "momentum", f"must be in [0, 1), got {self.momentum}")
        _require(self.weight_decay >= 0.0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        _require(self.batch_size > 0, "batch_size", f"must be > 0, got {self.batch_size}")
        _require(self.val_batch_size > 0, "val_batch_size", f"must be > 0, got {self.val_batch_size}")

    @property
    def torch_device(self) -> str:
        """The torch device the trainees use; ``ConfigError`` if cuda is asked for and absent."""
        return _resolve_device(self.device)

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


@dataclass(frozen=True)
class ControlConfig:
    """How the policy sees a run and acts on it (shared by the env, BC, PPO and the scheduler)."""

    window: int = arg(512, "steps of history the policy sees (left-padded and masked early in a run)")
    decision_interval: int = arg(8, "steps between decisions (K); the LR ramps log-linearly to each new decision")
    min_lr_factor: float = arg(1e-3, "lowest LR the policy can set, as a fraction of the base (peak) LR")
    max_lr_factor: float = arg(4.0, "highest LR the policy can set, as a fraction of the base LR (>1 lets PPO raise a too-low base LR)")
    inputs: str = arg("all", "observed features: all, or subramanian (remaining time, val loss, grad norms only)", choices=("all", "subramanian"))

    def __post_init__(self) -> None:
        _check_choice(self.inputs, ("all", "subramanian"), "inputs")
        _require(self.window >= 1, "window", f"must be >= 1, got {self.window}")
        _require(self.decision_interval >= 1, "decision_interval", f"must be >= 1, got {self.decision_interval}")
        _require(0 < self.min_lr_factor < self.max_lr_factor, "min_lr_factor", f"need 0 < min_lr_factor < max_lr_factor, got {self.min_lr_factor}, {self.max_lr_factor}")
        _require(math.isfinite(self.max_lr_factor), "max_lr_factor", "must be finite")

    @property
    def log_bounds(self) -> tuple[float, float]:
        """The action's bounds: log of the LR as a fraction of the base LR."""
        return math.log(self.min_lr_factor), math.log(self.max_lr_factor)


@dataclass(frozen=True)
class RewardConfig:
    """The proposal's reward: minus the window mean of l1*max(0, dL_train) + l2*L_train + l3*L_val (normalized losses)."""

    stability_weight: float = arg(1.0, "l1: weight of training-loss increases (the stability term)")
    train_loss_weight: float = arg(1.0, "l2: weight of the training loss")
    val_loss_weight: float = arg(1.0, "l3: weight of the validation loss")
    divergence_penalty: float = arg(10.0, "reward given (negated) when a run diverges, ending its episode")
    discount: float = arg(0.97, "discount per decision for returns (critic targets, GAE)")
    kind: str = arg("proposal", "reward: proposal (the formula above) or subramanian (g*(best_val - val) + l*(steps left), Subramanian et al. 2023)", choices=("proposal", "subramanian"))
    subramanian_gain: float = arg(1.0, "subramanian reward: g, weight of the improvement over the best validation loss so far")
    subramanian_time_weight: float = arg(0.0, "subramanian reward: l, weight of the remaining fraction of the run")

    def __post_init__(self) -> None:
        _check_choice(self.kind, ("proposal", "subramanian"), "kind")
        for name in ("stability_weight", "train_loss_weight", "val_loss_weight", "divergence_penalty"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value >= 0, name, f"must be a finite number >= 0, got {value}")
        _require(0.0 <= self.discount <= 1.0, "discount", f"must be in [0, 1], got {self.discount}")


@dataclass(frozen=True)
class PolicyConfig:
    """Actor and critic: each a small Transformer encoder over the observation window."""

    patch: int = arg(16, "consecutive steps folded into one token (the window must be a multiple)")
    d_model: int = arg(64, "Transformer width")
    layers: int = arg(4, "Transformer layers")
    heads: int = arg(2, "attention heads")
    min_std: float = arg(0.05, "floor on the actor's spread (log-LR units), so PPO can still explore after BC")
    init_std: float = arg(0.3, "actor's spread at initialization (log-LR units)")

    def __post_init__(self) -> None:
        _require(self.patch >= 1, "patch", f"must be >= 1, got {self.patch}")
        _require(self.d_model >= 1 and self.heads >= 1 and self.d_model % self.heads == 0, "d_model", f"must be a positive multiple of heads ({self.heads}), got {self.d_model}")
        _require(self.layers >= 1, "layers", f"must be >= 1, got {self.layers}")
        _require(0 < self.min_std <= self.init_std, "min_std", f"need 0 < min_std <= init_std, got {self.min_std}, {self.init_std}")


def _labeled_paths(text: str, field_name: str) -> list[tuple[str, str]]:
    """'LABEL=PATH,LABEL=PATH' -> [(label, path), ...]; an empty text gives an empty list."""
    pairs = []
    for item in [p for p in text.split(",") if p.strip()]:
        _require("=" in item and all(part.strip() for part in item.split("=", 1)), field_name, f"expected LABEL=PATH, got {item!r}")
        label, path = (part.strip() for part in item.split("=", 1))
        pairs.append((label, path))
    return pairs


def _parse_list(text: str, field_name: str, cast, allowed: tuple[str, ...] | None = None) -> list:
    items = [item.strip() for item in text.split(",") if item.strip()]
    _require(len(items) > 0, field_name, "give at least one value")
    try:
        values = [cast(item) for item in items]
    except ValueError:
        raise ConfigError(field_name, f"cannot parse {text!r}") from None
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        _require(not bad, field_name, f"unknown value(s) {', '.join(map(str, bad))}; choose from {', '.join(allowed)}")
    return values


@dataclass(frozen=True)
class CollectConfig:
    """`learned-lr collect`: expert demonstrations for behavioral cloning."""

    task: TaskConfig = field(default_factory=TaskConfig)
    schedule_shape: ScheduleConfig = field(default_factory=ScheduleConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    experts: str = arg("linear-warmup,cosine,polynomial", "comma-separated expert schedules to demonstrate")
    total_steps: str = arg("300,600,1000,1500", "comma-separated run lengths, so the policy learns shapes, not one length")
    runs_per_setting: int = arg(8, "trainee runs per (expert, run length), each with its own seed and peak LR")
    min_peak_lr: float = arg(0.03, "peak LRs are drawn log-uniformly from [min_peak_lr, max_peak_lr]")
    max_peak_lr: float = arg(0.3, "upper end of the peak-LR range")
    action_noise: float = arg(0.1, "std of log-space noise on the executed expert action (labels stay clean)")
    target_peak_lr: float = arg(0.0, "0: labels follow each run's own base LR (the schedule's shape); > 0: the tuned-LR oracle, "
                                     "labels run the expert at this peak LR whatever the base LR (for robustness to a mistuned base LR)")
    seed: int = arg(0, "seed of the demonstration runs (evaluation uses seeds from 100000 on)")
    out: str = arg("runs/demos", "output folder")

    def __post_init__(self) -> None:
        _parse_list(self.experts, "experts", str, EXPERT_NAMES)
        steps = _parse_list(self.total_steps, "total_steps", int)
        _require(all(s > 1 for s in steps), "total_steps", f"every run length must be > 1, got {self.total_steps}")
        _require(self.runs_per_setting > 0, "runs_per_setting", f"must be > 0, got {self.runs_per_setting}")
        _require(math.isfinite(self.target_peak_lr) and self.target_peak_lr >= 0, "target_peak_lr", f"must be >= 0, got {self.target_peak_lr}")
        _require(0 < self.min_peak_lr <= self.max_peak_lr, "min_peak_lr", f"need 0 < min_peak_lr <= max_peak_lr, got {self.min_peak_lr}, {self.max_peak_lr}")
        _require(self.action_noise >= 0, "action_noise", f"must be >= 0, got {self.action_noise}")
        _require(0 <= self.seed < 100_000, "seed", "demonstration seeds must stay below 100000 (evaluation seeds start there)")

    @property
    def expert_list(self) -> list[str]:
        return _parse_list(self.experts, "experts", str, EXPERT_NAMES)

    @property
    def total_steps_list(self) -> list[int]:
        return _parse_list(self.total_steps, "total_steps", int)


@dataclass(frozen=True)
class BCConfig:
    """`learned-lr bc`: behavioral cloning of the actor (and warm-start of the critic) on demonstrations."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    demos: str = arg("runs/demos", "folder written by `learned-lr collect`")
    experts: str = arg("linear-warmup,cosine,polynomial", "which experts' demonstrations to clone (one, or several combined)")
    epochs: int = arg(20, "passes over the demonstrations")
    batch_size: int = arg(64, "decisions per gradient step")
    learning_rate: float = arg(1e-3, "Adam learning rate of actor and critic")
    val_fraction: float = arg(0.1, "fraction of demonstration runs held out to report BC validation error")
    seed: int = arg(0, "seed of initialization and batch order")
    out: str = arg("runs/bc", "output folder (policy.safetensors, bc_log.csv, train_state.safetensors)")
    resume: bool = arg(True, "continue from out/train_state.safetensors if present")
    window: int = arg(0, "observation window; 0 keeps the demonstrations' (windows are rebuilt from stored features, so any W <= the run works)")

    def __post_init__(self) -> None:
        _parse_list(self.experts, "experts", str, EXPERT_NAMES)
        _require(self.window >= 0, "window", f"must be >= 0, got {self.window}")
        _require(self.epochs > 0, "epochs", f"must be > 0, got {self.epochs}")
        _require(self.batch_size > 0, "batch_size", f"must be > 0, got {self.batch_size}")
        _require(math.isfinite(self.learning_rate) and self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
        _require(0 <= self.val_fraction < 1, "val_fraction", f"must be in [0, 1), got {self.val_fraction}")

    @property
    def expert_list(self) -> list[str]:
        return _parse_list(self.experts, "experts", str, EXPERT_NAMES)


@dataclass(frozen=True)
class EnvConfig:
    """The gymnasium environment: one trainee run per episode, randomized from these ranges."""

    task: TaskConfig = field(default_factory=TaskConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    tasks: str = arg("mnist-mlp", "comma-separated tasks drawn per episode")
    optimizers: str = arg("sgd", "comma-separated optimizers drawn per episode")
    min_total_steps: int = arg(300, "episode length is drawn uniformly from [min_total_steps, max_total_steps]")
    max_total_steps: int = arg(1500, "upper end of the episode length")
    min_peak_lr: float = arg(0.03, "base LR drawn log-uniformly from [min_peak_lr, max_peak_lr] (SGD; Adam's range is scaled by 1/100)")
    max_peak_lr: float = arg(0.3, "upper end of the base-LR range")

    def __post_init__(self) -> None:
        _parse_list(self.tasks, "tasks", str, TASK_NAMES)
        _parse_list(self.optimizers, "optimizers", str, OPTIMIZER_NAMES)
        _require(1 < self.min_total_steps <= self.max_total_steps, "min_total_steps", f"need 1 < min_total_steps <= max_total_steps, got {self.min_total_steps}, {self.max_total_steps}")
        _require(0 < self.min_peak_lr <= self.max_peak_lr, "min_peak_lr", f"need 0 < min_peak_lr <= max_peak_lr, got {self.min_peak_lr}, {self.max_peak_lr}")

    @property
    def task_list(self) -> list[str]:
        return _parse_list(self.tasks, "tasks", str, TASK_NAMES)

    @property
    def optimizer_list(self) -> list[str]:
        return _parse_list(self.optimizers, "optimizers", str, OPTIMIZER_NAMES)


@dataclass(frozen=True)
class BCReportConfig:
    """`learned-lr bc-report`: roll the BC policies out on held-out seeds next to their experts."""

    bc_root: str = arg("runs/imitate", "folder holding bc-linear-warmup/, bc-cosine/, bc-polynomial/, bc-all/ (each with policy.safetensors)")
    mlp_steps: int = arg(1000, "steps of each MNIST-MLP evaluation run")
    mlp_seeds: int = arg(10, "held-out seeds on MNIST-MLP")
    resnet_steps: int = arg(100, "steps of each ResNet-18 evaluation run (0 skips ResNet-18)")
    resnet_seeds: int = arg(2, "held-out seeds on ResNet-18")
    resnet_width: int = arg(16, "ResNet-18 width for the evaluation (64 is the real one; use it on a GPU)")
    handoff_fraction: float = arg(0.25, "the combined policy takes over from the expert after this fraction of the run")
    out: str = arg("results/bc", "output folder for bc_policy_vs_scheduler.png and bc_table.md/json")

    def __post_init__(self) -> None:
        _require(self.mlp_steps > 1, "mlp_steps", f"must be > 1, got {self.mlp_steps}")
        _require(self.mlp_seeds > 0, "mlp_seeds", f"must be > 0, got {self.mlp_seeds}")
        _require(self.resnet_steps >= 0, "resnet_steps", f"must be >= 0, got {self.resnet_steps}")
        _require(self.resnet_seeds > 0, "resnet_seeds", f"must be > 0, got {self.resnet_seeds}")
        _require(self.resnet_width > 0, "resnet_width", f"must be > 0, got {self.resnet_width}")
        _require(0 <= self.handoff_fraction < 1, "handoff_fraction", f"must be in [0, 1), got {self.handoff_fraction}")


@dataclass(frozen=True)
class ImitateConfig:
    """`learned-lr imitate`: demonstrations -> the four BC policies -> the BC-vs-expert report, in one command."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    decision_interval: int = arg(8, "steps between the policy's decisions (K); the bundled policy uses 32")
    runs_per_setting: int = arg(8, "demonstration runs per (expert, run length)")
    total_steps: str = arg("300,600,1000,1500", "comma-separated demonstration run lengths")
    epochs: int = arg(20, "BC epochs per policy")
    mlp_seeds: int = arg(10, "held-out evaluation seeds on MNIST-MLP")
    mlp_steps: int = arg(1000, "steps of each MNIST-MLP evaluation run")
    resnet_steps: int = arg(100, "steps of each ResNet-18 (width 16) evaluation run (0 skips it)")
    resnet_seeds: int = arg(2, "held-out evaluation seeds on ResNet-18")
    seed: int = arg(0, "seed of demonstrations and BC")
    work: str = arg("runs/imitate", "folder for demonstrations and policies (resumable)")
    out: str = arg("results/bc", "folder for the figure and tables")

    def __post_init__(self) -> None:
        _require(self.runs_per_setting > 0, "runs_per_setting", f"must be > 0, got {self.runs_per_setting}")
        _require(self.epochs > 0, "epochs", f"must be > 0, got {self.epochs}")
        _require(self.decision_interval >= 1, "decision_interval", f"must be >= 1, got {self.decision_interval}")
        steps = _parse_list(self.total_steps, "total_steps", int)
        _require(all(s > 1 for s in steps), "total_steps", f"every run length must be > 1, got {self.total_steps}")


@dataclass(frozen=True)
class PPOConfig:
    """`learned-lr ppo`: PPO fine-tuning of a policy on MNIST-MLP trainee runs."""

    task: TaskConfig = field(default_factory=TaskConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    init: str = arg("runs/imitate/bc-all/policy.safetensors", "policy to start from (a BC checkpoint), or 'random'")
    window: int = arg(512, "observation window when init is 'random' (a checkpoint brings its own)")
    patch: int = arg(16, "steps per token when init is 'random'")
    inputs: str = arg("all", "observed features when init is 'random': all or subramanian", choices=("all", "subramanian"))
    iterations: int = arg(10, "PPO iterations (rollout + update)")
    runs_per_iteration: int = arg(16, "trainee runs rolled out per iteration (advanced together)")
    total_steps: str = arg("300,500,800", "comma-separated run lengths drawn per iteration")
    hidden_sizes: str = arg("256", "comma-separated MLP widths drawn per iteration (e.g. 128,256,512)")
    min_peak_lr: float = arg(0.02, "base LRs drawn log-uniformly from [min_peak_lr, max_peak_lr]")
    max_peak_lr: float = arg(0.4, "upper end of the base-LR range")
    update_epochs: int = arg(4, "passes over each iteration's decisions")
    minibatch_size: int = arg(128, "decisions per gradient step")
    actor_lr: float = arg(3e-4, "Adam learning rate of the actor")
    critic_lr: float = arg(1e-3, "Adam learning rate of the critic")
    clip_coef: float = arg(0.2, "PPO ratio clip")
    entropy_coef: float = arg(0.0, "entropy bonus")
    kl_coef: float = arg(0.1, "penalty on KL(policy || BC policy); 0 turns the anchor off")
    gae_lambda: float = arg(0.95, "GAE lambda")
    max_grad_norm: float = arg(0.5, "gradient-norm clip")
    critic_warmup_iterations: int = arg(2, "first iterations update only the critic")
    seed: int = arg(0, "seed of trainee runs, settings, action sampling and minibatches")
    backend: str = arg("local", "where rollouts run: local (this process) or ray (Ray actors; needs the ray extra)", choices=("local", "ray"))
    ray_address: str = arg("", "ray backend: '' starts a local Ray; 'auto' or HOST:PORT joins a cluster started with `ray start --head`")
    workers: int = arg(2, "ray backend: rollout workers (Ray actors, one CPU each); an iteration's runs are split among them")
    out: str = arg("runs/ppo", "output folder (policy.safetensors, ppo_log.csv, train_state.safetensors)")
    resume: bool = arg(True, "continue from out/train_state.safetensors if present")

    def __post_init__(self) -> None:
        _check_choice(self.inputs, ("all", "subramanian"), "inputs")
        _require(self.iterations > 0, "iterations", f"must be > 0, got {self.iterations}")
        _require(self.runs_per_iteration > 0, "runs_per_iteration", f"must be > 0, got {self.runs_per_iteration}")
        steps = _parse_list(self.total_steps, "total_steps", int)
        _require(all(s > 1 for s in steps), "total_steps", f"every run length must be > 1, got {self.total_steps}")
        _require(all(h > 0 for h in _parse_list(self.hidden_sizes, "hidden_sizes", int)), "hidden_sizes", f"every width must be > 0, got {self.hidden_sizes}")
        _require(0 < self.min_peak_lr <= self.max_peak_lr, "min_peak_lr", f"need 0 < min_peak_lr <= max_peak_lr, got {self.min_peak_lr}, {self.max_peak_lr}")
        for name in ("update_epochs", "minibatch_size", "window", "patch"):
            _require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        for name in ("actor_lr", "critic_lr", "clip_coef", "max_grad_norm"):
            _require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        for name in ("entropy_coef", "kl_coef", "critic_warmup_iterations"):
            _require(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        _require(0 <= self.gae_lambda <= 1, "gae_lambda", f"must be in [0, 1], got {self.gae_lambda}")
        _require(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        _check_choice(self.backend, ("local", "ray"), "backend")
        _require(self.workers >= 1, "workers", f"must be >= 1, got {self.workers}")

    @property
    def total_steps_list(self) -> list[int]:
        return _parse_list(self.total_steps, "total_steps", int)

    @property
    def hidden_size_list(self) -> list[int]:
        return _parse_list(self.hidden_sizes, "hidden_sizes", int)


# Budgets of `learned-lr demo`. "small" finishes in a few minutes on a 2-core CPU; "full" is
# the real experiment (hours on a CPU; use a GPU machine or patience).
DEMO_PRESETS: dict[str, dict] = {
    "small": dict(
        demo_total_steps="200,400", demo_runs=4, bc_epochs=15, bc_eval_steps=400, bc_eval_seeds=5,
        ppo_iterations=6, ppo_runs=8, ppo_total_steps="300,400", eval_steps=400, eval_seeds=5,
        resnet_steps=40, resnet_seeds=2, resnet_batch=64, resnet_single_expert_policies=False,
    ),
    "full": dict(
        demo_total_steps="300,600,1000,1500", demo_runs=8, bc_epochs=20, bc_eval_steps=1000, bc_eval_seeds=10,
        ppo_iterations=30, ppo_runs=16, ppo_total_steps="300,500,800,1000", eval_steps=1000, eval_seeds=10,
        resnet_steps=200, resnet_seeds=5, resnet_batch=128, resnet_single_expert_policies=True,
    ),
}


@dataclass(frozen=True)
class DemoConfig:
    """`learned-lr demo`: the whole pipeline (demonstrations -> four BC policies -> PPO -> evaluation -> figures, tables)."""

    preset: str = arg("small", "budget: small (minutes on a laptop CPU) or full (the real experiment)", choices=tuple(DEMO_PRESETS))
    seed: int = arg(0, "seed of demonstrations, BC and PPO")
    work: str = arg("runs/demo", "folder for demonstrations, policies and training state (resumable)")
    out: str = arg("results/demo", "folder for index.md, figures and tables")
    resnet_width: int = arg(16, "ResNet-18 width for the transfer evaluation (64 on a GPU)")

    def __post_init__(self) -> None:
        _check_choice(self.preset, tuple(DEMO_PRESETS), "preset")
        _require(self.resnet_width > 0, "resnet_width", f"must be > 0, got {self.resnet_width}")

    @property
    def budget(self) -> dict:
        return DEMO_PRESETS[self.preset]


@dataclass(frozen=True)
class BundleConfig:
    """`learned-lr bundle`: make a trained policy the one shipped in the package (LearnedLR's default)."""

    policy: str = arg("runs/demo/ppo-all/policy.safetensors", "policy checkpoint to ship")
    produced_by: str = arg("learned-lr demo", "the command that produced the policy (recorded in the bundle)")
    scored: str = arg("", "what it scored and where (recorded in the bundle)")

    def __post_init__(self) -> None:
        _require(bool(self.policy), "policy", "give a policy checkpoint path")


@dataclass(frozen=True)
class AblationConfig:
    """`learned-lr ablations`: the proposal's claims, each against PPO from BC at the same budget and seeds."""

    preset: str = arg("small", "PPO and evaluation budget (the demo's presets)", choices=tuple(DEMO_PRESETS))
    seed: int = arg(0, "seed of PPO (all variants) and BC")
    work: str = arg("runs/demo", "folder with demos/ and bc-all/ from `learned-lr demo` (made if missing); variants go to ablation-*/")
    out: str = arg("results/demo", "folder for ablations.md/json")
    early_iterations: int = arg(3, "'early PPO' = the first this many iterations, for the safety count")

    def __post_init__(self) -> None:
        _check_choice(self.preset, tuple(DEMO_PRESETS), "preset")
        _require(self.early_iterations > 0, "early_iterations", f"must be > 0, got {self.early_iterations}")

    @property
    def budget(self) -> dict:
        return DEMO_PRESETS[self.preset]


@dataclass(frozen=True)
class RobustTrainConfig:
    """`learned-lr robust-train`: a policy for mistuned base LRs: tuned-LR oracle demonstrations -> BC -> DAgger rounds -> optional PPO across base LRs."""

    expert: str = arg("linear-warmup", "the schedule the oracle runs at the tuned peak LR (linear-warmup: the best tuned expert on MNIST-MLP)", choices=EXPERT_NAMES)
    target_peak_lr: float | None = arg(None, "the oracle's peak LR; default: the task's tuned peak LR (MLP, SGD: 0.1)")
    min_base_lr: float = arg(0.01, "base LRs of demonstrations and PPO runs are drawn log-uniformly from [min, max]")
    max_base_lr: float = arg(0.4, "upper end of the base-LR range")
    decision_interval: int = arg(16, "steps between decisions (K)")
    demo_total_steps: str = arg("500,1000,2000", "comma-separated demonstration run lengths")
    demo_runs: int = arg(16, "demonstration runs per run length")
    action_noise: float = arg(0.2, "log-space noise on the executed demonstration actions")
    bc_epochs: int = arg(20, "BC epochs")
    dagger_rounds: int = arg(3, "DAgger rounds after BC: run the policy, label its states with the oracle, clone again (0: none)")
    dagger_runs: int = arg(16, "trainee runs per run length in each DAgger round")
    ppo_iterations: int = arg(0, "PPO iterations after BC and DAgger (0: none; PPO (robust) in the README: --expert cosine --dagger-rounds 0 --ppo-iterations 24)")
    ppo_runs: int = arg(16, "trainee runs per PPO iteration")
    ppo_total_steps: str = arg("500,1000,2000", "comma-separated PPO run lengths")
    seed: int = arg(0, "seed of demonstrations, BC and PPO")
    work: str = arg("runs/robust-lw", "folder for demonstrations and policies (resumable; a rerun may add DAgger rounds or PPO iterations)")

    def __post_init__(self) -> None:
        _check_choice(self.expert, EXPERT_NAMES, "expert")
        if self.target_peak_lr is not None:
            _require(math.isfinite(self.target_peak_lr) and self.target_peak_lr > 0, "target_peak_lr", f"must be > 0, got {self.target_peak_lr}")
        _require(0 < self.min_base_lr <= self.max_base_lr, "min_base_lr", f"need 0 < min_base_lr <= max_base_lr, got {self.min_base_lr}, {self.max_base_lr}")
        _require(self.decision_interval >= 1, "decision_interval", f"must be >= 1, got {self.decision_interval}")
        _require(0 <= self.dagger_rounds <= 9, "dagger_rounds", f"must be in [0, 9], got {self.dagger_rounds}")
        for name in ("demo_runs", "bc_epochs", "ppo_runs", "dagger_runs"):
            _require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        _require(self.ppo_iterations >= 0, "ppo_iterations", f"must be >= 0, got {self.ppo_iterations}")
        for name in ("demo_total_steps", "ppo_total_steps"):
            _require(all(s > 1 for s in _parse_list(getattr(self, name), name, int)), name, "every run length must be > 1")


ROBUSTNESS_BASELINES: tuple[str, ...] = ("plateau", "greedy")


@dataclass(frozen=True)
class RobustnessConfig:
    """`learned-lr robustness`: every scheduler across a range of base LRs; final test loss vs base LR."""

    task: TaskConfig = field(default_factory=TaskConfig)
    steps: int = arg(2000, "steps per run")
    lrs: str = arg("0.01,0.02,0.05,0.1,0.2,0.4", "comma-separated base (peak) LRs to run")
    core_lrs: str = arg("0.02,0.05,0.1,0.2", "the base LRs the worst case is taken over (a subset of --lrs)")
    seeds: int = arg(5, "held-out seeds per base LR (from --first-seed)")
    first_seed: int = arg(100_000, "first trainee seed; 100000 on are the held-out evaluation seeds; 90000-99999, used by no training stage at "
                                   "the default seeds, make a validation set for choosing between policies")
    schedules: str = arg("linear-warmup,cosine,polynomial,constant", "comma-separated fixed schedules")
    baselines: str = arg("plateau,greedy", "comma-separated loss-driven baselines (plateau: ReduceLROnPlateau; greedy: GreedyLR, needs the hf extra)")
    policies: str = arg("BC (bundled)=bundled", "comma-separated LABEL=PATH policy checkpoints; PATH 'bundled' is LearnedLR's default policy")
    work: str = arg("runs/robustness", "folder for per-scheduler results (a rerun skips finished schedulers)")
    out: str = arg("results/robustness", "output folder for robustness.md/json and robustness.png")

    def __post_init__(self) -> None:
        _require(self.steps > 1, "steps", f"must be > 1, got {self.steps}")
        _require(self.seeds > 0, "seeds", f"must be > 0, got {self.seeds}")
        _require(self.first_seed >= 90_000, "first_seed", f"must be >= 90000 (lower seeds train policies), got {self.first_seed}")
        lrs = _parse_list(self.lrs, "lrs", float)
        _require(all(math.isfinite(lr) and lr > 0 for lr in lrs), "lrs", f"every base LR must be > 0, got {self.lrs}")
        _require(len(set(lrs)) == len(lrs), "lrs", f"base LRs must be distinct, got {self.lrs}")
        core = _parse_list(self.core_lrs, "core_lrs", float)
        _require(all(lr in lrs for lr in core), "core_lrs", f"every core LR must be one of --lrs ({self.lrs}), got {self.core_lrs}")
        if self.schedules.strip():
            _parse_list(self.schedules, "schedules", str, SCHEDULE_NAMES)
        if self.baselines.strip():
            _parse_list(self.baselines, "baselines", str, ROBUSTNESS_BASELINES)
        _labeled_paths(self.policies, "policies")

    @property
    def lr_list(self) -> list[float]:
        return sorted(_parse_list(self.lrs, "lrs", float))

    @property
    def core_lr_list(self) -> list[float]:
        return sorted(_parse_list(self.core_lrs, "core_lrs", float))

    @property
    def schedule_list(self) -> list[str]:
        return _parse_list(self.schedules, "schedules", str, SCHEDULE_NAMES) if self.schedules.strip() else []

    @property
    def baseline_list(self) -> list[str]:
        return _parse_list(self.baselines, "baselines", str, ROBUSTNESS_BASELINES) if self.baselines.strip() else []

    @property
    def policy_list(self) -> list[tuple[str, str]]:
        return _labeled_paths(self.policies, "policies")


@dataclass(frozen=True)
class EvaluateConfig:
    """`learned-lr evaluate`: policies and expert schedules on the same held-out seeds; table with 95% CIs and a figure."""

    task: TaskConfig = field(default_factory=TaskConfig)
    policies: str = arg("PPO (from BC all)=runs/demo/ppo-all/policy.safetensors,BC all=runs/demo/bc-all/policy.safetensors",
                        "comma-separated LABEL=PATH policy checkpoints")
    schedules: str = arg("linear-warmup,cosine,polynomial,constant", "comma-separated expert schedules to compare against")
    steps: int = arg(400, "steps per run")
    seeds: int = arg(5, "held-out seeds (from 100000)")
    lr: float | None = arg(None, "peak (base) LR; default: the tuned peak LR of the task and optimizer")
    out: str = arg("results/evaluate", "output folder for evaluation.md/json and evaluation.png")

    def __post_init__(self) -> None:
        _require(self.steps > 1, "steps", f"must be > 1, got {self.steps}")
        _require(self.seeds > 0, "seeds", f"must be > 0, got {self.seeds}")
        if self.lr is not None:
            _require(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be a finite number > 0, got {self.lr}")
        if self.schedules.strip():
            _parse_list(self.schedules, "schedules", str, SCHEDULE_NAMES)
        _labeled_paths(self.policies, "policies")

    @property
    def policy_list(self) -> list[tuple[str, str]]:
        return _labeled_paths(self.policies, "policies")

    @property
    def schedule_list(self) -> list[str]:
        return _parse_list(self.schedules, "schedules", str, SCHEDULE_NAMES) if self.schedules.strip() else []

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else self.task.tuned_peak_lr


LLM_SCHEDULERS: tuple[str, ...] = ("learned", "linear", "cosine", "constant", "constant_with_warmup", "greedy")


@dataclass(frozen=True)
class LoRASettings:
    """What every LoRA fine-tuning run shares, whichever scheduler, batch size and seed it has."""

    policy: str = arg("bundled", "policy checkpoint for the learned scheduler; 'bundled' is LearnedLR's default policy")
    lr: float = arg(2e-4, "base (peak) LR of AdamW (2e-4: the QLoRA paper's choice for small models)")
    steps: int = arg(80, "optimizer steps per run")
    warmup_ratio: float = arg(0.1, "warm-up fraction for linear, cosine and constant_with_warmup")
    lora_rank: int = arg(8, "LoRA rank (adapters on q_proj and v_proj, alpha = 2 x rank)")
    max_tokens: int = arg(64, "tokens per example at most")
    eval_examples: int = arg(64, "held-out examples for each of the two evaluation losses")
    max_grad_norm: float = arg(1.0, "gradient clipping, as Hugging Face Trainer's default; 0 turns it off")
    qlora: bool = arg(False, "QLoRA: the frozen base in 4-bit (needs a CUDA GPU and bitsandbytes)")
    device: str = arg("cpu", "cpu, cuda or auto", choices=("cpu", "cuda", "auto"))
    cache_dir: str = arg("", "float32 model cache; empty: $LEARNED_LR_CACHE or ~/.cache/learned-lr")

    def __post_init__(self) -> None:
        _require(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be a finite number > 0, got {self.lr}")
        _require(self.steps >= 2, "steps", f"must be >= 2, got {self.steps}")
        _require(0 <= self.warmup_ratio < 1, "warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        _require(self.lora_rank >= 1, "lora_rank", f"must be >= 1, got {self.lora_rank}")
        _require(self.max_tokens >= 8, "max_tokens", f"must be >= 8, got {self.max_tokens}")
        _require(self.eval_examples >= 1, "eval_examples", f"must be >= 1, got {self.eval_examples}")
        _require(math.isfinite(self.max_grad_norm) and self.max_grad_norm >= 0, "max_grad_norm", f"must be >= 0, got {self.max_grad_norm}")
        _check_choice(self.device, ("cpu", "cuda", "auto"), "device")

    @property
    def torch_device(self) -> str:
        """The device to train on (cuda for QLoRA); ``ConfigError`` if cuda is asked for and absent."""
        if self.qlora:
            return "cuda"  # bitsandbytes' 4-bit layers; require_qlora() says so if there is no GPU
        return _resolve_device(self.device)


@dataclass(frozen=True)
class FinetuneLLMConfig:
    """`learned-lr finetune-llm`: LoRA-fine-tune SmolLM2-135M-Instruct offline under one LR scheduler."""

    settings: LoRASettings = field(default_factory=LoRASettings)
    scheduler: str = arg("learned", "LR scheduler: learned (LearnedLR) or one of Hugging Face's", choices=LLM_SCHEDULERS)
    batch_size: int = arg(4, "examples per step")
    seed: int = arg(0, "seed of the LoRA initialization and the data order")
    out: str = arg("runs/llm/run", "output folder: result.json and the LoRA adapter")

    def __post_init__(self) -> None:
        _check_choice(self.scheduler, LLM_SCHEDULERS, "scheduler")
        _require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class CompareLLMConfig:
    """`learned-lr compare-llm`: every scheduler x batch size x seed of the LoRA fine-tuning; table and figure."""

    settings: LoRASettings = field(default_factory=LoRASettings)
    schedulers: str = arg(",".join(LLM_SCHEDULERS), "comma-separated schedulers to compare")
    batch_sizes: str = arg("1,4", "comma-separated batch sizes")
    seeds: int = arg(3, "seeds per scheduler and batch size")
    policies: str = arg("", "more learned schedulers to compare: comma-separated LABEL=PATH policy checkpoints")
    work: str = arg("runs/llm-compare", "folder for the runs (a rerun skips finished ones)")
    out: str = arg("results/llm", "output folder for llm.md/json and llm.png")

    def __post_init__(self) -> None:
        _parse_list(self.schedulers, "schedulers", str, LLM_SCHEDULERS)
        labels = [label for label, _ in self.policy_list]
        _require(not set(labels) & set(LLM_SCHEDULERS), "policies", f"a policy label cannot be a scheduler name, got {self.policies}")
        sizes = _parse_list(self.batch_sizes, "batch_sizes", int)
        _require(all(s >= 1 for s in sizes), "batch_sizes", f"must all be >= 1, got {self.batch_sizes}")
        _require(self.seeds >= 1, "seeds", f"must be >= 1, got {self.seeds}")

    @property
    def scheduler_list(self) -> list[str]:
        return _parse_list(self.schedulers, "schedulers", str, LLM_SCHEDULERS)

    @property
    def batch_size_list(self) -> list[int]:
        return _parse_list(self.batch_sizes, "batch_sizes", int)

    @property
    def policy_list(self) -> list[tuple[str, str]]:
        return _labeled_paths(self.policies, "policies") if self.policies.strip() else []


@dataclass(frozen=True)
class AdaptLLMConfig:
    """`learned-lr adapt-llm`: fine-tune a policy by behavioral cloning on LoRA runs under a teacher schedule."""

    settings: LoRASettings = field(default_factory=LoRASettings)
    teacher: str = arg("cosine", "the schedule to imitate (one of Hugging Face's)", choices=LLM_SCHEDULERS[1:5])
    batch_sizes: str = arg("1,4", "comma-separated batch sizes of the teacher runs")
    runs_per_batch_size: int = arg(3, "teacher runs per batch size (seeds from 100; the last one is held out for validation)")
    epochs: int = arg(30, "passes over the examples")
    learning_rate: float = arg(1e-4, "Adam LR for the policy")
    batch_size: int = arg(64, "examples per policy update")
    seed: int = arg(0, "seed of the policy updates")
    out: str = arg("runs/llm-adapt", "folder for the teacher runs, adapt_log.csv and policy.safetensors")

    def __post_init__(self) -> None:
        _check_choice(self.teacher, LLM_SCHEDULERS[1:5], "teacher")
        sizes = _parse_list(self.batch_sizes, "batch_sizes", int)
        _require(all(s >= 1 for s in sizes), "batch_sizes", f"must all be >= 1, got {self.batch_sizes}")
        _require(self.runs_per_batch_size >= 1, "runs_per_batch_size", f"must be >= 1, got {self.runs_per_batch_size}")
        _require(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        _require(math.isfinite(self.learning_rate) and self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
        _require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")

    @property
    def batch_size_list(self) -> list[int]:
        return _parse_list(self.batch_sizes, "batch_sizes", int)

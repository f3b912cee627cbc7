"""Configs of the training stages: expert schedules, demonstrations, BC, the gym env, PPO."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from learned_lr.settings import ControlConfig, PolicyConfig, RewardConfig, arg, check_choice, parse_list, require
from learned_lr.tasks.config import OPTIMIZER_NAMES, TASK_NAMES, TaskConfig
from learned_lr.tasks.seeds import EVAL_SEED_START

ScheduleName = Literal["constant", "linear-warmup", "cosine", "polynomial"]


SCHEDULE_NAMES: tuple[str, ...] = ScheduleName.__args__  # type: ignore[attr-defined]


EXPERT_NAMES: tuple[str, ...] = ("linear-warmup", "cosine", "polynomial")


def log_uniform(rng: np.random.Generator, low: float, high: float, count: int) -> np.ndarray:
    """``count`` draws, log-uniform over [low, high] (how every stage draws its base LRs and multipliers)."""
    return np.exp(rng.uniform(math.log(low), math.log(high), size=count))


@dataclass(frozen=True)
class ScheduleConfig:
    """Shape parameters of the expert schedules (all scaled by the peak LR)."""

    warmup_fraction: float = arg(0.1, "linear-warmup: fraction of the run spent warming up")
    warmup_start_factor: float = arg(0.01, "linear-warmup: LR at step 0 as a fraction of the peak")
    final_factor: float = arg(0.0, "linear-warmup/cosine: LR at the last step as a fraction of the peak")
    poly_power: float = arg(2.0, "polynomial: decay power")

    def __post_init__(self) -> None:
        require(0.0 <= self.warmup_fraction < 1.0, "warmup_fraction", f"must be in [0, 1), got {self.warmup_fraction}")
        require(0.0 < self.warmup_start_factor <= 1.0, "warmup_start_factor", f"must be in (0, 1], got {self.warmup_start_factor}")
        require(0.0 <= self.final_factor <= 1.0, "final_factor", f"must be in [0, 1], got {self.final_factor}")
        require(self.poly_power > 0.0, "poly_power", f"must be > 0, got {self.poly_power}")


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
    near_target_fraction: float = arg(0.0, "with target_peak_lr > 0: this fraction of the runs draws its peak LR log-uniformly from "
                                           "[target / 2, target x 2] instead (more data where the base LR is already about right)")
    seed: int = arg(0, "seed of the demonstration runs (evaluation uses seeds from 100000 on; see tasks.seeds)")
    out: str = arg("runs/demos", "output folder")

    def __post_init__(self) -> None:
        parse_list(self.experts, "experts", str, EXPERT_NAMES)
        steps = parse_list(self.total_steps, "total_steps", int)
        require(all(s > 1 for s in steps), "total_steps", f"every run length must be > 1, got {self.total_steps}")
        require(self.runs_per_setting > 0, "runs_per_setting", f"must be > 0, got {self.runs_per_setting}")
        require(math.isfinite(self.target_peak_lr) and self.target_peak_lr >= 0, "target_peak_lr", f"must be >= 0, got {self.target_peak_lr}")
        require(0 < self.min_peak_lr <= self.max_peak_lr, "min_peak_lr", f"need 0 < min_peak_lr <= max_peak_lr, got {self.min_peak_lr}, {self.max_peak_lr}")
        require(self.action_noise >= 0, "action_noise", f"must be >= 0, got {self.action_noise}")
        require(0 <= self.near_target_fraction <= 1, "near_target_fraction", f"must be in [0, 1], got {self.near_target_fraction}")
        require(self.near_target_fraction == 0 or self.target_peak_lr > 0, "near_target_fraction", "needs a target_peak_lr > 0")
        require(0 <= self.seed < EVAL_SEED_START, "seed", f"demonstration seeds must stay below {EVAL_SEED_START} (evaluation seeds start there)")

    @property
    def expert_list(self) -> list[str]:
        return parse_list(self.experts, "experts", str, EXPERT_NAMES)

    def sample_peak_lrs(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` peak LRs: log-uniform over [min_peak_lr, max_peak_lr], the first
        ``round(near_target_fraction * count)`` of them log-uniform within 2x of ``target_peak_lr``.

        Example:
            >>> CollectConfig(min_peak_lr=0.01, max_peak_lr=1.0).sample_peak_lrs(np.random.default_rng(0), 3).round(3)
            array([0.188, 0.035, 0.012])
        """
        lrs = log_uniform(rng, self.min_peak_lr, self.max_peak_lr, count)
        near = int(round(self.near_target_fraction * count))
        if near:  # no extra draws at fraction 0, so the wide runs' LRs do not depend on the option
            lrs[:near] = self.target_peak_lr * log_uniform(rng, 0.5, 2.0, near)
        return lrs

    @property
    def total_steps_list(self) -> list[int]:
        return parse_list(self.total_steps, "total_steps", int)


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
    quantile: float = arg(0.0, "0: fit the actor's mean to the expert's mean action (Gaussian NLL); q in (0, 1): to its q-quantile "
                               "(pinball loss), so q < 0.5 clones the lower actions where alike-looking states were labelled differently")

    def __post_init__(self) -> None:
        parse_list(self.experts, "experts", str, EXPERT_NAMES)
        require(0 <= self.quantile < 1, "quantile", f"must be 0 (the NLL) or in (0, 1), got {self.quantile}")
        require(self.window >= 0, "window", f"must be >= 0, got {self.window}")
        require(self.epochs > 0, "epochs", f"must be > 0, got {self.epochs}")
        require(self.batch_size > 0, "batch_size", f"must be > 0, got {self.batch_size}")
        require(math.isfinite(self.learning_rate) and self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
        require(0 <= self.val_fraction < 1, "val_fraction", f"must be in [0, 1), got {self.val_fraction}")

    @property
    def expert_list(self) -> list[str]:
        return parse_list(self.experts, "experts", str, EXPERT_NAMES)


@dataclass(frozen=True)
class DistillConfig:
    """`learned-lr distill`: one actor cloned from a teacher policy's decisions on stored states (an ensemble into one actor)."""

    teacher: str = arg("", "the policy to imitate: a bundled policy's name or a checkpoint path (e.g. `bundle --ensemble-with`'s)")
    demos: str = arg("runs/general-long/dagger/round-2/data", "folder of the demonstrations whose states are relabelled (e.g. a "
                     "general-train run's last merged data)")
    experts: str = arg("linear-warmup,cosine", "which runs of the demonstrations to clone, by the expert that labelled them")
    epochs: int = arg(20, "BC passes over the relabelled states")
    seed: int = arg(0, "seed of the student's initialization and batch order")
    out: str = arg("runs/distill", "folder: data/demos.safetensors (the relabelled states), policy.safetensors, bc_log.csv")

    def __post_init__(self) -> None:
        require(bool(self.teacher.strip()), "teacher", "name the policy to imitate")
        parse_list(self.experts, "experts", str, EXPERT_NAMES)
        require(self.epochs > 0, "epochs", f"must be > 0, got {self.epochs}")


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
        parse_list(self.tasks, "tasks", str, TASK_NAMES)
        parse_list(self.optimizers, "optimizers", str, OPTIMIZER_NAMES)
        require(1 < self.min_total_steps <= self.max_total_steps, "min_total_steps", f"need 1 < min_total_steps <= max_total_steps, got {self.min_total_steps}, {self.max_total_steps}")
        require(0 < self.min_peak_lr <= self.max_peak_lr, "min_peak_lr", f"need 0 < min_peak_lr <= max_peak_lr, got {self.min_peak_lr}, {self.max_peak_lr}")

    @property
    def task_list(self) -> list[str]:
        return parse_list(self.tasks, "tasks", str, TASK_NAMES)

    @property
    def optimizer_list(self) -> list[str]:
        return parse_list(self.optimizers, "optimizers", str, OPTIMIZER_NAMES)


@dataclass(frozen=True)
class PPOConfig:
    """`learned-lr ppo`: PPO fine-tuning of a policy on MNIST-MLP trainee runs."""

    task: TaskConfig = field(default_factory=TaskConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    # How a randomly initialized policy sees and acts, and its networks: used only with init='random'
    # (a checkpoint brings its own; giving them with a checkpoint is refused).
    control: ControlConfig = field(default_factory=ControlConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    init: str = arg("runs/imitate/bc-all/policy.safetensors", "policy to start from (a BC checkpoint), or 'random' (then the "
                                                           "window, patch, inputs, ... flags set its shape)")
    iterations: int = arg(10, "PPO iterations (rollout + update)")
    runs_per_iteration: int = arg(16, "trainee runs rolled out per iteration (advanced together)")
    total_steps: str = arg("300,500,800", "comma-separated run lengths drawn per iteration")
    hidden_sizes: str = arg("256", "comma-separated MLP widths drawn per iteration (e.g. 128,256,512)")
    min_peak_lr: float = arg(0.02, "base LRs drawn log-uniformly from [min_peak_lr, max_peak_lr]")
    max_peak_lr: float = arg(0.4, "upper end of the base-LR range")
    variants: str = arg("", "a `general-train` variants.json: each iteration runs one of its variants (drawn per iteration) at "
                            "base LR = its oracle's tuned LR x a multiplier drawn log-uniformly from [min_multiplier, max_multiplier]; "
                            "then --task, --total-steps, --hidden-sizes and the peak-LR range are not used")
    min_multiplier: float = arg(0.05, "with --variants: lower end of the base-LR multipliers")
    max_multiplier: float = arg(20.0, "with --variants: upper end of the base-LR multipliers")
    variants_per_iteration: int = arg(1, "with --variants: distinct variants each iteration runs (drawn per iteration), its runs "
                                         "split evenly among them")
    run_length_scale: float = arg(1.0, "with --variants: each variant's run length x this in PPO rollouts (validation keeps "
                                       "variants.json's lengths); 1: as variants.json gives them")
    return_scale: str = arg("none", "none: rewards as the reward gives them; per-decision: each run's rewards divided by its "
                                    "planned number of decisions (a return is then the run's mean reward, whatever its length) "
                                    "and advantages standardized within each variant of an iteration", choices=("none", "per-decision"))
    validate_every: int = arg(0, "with --variants: before the first iteration and every N after, score the deterministic policy "
                                 "on validation runs of the variants (validation seeds, never trained on) and keep that snapshot; "
                                 "best_policy.safetensors is the one with the lowest score (0: off)")
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
        if self.init != "random":
            require(self.control == ControlConfig() and self.policy == PolicyConfig(), "init",
                    "the policy checkpoint brings its own observation, action and network settings; those flags apply only with --init random")
        require(self.iterations > 0, "iterations", f"must be > 0, got {self.iterations}")
        require(self.runs_per_iteration > 0, "runs_per_iteration", f"must be > 0, got {self.runs_per_iteration}")
        steps = parse_list(self.total_steps, "total_steps", int)
        require(all(s > 1 for s in steps), "total_steps", f"every run length must be > 1, got {self.total_steps}")
        require(all(h > 0 for h in parse_list(self.hidden_sizes, "hidden_sizes", int)), "hidden_sizes", f"every width must be > 0, got {self.hidden_sizes}")
        require(0 < self.min_peak_lr <= self.max_peak_lr, "min_peak_lr", f"need 0 < min_peak_lr <= max_peak_lr, got {self.min_peak_lr}, {self.max_peak_lr}")
        require(0 < self.min_multiplier <= self.max_multiplier and math.isfinite(self.max_multiplier), "min_multiplier",
                f"need 0 < min_multiplier <= max_multiplier (finite), got {self.min_multiplier}, {self.max_multiplier}")
        require(not self.variants or Path(self.variants).is_file(), "variants", f"{self.variants} is not a file (give general-train's variants.json)")
        require(self.variants_per_iteration >= 1, "variants_per_iteration", f"must be >= 1, got {self.variants_per_iteration}")
        require(self.variants_per_iteration <= self.runs_per_iteration, "variants_per_iteration",
                f"must be <= runs_per_iteration ({self.runs_per_iteration}), got {self.variants_per_iteration}")
        require(self.validate_every >= 0, "validate_every", f"must be >= 0, got {self.validate_every}")
        require(0 < self.run_length_scale <= 10 and math.isfinite(self.run_length_scale), "run_length_scale",
                f"must be in (0, 10], got {self.run_length_scale}")
        require(bool(self.variants) or (self.variants_per_iteration == 1 and self.validate_every == 0 and self.run_length_scale == 1), "variants",
                "variants_per_iteration, validate_every and run_length_scale need --variants")
        check_choice(self.return_scale, ("none", "per-decision"), "return_scale")
        for name in ("update_epochs", "minibatch_size"):
            require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        for name in ("actor_lr", "critic_lr", "clip_coef", "max_grad_norm"):
            require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        for name in ("entropy_coef", "kl_coef", "critic_warmup_iterations"):
            require(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        require(0 <= self.gae_lambda <= 1, "gae_lambda", f"must be in [0, 1], got {self.gae_lambda}")
        require(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        check_choice(self.backend, ("local", "ray"), "backend")
        require(self.workers >= 1, "workers", f"must be >= 1, got {self.workers}")

    @property
    def total_steps_list(self) -> list[int]:
        return parse_list(self.total_steps, "total_steps", int)

    @property
    def hidden_size_list(self) -> list[int]:
        return parse_list(self.hidden_sizes, "hidden_sizes", int)

"""Configs of the experiment commands: single runs, sweeps, the pipelines, robustness and evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from learned_lr.settings import ConfigError, ControlConfig, PolicyConfig, arg, check_choice, labeled_paths, parse_list, require, same_as
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.seeds import EVAL_SEED_START, VALIDATION_SEED_START
from learned_lr.training.config import EXPERT_NAMES, SCHEDULE_NAMES, BCConfig, CollectConfig, ScheduleConfig


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
        check_choice(self.schedule, SCHEDULE_NAMES, "schedule")
        require(self.steps > 0, "steps", f"must be > 0, got {self.steps}")
        if self.lr is not None:
            require(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be a finite number > 0, got {self.lr}")

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
        check_choice(self.schedule, SCHEDULE_NAMES, "schedule")
        require(self.steps > 0, "steps", f"must be > 0, got {self.steps}")
        require(self.seeds > 0, "seeds", f"must be > 0, got {self.seeds}")
        try:
            values = self.lr_values
        except ValueError:
            raise ConfigError("lrs", f"expected comma-separated numbers, got {self.lrs!r}") from None
        require(len(values) > 0, "lrs", "give at least one LR")
        require(all(math.isfinite(v) and v > 0 for v in values), "lrs", f"every LR must be > 0, got {self.lrs!r}")

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
        require(self.steps > 0, "steps", f"must be > 0, got {self.steps}")
        if self.lr is not None:
            require(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be a finite number > 0, got {self.lr}")

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else self.task.tuned_peak_lr


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
        require(self.mlp_steps > 1, "mlp_steps", f"must be > 1, got {self.mlp_steps}")
        require(self.mlp_seeds > 0, "mlp_seeds", f"must be > 0, got {self.mlp_seeds}")
        require(self.resnet_steps >= 0, "resnet_steps", f"must be >= 0, got {self.resnet_steps}")
        require(self.resnet_seeds > 0, "resnet_seeds", f"must be > 0, got {self.resnet_seeds}")
        require(self.resnet_width > 0, "resnet_width", f"must be > 0, got {self.resnet_width}")
        require(0 <= self.handoff_fraction < 1, "handoff_fraction", f"must be in [0, 1), got {self.handoff_fraction}")


@dataclass(frozen=True)
class ImitateConfig:
    """`learned-lr imitate`: demonstrations -> the four BC policies -> the BC-vs-expert report, in one command."""

    # The settings it passes on are the stages' own fields (defaults, help, checks defined there once).
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    decision_interval: int = same_as(ControlConfig, "decision_interval", "steps between the policy's decisions (K); the bundled policy uses 32")
    runs_per_setting: int = same_as(CollectConfig, "runs_per_setting")
    total_steps: str = same_as(CollectConfig, "total_steps", "comma-separated demonstration run lengths")
    epochs: int = same_as(BCConfig, "epochs", "BC epochs per policy")
    mlp_seeds: int = same_as(BCReportConfig, "mlp_seeds")
    mlp_steps: int = same_as(BCReportConfig, "mlp_steps")
    resnet_steps: int = same_as(BCReportConfig, "resnet_steps", "steps of each ResNet-18 (width 16) evaluation run (0 skips it)")
    resnet_seeds: int = same_as(BCReportConfig, "resnet_seeds")
    seed: int = arg(0, "seed of demonstrations and BC")
    work: str = arg("runs/imitate", "folder for demonstrations and policies (resumable)")
    out: str = arg("results/bc", "folder for the figure and tables")

    def __post_init__(self) -> None:
        self.collect_config(), self.bc_config()  # each stage checks its own settings
        BCReportConfig(mlp_steps=self.mlp_steps, mlp_seeds=self.mlp_seeds, resnet_steps=self.resnet_steps, resnet_seeds=self.resnet_seeds)

    def collect_config(self) -> CollectConfig:
        return CollectConfig(runs_per_setting=self.runs_per_setting, total_steps=self.total_steps, seed=self.seed,
                             control=ControlConfig(decision_interval=self.decision_interval))

    def bc_config(self) -> BCConfig:
        return BCConfig(policy=self.policy, epochs=self.epochs, seed=self.seed)


# Budgets of `learned-lr demo`. "small" finishes in a few minutes on a 2-core CPU; "full" is
# the real experiment (hours on a CPU; use a GPU machine or patience).
DEMO_PRESETS: dict[str, dict] = {
    "small": dict(
        demo_total_steps="200,400", demo_runs=4, bc_epochs=10, bc_eval_steps=300, bc_eval_seeds=5,
        ppo_iterations=5, ppo_runs=6, ppo_total_steps="200,300", eval_steps=300, eval_seeds=5,
        resnet_steps=40, resnet_seeds=2, resnet_batch=64, resnet_width=8, resnet_single_expert_policies=False,
        resnet_fixed="linear-warmup,cosine", resnet_test_examples=1000,
    ),
    "full": dict(
        demo_total_steps="300,600,1000,1500", demo_runs=8, bc_epochs=20, bc_eval_steps=1000, bc_eval_seeds=10,
        ppo_iterations=30, ppo_runs=16, ppo_total_steps="300,500,800,1000", eval_steps=1000, eval_seeds=10,
        resnet_steps=200, resnet_seeds=5, resnet_batch=128, resnet_width=16, resnet_single_expert_policies=True,
        resnet_fixed="linear-warmup,cosine,polynomial,constant", resnet_test_examples=0,
    ),
}


@dataclass(frozen=True)
class DemoConfig:
    """`learned-lr demo`: the whole pipeline (demonstrations -> four BC policies -> PPO -> evaluation -> figures, tables)."""

    preset: str = arg("small", "budget: small (minutes on a laptop CPU) or full (the real experiment)", choices=tuple(DEMO_PRESETS))
    seed: int = arg(0, "seed of demonstrations, BC and PPO")
    work: str = arg("runs/demo", "folder for demonstrations, policies and training state (resumable)")
    out: str = arg("results/demo", "folder for index.md, figures and tables")
    # The small preset's ResNet rows are a smoke test of transfer; at width 8 a run (40 steps and
    # the 10k-image test pass) costs 9 s on 2 cores instead of 27 s at width 16.
    resnet_width: int = arg(0, "ResNet-18 width for the transfer evaluation (0: the preset's, 8 small / 16 full; 64 on a GPU)")

    def __post_init__(self) -> None:
        check_choice(self.preset, tuple(DEMO_PRESETS), "preset")
        require(self.resnet_width >= 0, "resnet_width", f"must be >= 0, got {self.resnet_width}")

    @property
    def resnet_model_width(self) -> int:
        return self.resnet_width or DEMO_PRESETS[self.preset]["resnet_width"]

    @property
    def budget(self) -> dict:
        return DEMO_PRESETS[self.preset]


@dataclass(frozen=True)
class AblationConfig:
    """`learned-lr ablations`: the proposal's claims, each against PPO from BC at the same budget and seeds."""

    preset: str = arg("small", "PPO and evaluation budget (the demo's presets)", choices=tuple(DEMO_PRESETS))
    seed: int = arg(0, "seed of PPO (all variants) and BC")
    work: str = arg("runs/demo", "folder with demos/ and bc-all/ from `learned-lr demo` (made if missing); variants go to ablation-*/")
    out: str = arg("results/demo", "folder for ablations.md/json")
    early_iterations: int = arg(3, "'early PPO' = the first this many iterations, for the safety count")

    def __post_init__(self) -> None:
        check_choice(self.preset, tuple(DEMO_PRESETS), "preset")
        require(self.early_iterations > 0, "early_iterations", f"must be > 0, got {self.early_iterations}")

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
        check_choice(self.expert, EXPERT_NAMES, "expert")
        if self.target_peak_lr is not None:
            require(math.isfinite(self.target_peak_lr) and self.target_peak_lr > 0, "target_peak_lr", f"must be > 0, got {self.target_peak_lr}")
        require(0 < self.min_base_lr <= self.max_base_lr, "min_base_lr", f"need 0 < min_base_lr <= max_base_lr, got {self.min_base_lr}, {self.max_base_lr}")
        require(self.decision_interval >= 1, "decision_interval", f"must be >= 1, got {self.decision_interval}")
        require(0 <= self.dagger_rounds <= 9, "dagger_rounds", f"must be in [0, 9], got {self.dagger_rounds}")
        for name in ("demo_runs", "bc_epochs", "ppo_runs", "dagger_runs"):
            require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        require(self.ppo_iterations >= 0, "ppo_iterations", f"must be >= 0, got {self.ppo_iterations}")
        for name in ("demo_total_steps", "ppo_total_steps"):
            require(all(s > 1 for s in parse_list(getattr(self, name), name, int)), name, "every run length must be > 1")


ROBUSTNESS_BASELINES: tuple[str, ...] = ("plateau", "greedy")


@dataclass(frozen=True)
class RobustnessConfig:
    """`learned-lr robustness`: every scheduler across a range of base LRs; final test loss vs base LR."""

    task: TaskConfig = field(default_factory=TaskConfig)
    steps: int = arg(2000, "steps per run")
    lrs: str = arg("0.01,0.02,0.05,0.1,0.2,0.4", "comma-separated base (peak) LRs to run")
    core_lrs: str = arg("0.02,0.05,0.1,0.2", "the base LRs the worst case is taken over (a subset of --lrs)")
    seeds: int = arg(5, "held-out seeds per base LR (from --first-seed)")
    first_seed: int = arg(EVAL_SEED_START, "first trainee seed; 100000 on are the held-out evaluation seeds; 90000-99999, used by no training stage at "
                                   "the default seeds, make a validation set for choosing between policies")
    schedules: str = arg("linear-warmup,cosine,polynomial,constant", "comma-separated fixed schedules")
    baselines: str = arg("plateau,greedy", "comma-separated loss-driven baselines (plateau: ReduceLROnPlateau; greedy: GreedyLR, needs the hf extra)")
    policies: str = arg("BC (bundled)=bundled", "comma-separated LABEL=PATH policy checkpoints; PATH 'bundled' is LearnedLR's default policy")
    work: str = arg("runs/robustness", "folder for per-scheduler results (a rerun skips finished schedulers)")
    out: str = arg("results/robustness", "output folder for robustness.md/json and robustness.png")

    def __post_init__(self) -> None:
        require(self.steps > 1, "steps", f"must be > 1, got {self.steps}")
        require(self.seeds > 0, "seeds", f"must be > 0, got {self.seeds}")
        require(self.first_seed >= VALIDATION_SEED_START, "first_seed", f"must be >= {VALIDATION_SEED_START} (lower seeds train policies), got {self.first_seed}")
        lrs = parse_list(self.lrs, "lrs", float)
        require(all(math.isfinite(lr) and lr > 0 for lr in lrs), "lrs", f"every base LR must be > 0, got {self.lrs}")
        require(len(set(lrs)) == len(lrs), "lrs", f"base LRs must be distinct, got {self.lrs}")
        core = parse_list(self.core_lrs, "core_lrs", float)
        require(all(lr in lrs for lr in core), "core_lrs", f"every core LR must be one of --lrs ({self.lrs}), got {self.core_lrs}")
        if self.schedules.strip():
            parse_list(self.schedules, "schedules", str, SCHEDULE_NAMES)
        if self.baselines.strip():
            parse_list(self.baselines, "baselines", str, ROBUSTNESS_BASELINES)
        labeled_paths(self.policies, "policies")

    @property
    def lr_list(self) -> list[float]:
        return sorted(parse_list(self.lrs, "lrs", float))

    @property
    def core_lr_list(self) -> list[float]:
        return sorted(parse_list(self.core_lrs, "core_lrs", float))

    @property
    def schedule_list(self) -> list[str]:
        return parse_list(self.schedules, "schedules", str, SCHEDULE_NAMES) if self.schedules.strip() else []

    @property
    def baseline_list(self) -> list[str]:
        return parse_list(self.baselines, "baselines", str, ROBUSTNESS_BASELINES) if self.baselines.strip() else []

    @property
    def policy_list(self) -> list[tuple[str, str]]:
        return labeled_paths(self.policies, "policies")


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
        require(self.steps > 1, "steps", f"must be > 1, got {self.steps}")
        require(self.seeds > 0, "seeds", f"must be > 0, got {self.seeds}")
        if self.lr is not None:
            require(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be a finite number > 0, got {self.lr}")
        if self.schedules.strip():
            parse_list(self.schedules, "schedules", str, SCHEDULE_NAMES)
        labeled_paths(self.policies, "policies")

    @property
    def policy_list(self) -> list[tuple[str, str]]:
        return labeled_paths(self.policies, "policies")

    @property
    def schedule_list(self) -> list[str]:
        return parse_list(self.schedules, "schedules", str, SCHEDULE_NAMES) if self.schedules.strip() else []

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else self.task.tuned_peak_lr


@dataclass(frozen=True)
class ExplainConfig:
    """`learned-lr explain`: one run under LearnedLR in a plain loop; the LR it set, its decisions and the losses, as a figure."""

    task: TaskConfig = field(default_factory=TaskConfig)
    policy: str = arg("bundled", "policy checkpoint, bundled (LearnedLR's default) or general (the cross-family bundled policy)")
    steps: int = arg(1000, "training steps (the scheduler's total_steps)")
    lr: float | None = arg(None, "base (peak) LR; default: the task's tuned LR")
    seed: int = arg(0, "trainee seed")
    feed_losses: bool = arg(True, "pass the train and validation losses to scheduler.step() (--no-feed-losses: none)")
    out: str = arg("results/explain", "output folder for decisions.png and decisions.json")

    def __post_init__(self) -> None:
        require(self.steps > 1, "steps", f"must be > 1, got {self.steps}")
        if self.lr is not None:
            require(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be a finite number > 0, got {self.lr}")

    @property
    def base_lr(self) -> float:
        return self.lr if self.lr is not None else self.task.tuned_peak_lr

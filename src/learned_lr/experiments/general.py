"""`learned-lr general-train`: one policy for every model, trained on the training families only.

The recipe (issue 18), each stage resumable in ``--work``:

1. **Variants** of the training families (``training.distribution.sample_variants``: widths,
   batch sizes, SGD/Adam/AdamW, run lengths; optionally init scales and data fractions), written to ``variants.json``.
2. **An oracle per variant** from its own cached sweep (``tune_variant``): the best expert shape
   at the best LR. No LR is given by hand.
3. **Demonstrations**: per variant, runs at base LR = tuned LR x a log-uniform multiplier over
   ``[min_multiplier, max_multiplier]``, labelled with what the oracle would do (its shape at
   the tuned LR, whatever the base LR; ``training.rollout.ScheduleController``).
4. **BC** on all variants' demonstrations, then **DAgger rounds**: run the latest policy on
   every variant, label its states with the variant's oracle, clone again on everything so far.
5. Optionally **PPO** from the last policy across the variants (``--ppo-iterations``), on the
   proposal's reward: each iteration runs one variant at tuned LR x the same multipliers.

No stage runs a held-out family, and no policy is chosen by a score: the last DAgger round is
the recipe's policy. Judge each stage with ``learned-lr benchmark --policies ...`` (printed at
the end).

Example:
    >>> paths = run_general_training(GeneralTrainConfig(variants_per_family=1, work="runs/g"))  # doctest: +SKIP
    >>> sorted(paths)
    ['bc', 'dagger-1', 'dagger-2']
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from learned_lr.features import INPUT_CHOICES
from learned_lr.files import write_json
from learned_lr.settings import ConfigError, ControlConfig, arg, check_choice, parse_list, require, same_as
from learned_lr.training.config import BCConfig
from learned_lr.training.distribution import COPY_KINDS, DEFAULT_COPY_KINDS, MAX_SWEEP_SEEDS

# Every input set but Subramanian et al.'s, which is the PPO ablation arm of `ablations` and `claims` (window 1), not a recipe.
GENERAL_INPUTS = tuple(choice for choice in INPUT_CHOICES if choice != "subramanian")


@dataclass(frozen=True)
class GeneralTrainConfig:
    """`learned-lr general-train`: one policy across the training families (tuned-LR oracle per variant -> BC -> DAgger)."""

    variants_per_family: int = arg(4, "random trainee variants per training family (widths, batch sizes, optimizers, run lengths)")
    min_steps: int = arg(150, "variant run lengths are drawn log-uniformly from [min_steps, max_steps]")
    max_steps: int = arg(1000, "upper end of the run lengths")
    init_scales: str = arg("", "comma-separated initial-weight scales each variant draws from (e.g. 0.5,1,2; empty: 1)")
    train_fractions: str = arg("", "comma-separated fractions of the training split each variant draws from (e.g. 0.1,0.3,1; empty: 1)")
    depths: str = arg("", "comma-separated hidden-layer counts each MLP-family variant draws from (mnist-mlp, digits, diabetes; "
                      "e.g. 1,2,3; empty: 1)")
    batch_norm_fraction: float = arg(0.0, "the probability that a variant has batch norm after each hidden layer or convolution "
                                     "(drawn per variant; 0: none)")
    batch_norm_copies: bool = arg(False, "keep every variant drawn without batch norm and add a copy of it with batch norm (twice the "
                                  "variants; the plain ones stay those of the same recipe without this flag)")
    structure_copies: bool = arg(False, "keep every variant and add a copy of it with one change of structure (by default; --copy-kinds names others): 2-3 hidden layers "
                                 "(MLP families), initial scale 0.5 or 2, or a 0.1 or 0.3 fraction of its data, each family's variants taking "
                                 "the kinds in turn (twice the variants; the plain ones stay those of the same recipe without this flag)")
    copy_kinds: str = arg("", "with --structure-copies, the kinds of copy the variants take in turn, comma-separated: depth (2-3 "
                          "hidden layers), init-scale (0.5 or 2), data (0.1 or 0.3 of it), deep (6, 8, 12 or 16 hidden layers), zero-head "
                          "(the output layer starts at zero); the depth kinds in the MLP families only; empty: depth,init-scale,data")
    stratify_optimizers: bool = arg(False, "each family's variants take SGD, Adam and AdamW in turn (in an order drawn per family) "
                                    "instead of drawing each variant's optimizer independently")
    sweep_points: int = arg(5, "LRs of each variant's oracle sweep (the middle ones of the optimizer's grid; extended at an edge)")
    sweep_seeds: int = arg(1, "trainee seeds each (shape, LR) of a variant's oracle sweep is averaged over (1: the sweep every earlier recipe used)")
    min_multiplier: float = arg(0.05, "base LR = the variant's tuned LR x a multiplier drawn log-uniformly from [min, max]")
    max_multiplier: float = arg(20.0, "upper end of the multipliers")
    near_tuned_fraction: float = arg(0.0, "fraction of the demonstration and DAgger runs whose multiplier is drawn from [1/2, 2] "
                                          "instead (more data at about the tuned LR, where the policy must hold the shape)")
    decision_interval: int = arg(16, "steps between decisions (K)")
    max_lr_factor: float = arg(25.0, "highest LR the policy may set, as a multiple of the base LR (20 rescues a base LR 20x too low)")
    max_lr_rise: float = arg(0.0, "the most one decision may raise the LR, as a factor (0: no limit; ControlConfig.max_lr_rise)")
    distance_skips_zero_start: bool = arg(False, "the distance features summarize only the layers whose weights started away from "
                                          "zero, as the default policy reads them (ControlConfig.distance_skips_zero_start; needs "
                                          "all+distance inputs)")
    grad_norms_skip_zero_start: bool = arg(False, "a layer whose first gradient is zero is left out of the layer-gradient inputs, as "
                                           "the default policy reads them (ControlConfig.grad_norms_skip_zero_start)")
    start_decision_interval: int = arg(0, "decide every this many steps over a run's first --start-steps (0: every K throughout; "
                                          "ControlConfig.start_decision_interval)")
    start_steps: int = arg(0, "how many of a run's first steps --start-decision-interval applies to")
    inputs: str = arg("all", "what the policy reads: all (losses, gradient norms, LRs, time left), all+momentum (and each layer's "
                      "gradient-momentum cosine), all+distance (and each layer's distance from its initial weights), "
                      "all+distance+length (and the run's length, log(T / 1000)) or all+distance+response (and the slopes of the loss's "
                      "and gradient norm's changes on the LR's own)",
                      choices=GENERAL_INPUTS)
    demo_runs: int = arg(8, "demonstration runs per variant (per run length with --demo-length-factors)")
    demo_length_factors: str = arg("", "comma-separated factors: each variant's demonstrations are run at its length x each one "
                                   "(kept within --min-steps..--max-steps), labelled with its oracle as tuned at its own length; "
                                   "empty: its own length only. Several lengths per variant are meant to keep a policy that reads "
                                   "the run's length from taking it for the variant's name (docs/results.md section 7)")
    action_noise: float = arg(0.2, "log-space noise on the executed actions of demonstrations and DAgger runs")
    bc_epochs: int = arg(20, "BC epochs per stage")
    bc_quantile: float = same_as(BCConfig, "quantile", "BC's fit of the oracle's action in every stage: 0, its mean (NLL); q in (0, 1), its q-quantile "
                                  "(a cautious actor for q < 0.5: where runs at different base LRs look alike, the lower action)")
    # The bundled policy's actor size: small enough that LearnedLR stays within 1.10x of a plain MLP step.
    d_model: int = arg(32, "actor/critic Transformer width")
    layers: int = arg(2, "actor/critic Transformer blocks")
    dagger_rounds: int = arg(2, "DAgger rounds after BC (0: none)")
    dagger_runs: int = arg(8, "policy runs per variant in each DAgger round")
    ppo_iterations: int = arg(0, "PPO iterations from the last DAgger (or BC) policy across the variants, with the proposal's reward "
                                 "(0: none); each iteration runs one variant, drawn per iteration")
    ppo_runs: int = arg(16, "trainee runs per PPO iteration")
    seed: int = arg(0, "seed of the variants and of BC")
    bc_seed: int = arg(-1, "seed of BC's initialization and batch order in every stage (-1: --seed): another BC seed on the same "
                           "variants, sweeps and demonstrations measures how much of a recipe's score is its training draw")
    work: str = arg("runs/general", "folder for sweeps, demonstrations and policies (resumable; a rerun may add DAgger rounds "
                                    "or PPO iterations, any other change is refused)")

    def __post_init__(self) -> None:
        require(1 <= self.variants_per_family <= 9, "variants_per_family", f"must be in 1..9, got {self.variants_per_family}")
        require(1 < self.min_steps <= self.max_steps, "min_steps", f"need 1 < min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")
        require(2 <= self.sweep_points <= 5, "sweep_points", f"must be in 2..5, got {self.sweep_points}")
        require(1 <= self.sweep_seeds <= MAX_SWEEP_SEEDS, "sweep_seeds", f"must be in 1..{MAX_SWEEP_SEEDS}, got {self.sweep_seeds}")
        require(0 < self.min_multiplier <= 1 <= self.max_multiplier and math.isfinite(self.max_multiplier), "min_multiplier",
                f"need 0 < min_multiplier <= 1 <= max_multiplier (finite), got {self.min_multiplier}, {self.max_multiplier}")
        require(0 <= self.near_tuned_fraction <= 1, "near_tuned_fraction", f"must be in [0, 1], got {self.near_tuned_fraction}")
        require(self.max_lr_factor >= 1.0, "max_lr_factor", f"must be >= 1, got {self.max_lr_factor}")
        require(self.decision_interval >= 1, "decision_interval", f"must be >= 1, got {self.decision_interval}")
        self.control  # the policy's controls (rise limit, dense start): ControlConfig's own checks
        require(0 <= self.dagger_rounds <= 9, "dagger_rounds", f"must be in [0, 9], got {self.dagger_rounds}")
        require(0 <= self.ppo_iterations <= 1000, "ppo_iterations", f"must be in [0, 1000], got {self.ppo_iterations}")
        require(1 <= self.ppo_runs <= 256, "ppo_runs", f"must be in 1..256, got {self.ppo_runs}")
        check_choice(self.inputs, GENERAL_INPUTS, "inputs")
        require(self.action_noise >= 0, "action_noise", f"must be >= 0, got {self.action_noise}")
        for name in ("d_model", "layers"):
            require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        for name in ("demo_runs", "bc_epochs", "dagger_runs"):
            require(0 < getattr(self, name) <= 400, name, f"must be in 1..400, got {getattr(self, name)}")
        require(0 <= self.seed < 100, "seed", f"must be in 0..99, got {self.seed}")
        require(0 <= self.bc_quantile < 1, "bc_quantile", f"must be 0 (the NLL) or in (0, 1), got {self.bc_quantile}")
        require(-1 <= self.bc_seed < 100, "bc_seed", f"must be in 0..99, or -1 for --seed, got {self.bc_seed}")
        require(all(math.isfinite(x) and x > 0 for x in self.init_scale_list), "init_scales", f"every scale must be finite and > 0, got {self.init_scales}")
        require(all(0 < x <= 1 for x in self.train_fraction_list), "train_fractions", f"every fraction must be in (0, 1], got {self.train_fractions}")
        require(0 <= self.batch_norm_fraction <= 1, "batch_norm_fraction", f"must be in [0, 1], got {self.batch_norm_fraction}")
        require(all(1 <= x <= 8 for x in self.depth_list), "depths", f"every depth must be in 1..8, got {self.depths}")
        require(not self.structure_copies or not (self.init_scale_list or self.train_fraction_list or self.depth_list), "structure_copies",
                "copies are made of variants at init scale 1, all data and one hidden layer: drop --init-scales, --train-fractions and --depths")
        require(not self.copy_kinds or self.structure_copies, "copy_kinds", "needs --structure-copies (the kinds of its copies)")
        require(len(set(self.copy_kind_list)) == len(self.copy_kind_list), "copy_kinds", f"names a kind twice: {self.copy_kinds}")
        require(all(math.isfinite(x) and x > 0 for x in self.demo_length_factor_list), "demo_length_factors",
                f"every factor must be finite and > 0, got {self.demo_length_factors}")

    @property
    def control(self) -> ControlConfig:
        """How every stage's policy sees a run and acts on it."""
        return ControlConfig(decision_interval=self.decision_interval, max_lr_factor=self.max_lr_factor, inputs=self.inputs,
                             max_lr_rise=self.max_lr_rise, start_decision_interval=self.start_decision_interval, start_steps=self.start_steps,
                             distance_skips_zero_start=self.distance_skips_zero_start, grad_norms_skip_zero_start=self.grad_norms_skip_zero_start)

    @property
    def init_scale_list(self) -> list[float]:
        return parse_list(self.init_scales, "init_scales", float, optional=True)

    @property
    def copy_kind_list(self) -> list[str]:
        return parse_list(self.copy_kinds, "copy_kinds", str, tuple(COPY_KINDS), optional=True) or list(DEFAULT_COPY_KINDS)

    @property
    def depth_list(self) -> list[int]:
        return parse_list(self.depths, "depths", int, optional=True)

    @property
    def demo_length_factor_list(self) -> list[float]:
        return parse_list(self.demo_length_factors, "demo_length_factors", float, optional=True)

    def demo_lengths(self, steps: int) -> list[int]:
        """The run lengths of a ``steps``-step variant's demonstrations (``--demo-length-factors``), each once, in order."""
        lengths = [min(self.max_steps, max(self.min_steps, round(steps * f))) for f in self.demo_length_factor_list] or [steps]
        return list(dict.fromkeys(lengths))

    @property
    def train_fraction_list(self) -> list[float]:
        return parse_list(self.train_fractions, "train_fractions", float, optional=True)


# A rerun may add DAgger rounds or PPO iterations; anything else would mix data made under different recipes.
_RESUMABLE = ("dagger_rounds", "ppo_iterations", "work")


def check_same_recipe(recipe: dict, record: Path, defaults: dict | None = None) -> None:
    """Refuse a work folder whose ``record`` (JSON) was written for another recipe; write it if new.

    A setting missing from ``record`` counts as its value in ``defaults`` (a setting added to the
    recipe since the folder was made, which then had its default behaviour).
    """
    if record.is_file():
        saved = {**(defaults or {}), **json.loads(record.read_text())}
        changed = sorted(k for k in set(saved) | set(recipe) if saved.get(k) != recipe.get(k))
        if changed:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {recipe.get(k)!r}" for k in changed)
            raise ConfigError("work", f"{record.parent} was made by another recipe ({details}); use another --work")
        return
    write_json(record, recipe)


def run_general_training(config: GeneralTrainConfig, progress: bool = True) -> dict[str, Path]:
    """Variants -> oracle sweeps -> demonstrations -> BC -> DAgger rounds; the policy of each stage."""
    from tqdm.auto import tqdm

    from learned_lr.policy import load_policy
    from learned_lr.settings import PolicyConfig
    from learned_lr.tasks.seeds import DAGGER_SEED_START
    from learned_lr.training.bc import bc_policy_is_current, collect_demonstrations, train_bc
    from learned_lr.training.config import CollectConfig
    from learned_lr.training.dagger import collect_policy_states, merge_demonstrations
    from learned_lr.training.distribution import ORACLE_SHAPES, sample_variants, tune_variant
    from learned_lr.training.experts import expert_schedule
    from learned_lr.training.rollout import ScheduleController

    work = Path(config.work)
    recipe = {k: v for k, v in dataclasses.asdict(config).items() if k not in _RESUMABLE}
    check_same_recipe(recipe, work / "general_train.json", defaults={k: v for k, v in dataclasses.asdict(GeneralTrainConfig()).items() if k in recipe})
    variants = sample_variants(config.variants_per_family, config.min_steps, config.max_steps, config.seed,
                               config.init_scale_list, config.train_fraction_list, config.stratify_optimizers, config.depth_list,
                               config.batch_norm_fraction, config.batch_norm_copies, config.structure_copies,
                               config.copy_kind_list)
    oracles = {v.name: tune_variant(v, work / "sweeps", config.sweep_points, config.sweep_seeds) for v in tqdm(variants, desc="oracle sweeps", disable=not progress)}
    write_json(work / "variants.json", [{"name": v.name, "task": v.task.setting(), "steps": v.steps,
                                         "oracle_shape": oracles[v.name]["shape"], "oracle_lr": oracles[v.name]["lr"]} for v in variants])
    control = config.control

    def collect_config(variant, runs: int, out: Path, lengths: list[int] | None = None) -> CollectConfig:
        tuned = oracles[variant.name]["lr"]
        total_steps = ",".join(map(str, lengths or [variant.steps]))
        return CollectConfig(task=variant.task, control=control, experts=oracles[variant.name]["shape"], total_steps=total_steps,
                             runs_per_setting=runs, min_peak_lr=tuned * config.min_multiplier, max_peak_lr=tuned * config.max_multiplier,
                             action_noise=config.action_noise, target_peak_lr=tuned, near_target_fraction=config.near_tuned_fraction,
                             seed=variant.demo_seed, out=str(out))

    def oracle(variant) -> ScheduleController:
        return ScheduleController(expert_schedule(oracles[variant.name]["shape"]), control, target_peak_lr=oracles[variant.name]["lr"])

    def clone(data: Path, out: Path) -> Path:
        bc = BCConfig(policy=PolicyConfig(d_model=config.d_model, layers=config.layers), demos=str(data), experts=",".join(ORACLE_SHAPES),
                      epochs=config.bc_epochs, seed=config.seed if config.bc_seed < 0 else config.bc_seed, quantile=config.bc_quantile,
                      out=str(out))
        if not bc_policy_is_current(bc):
            train_bc(bc, progress=progress)
        return out / "policy.safetensors"

    sources = [work / "demos" / v.name for v in variants]
    for variant, folder in zip(tqdm(variants, desc="demonstrations", disable=not progress), sources):
        collect_demonstrations(collect_config(variant, config.demo_runs, folder, config.demo_lengths(variant.steps)), progress=False)
    merge_demonstrations(sources, work / "bc" / "data" / "demos.safetensors")
    paths = {"bc": clone(work / "bc" / "data", work / "bc")}
    for round_index in range(1, config.dagger_rounds + 1):
        round_dir = work / "dagger" / f"round-{round_index}"
        policy = load_policy(paths["bc" if round_index == 1 else f"dagger-{round_index - 1}"])
        for variant in tqdm(variants, desc=f"DAgger round {round_index}", disable=not progress):
            folder = round_dir / "states" / variant.name
            first_seed = DAGGER_SEED_START + round_index * 4000 + variant.ordinal * 400
            collect_policy_states(policy, oracle(variant), collect_config(variant, config.dagger_runs, folder), first_seed, folder, progress=False)
            sources.append(folder)
        merge_demonstrations(sources, round_dir / "data" / "demos.safetensors")
        paths[f"dagger-{round_index}"] = clone(round_dir / "data", round_dir / "bc")
    if config.ppo_iterations:
        from learned_lr.training.config import PPOConfig
        from learned_lr.training.ppo import train_ppo

        start = paths[f"dagger-{config.dagger_rounds}" if config.dagger_rounds else "bc"]
        ppo = PPOConfig(init=str(start), variants=str(work / "variants.json"), min_multiplier=config.min_multiplier,
                        max_multiplier=config.max_multiplier, iterations=config.ppo_iterations, runs_per_iteration=config.ppo_runs,
                        seed=config.seed, out=str(work / "ppo"))
        paths["ppo"] = train_ppo(ppo, progress=progress)
    return paths

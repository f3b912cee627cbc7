"""`learned-lr claims`: the proposal's claims, and what PPO adds, on the general policy's task distribution.

Every PPO arm starts where a `general-train` recipe ends (its ``work`` folder: the training
variants with their tuned-LR oracles, and its last DAgger policy) and gets the same budget:
``iterations`` of ``runs`` trainee runs spread over ``variants_per_iteration`` variants, base LR =
the variant's tuned LR x log-uniform [``min_multiplier``, ``max_multiplier``] (so x3 and x10 are
in every iteration's range), returns scaled per decision (``PPOConfig.return_scale``). The arms:

* **PPO**: from the DAgger policy, the proposal's reward, W = 512 (the method), at every seed of ``seeds``;
* **(a) random init**: a random actor of the DAgger policy's shape and controls, no KL anchor;
* **(b) no stability term**: the proposal's reward with l1 = 0;
* **(c) single-step observation**: from a BC policy cloned with W = 1 on the DAgger policy's own training data;
* **(d) Subramanian et al.**: random init, W = 1, their inputs and their reward.

``levers`` are PPO from the DAgger policy with one setting changed, the obvious things to try when
PPO does not improve on its start: ``strong-kl`` (KL weight x10, so the policy stays near what
generalized), ``final-reward`` (the reward is -log of the run's final normalized validation loss,
the quantity the benchmark scores, undiscounted), ``long-critic-warmup`` (the critic alone for 6
iterations instead of 2), ``long-runs`` (every rollout twice its variant's length: more decisions per
episode, twice the cost). Each is compared with the DAgger start and with PPO, seed by seed.

The arms (a)-(d) and the levers run at the seeds of ``arm_seeds``, but those named in ``seeded_arms``,
which run at every PPO seed of ``seeds``: each is then paired with PPO seed by seed, so its interval holds
the spread of PPO training seeds too (the comparisons that matter most). Every policy (the BC and DAgger stages, each
PPO run's final policy, (c)'s W = 1 start, the main arm's validation-chosen snapshot unless that is the start or the end) is scored on the benchmark
suite next to the fixed schedules (and whatever else ``contenders`` names), on both sides of the
declared split. No arm, seed or iteration is chosen by a held-out family's result. The PPO seeds of
``curve_seeds`` also have every validation snapshot scored there: the benchmark score per PPO
iteration on both splits (shown, never used to pick a snapshot).

Each claim is a paired comparison over the same benchmark cells: per (PPO seed, family,
multiplier, evaluation seed), ``d = log(loss_A / loss_B)``; the verdict comes from the 95% t-interval
of the mean of d per split: "supported" where it lies wholly on the claimed side of 0,
"contradicted" on the other, else "not separable at this budget". Early safety (claim 3): runs per
PPO iteration that diverged or rose above their starting loss (``ppo.spiked``), first
``early_iterations`` iterations, from BC/DAgger vs from a random init.

Example:
    >>> run_claims(ClaimsConfig(general_work="runs/general-k32-line", iterations=20))   # doctest: +SKIP
    PosixPath('results/claims/claims.md')
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from learned_lr.experiments.stats import mean_ci
from learned_lr.files import write_json, write_text
from learned_lr.settings import ConfigError, RewardConfig, arg, parse_list, require

ARMS = ("random-init", "no-stability", "single-step", "subramanian")
ARM_LABELS = {"random-init": "(a) random init", "no-stability": "(b) no stability term", "single-step": "(c) single-step observation",
              "subramanian": "(d) Subramanian et al."}
LEVERS = ("strong-kl", "final-reward", "long-critic-warmup", "long-runs")
LEVER_LABELS = {"strong-kl": "PPO + KL weight x10", "final-reward": "PPO + final-loss reward", "long-critic-warmup": "PPO + 6 critic-only iterations",
                "long-runs": "PPO + runs twice as long"}


@dataclass(frozen=True)
class ClaimsConfig:
    """`learned-lr claims`: PPO ablations on the general policy's distribution, judged on the benchmark with paired CIs."""

    general_work: str = arg("runs/general-k32-line", "a finished `general-train` work folder (variants.json, dagger/round-K/bc)")
    iterations: int = arg(20, "PPO iterations per run (the same for every arm)")
    runs: int = arg(16, "trainee runs per PPO iteration")
    variants_per_iteration: int = arg(4, "distinct training variants per PPO iteration")
    min_multiplier: float = arg(0.05, "base LR = a variant's tuned LR x a multiplier drawn log-uniformly from [min, max]")
    max_multiplier: float = arg(20.0, "upper end of the multipliers")
    kl_coef: float = arg(0.1, "KL(policy || start) weight of the arms that start from a trained policy")
    validate_every: int = arg(5, "iterations between validation snapshots (training variants, validation seeds)")
    seeds: str = arg("0,1", "PPO training seeds of the main arm (PPO from DAgger)")
    arms: str = arg(",".join(ARMS), f"comma-separated ablation arms ({', '.join(ARMS)}), or '' for none")
    levers: str = arg("", f"comma-separated PPO levers ({', '.join(LEVERS)}): PPO from DAgger with one setting changed, or '' for none")
    arm_seeds: str = arg("0", "PPO training seeds of each ablation arm and lever (but those of --seeded-arms)")
    seeded_arms: str = arg("", "comma-separated arms and levers that run at every seed of --seeds instead, each paired with PPO "
                                "seed by seed (e.g. no-stability,single-step)")
    curve_seeds: str = arg("", "PPO seeds (of --seeds) whose every validation snapshot is also scored on the benchmark: the "
                                "benchmark score per iteration on both splits (ppo_benchmark_curve.png; reported, never used to choose)")
    early_iterations: int = arg(5, "first PPO iterations counted for early safety")
    suite: str = arg("small", "benchmark suite the policies are scored on")
    families: str = arg("", "comma-separated benchmark families ('': the benchmark's default, every family but llm-lora)")
    contenders: str = arg("linear-warmup,cosine,polynomial,constant", "benchmark contenders beside the policies (the experts are needed "
                          "for the excess columns; add LR-free optimizers by name)")
    benchmark_work: str = arg("runs/benchmark-small", "the benchmark's cache of sweeps and cells (shared with `learned-lr benchmark`)")
    work: str = arg("runs/claims", "folder for the PPO runs and the W = 1 BC policy (resumable)")
    out: str = arg("results/claims", "output folder: claims.md, claims.json, ppo_curve.png, il_ppo_result.png, benchmark.*")

    def __post_init__(self) -> None:
        require(self.iterations > 0 and self.runs > 0, "iterations", f"iterations and runs must be > 0, got {self.iterations}, {self.runs}")
        require(1 <= self.variants_per_iteration <= self.runs, "variants_per_iteration", f"must be in 1..runs, got {self.variants_per_iteration}")
        require(0 < self.min_multiplier <= 1 <= self.max_multiplier and math.isfinite(self.max_multiplier), "min_multiplier",
                f"need 0 < min_multiplier <= 1 <= max_multiplier, got {self.min_multiplier}, {self.max_multiplier}")
        require(self.validate_every >= 0 and self.early_iterations > 0, "validate_every", "validate_every >= 0, early_iterations > 0")
        require(bool(self.seed_list), "seeds", "give at least one PPO seed")
        self.arm_list
        self.lever_list
        parse_list(self.arm_seeds, "arm_seeds", int)
        unknown = sorted(set(self.seeded_arm_list) - set(self.arm_list) - set(self.lever_list))
        require(not unknown, "seeded_arms", f"{', '.join(unknown)} is not among --arms or --levers")
        strays = sorted(set(self.curve_seed_list) - set(self.seed_list))
        require(not strays, "curve_seeds", f"seed {', '.join(map(str, strays))} is not among --seeds")
        require(not self.curve_seed_list or self.validate_every > 0, "curve_seeds", "needs --validate-every > 0 (the snapshots it scores)")
        self.family_list  # an unknown family fails here, in one line

    @property
    def family_list(self) -> list[str]:
        from learned_lr.experiments.suites import DEFAULT_FAMILIES, FAMILY_NAMES

        return parse_list(self.families, "families", str, FAMILY_NAMES) if self.families.strip() else list(DEFAULT_FAMILIES)

    @property
    def seed_list(self) -> list[int]:
        return parse_list(self.seeds, "seeds", int)

    @property
    def arm_list(self) -> list[str]:
        return parse_list(self.arms, "arms", str, ARMS) if self.arms.strip() else []

    @property
    def lever_list(self) -> list[str]:
        return parse_list(self.levers, "levers", str, LEVERS) if self.levers.strip() else []

    @property
    def seeded_arm_list(self) -> list[str]:
        return parse_list(self.seeded_arms, "seeded_arms", str, ARMS + LEVERS) if self.seeded_arms.strip() else []

    @property
    def curve_seed_list(self) -> list[int]:
        return parse_list(self.curve_seeds, "curve_seeds", int) if self.curve_seeds.strip() else []

    def seeds_of(self, arm: str) -> list[int]:
        """The PPO training seeds an ablation arm or lever runs at."""
        return self.seed_list if arm in self.seeded_arm_list else parse_list(self.arm_seeds, "arm_seeds", int)


def _last_dagger_policy(general_work: Path) -> tuple[Path, Path]:
    """The recipe's last stage (its policy and the demonstrations it was cloned from)."""
    rounds = sorted((p for p in (general_work / "dagger").glob("round-*") if (p / "bc" / "policy.safetensors").is_file()),
                    key=lambda p: int(p.name.split("-")[1]))
    if not rounds or not (general_work / "variants.json").is_file():
        raise ConfigError("general_work", f"{general_work} holds no finished general-train recipe (variants.json, dagger/round-K/bc); run general-train first")
    return rounds[-1] / "bc" / "policy.safetensors", rounds[-1] / "data"


def _single_step_start(config: ClaimsConfig) -> Path:
    """Where (c)'s W = 1 BC start is trained, read by its PPO run and scored."""
    return Path(config.work) / "bc-w1" / "policy.safetensors"


def ppo_configs(config: ClaimsConfig) -> dict[str, list]:
    """Every PPO run of the experiment by arm label (one per seed), all on the same budget."""
    from learned_lr.policy import load_policy
    from learned_lr.training.config import PPOConfig

    general, work = Path(config.general_work), Path(config.work)
    start, _ = _last_dagger_policy(general)
    shape = load_policy(start)
    control, policy = shape.control_config, shape.policy_config
    common = dict(variants=str(general / "variants.json"), iterations=config.iterations, runs_per_iteration=config.runs,
                  variants_per_iteration=config.variants_per_iteration, min_multiplier=config.min_multiplier, max_multiplier=config.max_multiplier,
                  return_scale="per-decision", validate_every=config.validate_every, kl_coef=config.kl_coef)
    subramanian = dict(control=dataclasses.replace(control, window=1, inputs="subramanian"), policy=dataclasses.replace(policy, patch=1))
    arms = {
        "random-init": lambda s: dict(init="random", kl_coef=0.0, control=control, policy=policy),
        "no-stability": lambda s: dict(init=str(start), reward=RewardConfig(stability_weight=0.0)),
        "single-step": lambda s: dict(init=str(_single_step_start(config))),
        "subramanian": lambda s: dict(init="random", kl_coef=0.0, reward=RewardConfig(kind="subramanian"), **subramanian),
    }
    runs = {"PPO": [PPOConfig(**{**common, "init": str(start), "seed": s, "out": str(work / "ppo" / f"seed-{s}")}) for s in config.seed_list]}
    levers = {
        "strong-kl": dict(kl_coef=10 * config.kl_coef),
        "final-reward": dict(reward=RewardConfig(kind="final", discount=1.0)),
        "long-critic-warmup": dict(critic_warmup_iterations=6),
        "long-runs": dict(run_length_scale=2.0),
    }
    for arm in config.arm_list:
        runs[ARM_LABELS[arm]] = [PPOConfig(**{**common, **arms[arm](s), "seed": s, "out": str(work / arm / f"seed-{s}")})
                                 for s in config.seeds_of(arm)]
    for lever in config.lever_list:
        runs[LEVER_LABELS[lever]] = [PPOConfig(**{**common, "init": str(start), **levers[lever], "seed": s, "out": str(work / lever / f"seed-{s}")})
                                     for s in config.seeds_of(lever)]
    return runs


def _train_single_step_start(config: ClaimsConfig) -> None:
    """(c)'s start: BC with W = 1 on the DAgger policy's own training data, same network and epochs."""
    from learned_lr.policy import load_policy
    from learned_lr.training.bc import bc_policy_is_current, train_bc
    from learned_lr.training.config import BCConfig

    start, data = _last_dagger_policy(Path(config.general_work))
    dagger = load_policy(start)
    recipe = dagger.meta.get("bc_config", {})
    bc = BCConfig(policy=dataclasses.replace(dagger.policy_config, patch=1), demos=str(data), window=1,
                  experts=recipe.get("experts", "linear-warmup,cosine"), epochs=int(recipe.get("epochs", 20)), seed=int(recipe.get("seed", 0)),
                  out=str(_single_step_start(config).parent))
    if not bc_policy_is_current(bc):
        train_bc(bc)


def paired_diffs(result: dict, a: str, b: str, families: list[str]) -> list[float]:
    """log(loss_a / loss_b) per benchmark cell of ``families`` and evaluation seed: the same runs but for the scheduler."""
    out = []
    for family in families:
        rows = result["per_family"][family]["rows"]
        for m, cell in rows[a]["per_multiplier"].items():
            out += [math.log(x / y) for x, y in zip(cell["test_losses"], rows[b]["per_multiplier"][m]["test_losses"])]
    return out


def verdict(stat: dict) -> str:
    """Every claim here says A (the method) ends lower than B: 'supported' if the CI of mean log(A/B) lies below 0,
    'contradicted' if above, else 'not separable at this budget'.

    >>> verdict({"mean": -0.1, "ci": 0.05}), verdict({"mean": 0.1, "ci": 0.05}), verdict({"mean": -0.1, "ci": 0.2})
    ('supported', 'contradicted', 'not separable at this budget')
    """
    low, high = stat["mean"] - stat["ci"], stat["mean"] + stat["ci"]
    if math.isfinite(low) and math.isfinite(high) and high < 0:
        return "supported"
    if math.isfinite(low) and math.isfinite(high) and low > 0:
        return "contradicted"
    return "not separable at this budget"


def early_safety(ppo_out: Path, iterations: int) -> list[int]:
    """Runs that diverged or spiked, per iteration, over the first ``iterations`` of a PPO run."""
    rows = list(csv.DictReader((ppo_out / "ppo_log.csv").open()))[:iterations]
    return [int(r["diverged"]) + int(r["spiked"]) for r in rows]


def run_claims(config: ClaimsConfig, progress: bool = True) -> Path:
    from learned_lr.experiments.benchmark import contenders, markdown_report, run_benchmark
    from learned_lr.experiments.claims_report import claims_markdown, plot_benchmark_curve, plot_il_ppo, plot_ppo_curves
    from learned_lr.experiments.suites import SUITES
    from learned_lr.policy import load_policy
    from learned_lr.training.distribution import HELD_OUT_FAMILIES, TRAINING_FAMILIES
    from learned_lr.training.ppo import train_ppo

    general, out = Path(config.general_work), Path(config.out)
    start, _ = _last_dagger_policy(general)
    if "single-step" in config.arm_list:
        _train_single_step_start(config)
    runs = ppo_configs(config)
    policies = [("BC", str(general / "bc" / "policy.safetensors")), ("DAgger (start)", str(start))]
    if "single-step" in config.arm_list:  # (c) starts from its own clone: scored, so its PPO can be read against its start
        policies.append(("(c) start: BC with W = 1", str(_single_step_start(config))))
    # PPO seed -> the iteration its validation runs chose; scored as its own row unless it is the start (0), the final
    # policy or one of the seed's benchmark-curve snapshots
    validation_best = {}
    curve_labels: dict[str, dict[int, str]] = {}  # curve seed -> iteration -> benchmark label (0: the start, the last: the final policy)
    for label, configs in runs.items():
        for ppo in configs:
            path = train_ppo(ppo, progress=progress)
            policies.append((f"{label} s{ppo.seed}", str(path)))
            best = Path(ppo.out) / "best_policy.safetensors"
            snapshots = _snapshots(Path(ppo.out), ppo.iterations) if label == "PPO" and ppo.seed in config.curve_seed_list else {}
            if label == "PPO" and best.is_file():
                validation_best[f"s{ppo.seed}"] = int(load_policy(best).meta["iteration"])
                # Scored as its own row unless it is the start, the final policy or a curve snapshot (scored below):
                # the same actor under two labels would run the same 105 cells twice.
                if 0 < validation_best[f"s{ppo.seed}"] < ppo.iterations and validation_best[f"s{ppo.seed}"] not in snapshots:
                    policies.append((f"PPO validation-best s{ppo.seed}", str(best)))
            if snapshots:
                policies += [(f"PPO s{ppo.seed} iteration {it}", str(snapshot)) for it, snapshot in snapshots.items()]
                curve_labels[f"s{ppo.seed}"] = {0: "DAgger (start)", **{it: f"PPO s{ppo.seed} iteration {it}" for it in snapshots},
                                                ppo.iterations: f"PPO s{ppo.seed}"}
    families = config.family_list
    result = run_benchmark(SUITES[config.suite], families, contenders(parse_list(config.contenders, "contenders", str), policies),
                           Path(config.benchmark_work), progress=progress)
    splits = {"training": [f for f in families if f in TRAINING_FAMILIES], "held-out": [f for f in families if f in HELD_OUT_FAMILIES]}

    def compare(a_label: str, b_label: str) -> dict:
        out_rows = {}
        for split, members in splits.items():
            per_seed = [paired_diffs(result, a, b, members) for a, b in _pairs(runs, a_label, b_label)]
            stat = {**mean_ci([d for diffs in per_seed for d in diffs]), "cells": sum(map(len, per_seed)),
                    "per_seed": [float(np.mean(diffs)) for diffs in per_seed]}
            out_rows[split] = {**stat, "verdict": verdict(stat)}
        return out_rows

    comparisons = {"(e) PPO vs its DAgger start": compare("PPO", "DAgger (start)")}
    for arm in config.arm_list:
        comparisons[f"PPO vs {ARM_LABELS[arm]}"] = compare("PPO", ARM_LABELS[arm])
    for lever in config.lever_list:
        comparisons[f"{LEVER_LABELS[lever]} vs the DAgger start"] = compare(LEVER_LABELS[lever], "DAgger (start)")
        comparisons[f"{LEVER_LABELS[lever]} vs PPO"] = compare(LEVER_LABELS[lever], "PPO")
    safety = {label: {f"s{p.seed}": early_safety(Path(p.out), config.early_iterations) for p in configs} for label, configs in runs.items()}
    curves = {f"{label} s{p.seed}": str(Path(p.out)) for label, configs in runs.items() for p in configs}
    validation_change = {f"s{p.seed}": _validation_change(Path(p.out)) for p in runs["PPO"]}
    benchmark_curve = {seed: {"iterations": sorted(labels), **{split: [result["summary_by_split"][split][labels[it]]["mean_excess"]
                                                                        for it in sorted(labels)] for split in splits if splits[split]}}
                       for seed, labels in curve_labels.items()}
    report = {"config": dataclasses.asdict(config), "comparisons": comparisons, "early_safety": safety, "policies": dict(policies),
              "validation_best_iteration": validation_best, "benchmark_curve": benchmark_curve,
              "validation_change": validation_change,
              "summary_by_split": result["summary_by_split"]}
    write_json(out / "claims.json", report)
    write_json(out / "benchmark.json", result)
    write_text(out / "benchmark.md", f"# learned-lr claims: the benchmark of every policy\n\n{markdown_report(result)}")
    plot_ppo_curves(curves, out / "ppo_curve.png")
    if benchmark_curve:
        plot_benchmark_curve(benchmark_curve, {seed: curves[f"PPO {seed}"] for seed in benchmark_curve}, out / "ppo_benchmark_curve.png")
    ppo_labels = [f"PPO s{p.seed}" for p in runs["PPO"]]
    stages = {"BC": ["BC"], "DAgger (start)": ["DAgger (start)"], f"PPO (mean of {len(ppo_labels)} seeds)" if len(ppo_labels) > 1 else "PPO": ppo_labels}
    plot_il_ppo(result, stages, [label for label, _ in policies], out / "il_ppo_result.png")
    write_text(out / "claims.md", claims_markdown(report, result))
    return out / "claims.md"


def _validation_change(ppo_out: Path) -> dict[int, float]:
    """A PPO run's validation score vs its start per validated iteration, as a loss ratio - 1 (geometric mean over the runs)."""
    rows = csv.DictReader((ppo_out / "validation.csv").open()) if (ppo_out / "validation.csv").is_file() else []
    return {int(row["iteration"]): math.expm1(float(row["change_vs_start"])) for row in rows}


def _snapshots(ppo_out: Path, iterations: int) -> dict[int, Path]:
    """A PPO run's validation snapshots strictly between its start and its end, by iteration."""
    from learned_lr.training.ppo import snapshot_path

    validated = [int(row["iteration"]) for row in csv.DictReader((ppo_out / "validation.csv").open())]
    return {it: snapshot_path(ppo_out, it) for it in sorted(validated) if 0 < it < iterations}


def _pairs(runs: dict, a_label: str, b_label: str) -> list[tuple[str, str]]:
    """Benchmark labels to pair: A's runs seed by seed against B's run of the same seed (or B itself if B is one policy)."""
    a_runs = {p.seed: f"{a_label} s{p.seed}" for p in runs[a_label]}
    if b_label not in runs:
        return [(a, b_label) for a in a_runs.values()]
    b_runs = {p.seed: f"{b_label} s{p.seed}" for p in runs[b_label]}
    return [(a_runs[s], b_runs[s]) for s in sorted(set(a_runs) & set(b_runs))]


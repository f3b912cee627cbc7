"""`learned-lr validate`: policies compared on validation runs of the training families, the ground for choosing one.

Issue 18 asks that every choice between policies (a checkpoint, a recipe, a BC draw) look only at
training-family runs. The benchmark's five training families at 5 seeds are one such ruler, but there
one run at chance level moves a family's mean by 15 points and decides most comparisons
(docs/results.md section 7). This is a larger, paired one: a fresh draw of variants from the issue's
whole training distribution (widths, depths, batch sizes, initial-weight scales, data fractions,
SGD/Adam/AdamW, runs of 300-3,000 steps), each with its tuned LR from a cached sweep
(``training.distribution.tune_variant``), run by every policy at that LR x each multiplier on validation
seeds (``tasks.seeds``: no stage trains there). Every policy runs the same runs, so differences are paired.

A run's score is the log of its mean validation loss over its last 10% of steps (``training.validation``);
its *excess* is that minus the score of the variant's tuned expert (its sweep's winner, run exactly on
the same seed), so ``exp(mean excess) - 1`` is the geometric-mean loss ratio to a user who tuned the LR.
A run *fails* if it diverged or ended no lower than its first validation loss. Against the reference
(the first policy) each policy gets the mean paired difference with a 95% bootstrap interval over
variants (a variant's runs resampled together: they share a model and a seed).

Example:
    >>> result = run_validation(ValidateConfig(policies="default=bundled,general=general"))  # doctest: +SKIP
    >>> print(markdown_report(result))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from learned_lr.settings import arg, labeled_paths, parse_list, require
from learned_lr.training.distribution import MAX_SWEEP_SEEDS

BOOTSTRAP_RESAMPLES = 2000
# The validation set's seed offset inside the validation range: PPO's validation runs use its start.
SET_SEED_OFFSET = 5_000
MAX_DEPTH = 16


@dataclass(frozen=True)
class ValidateConfig:
    """`learned-lr validate`: every policy on the same validation runs of the training families; paired against the first."""

    policies: str = arg("default=bundled", "comma-separated LABEL=POLICY (a bundled policy's name, or a checkpoint path); the first "
                        "is the reference every other is paired against")
    variants_per_family: int = arg(4, "variants drawn per training family")
    min_steps: int = arg(300, "variant run lengths are drawn log-uniformly from [min_steps, max_steps]")
    max_steps: int = arg(3000, "upper end of the run lengths")
    depths: str = arg("1,2,3", "hidden-layer counts the MLP-family variants draw from (empty: 1; up to 16, deeper than any "
                      "policy trained on, to ask how one reads a deep model)")
    zero_head: bool = arg(False, "every drawn variant's output layer starts at zero (TaskConfig.zero_head; name suffix -z): "
                          "layers that start at zero, or get a zero first gradient, on the training families")
    families: str = arg("", "comma-separated training families to keep of the draw (empty: all); each kept variant keeps the name "
                        "and seed it has in the whole draw")
    init_scales: str = arg("0.5,1,2", "initial-weight scales the variants draw from (empty: 1)")
    train_fractions: str = arg("0.1,0.3,1", "fractions of the training split the variants draw from (empty: 1)")
    multipliers: str = arg("0.1,0.3,1,3,10", "base LR = the variant's tuned LR x each of these")
    sweep_points: int = arg(5, "LRs of each variant's tuning sweep (as general-train's)")
    sweep_seeds: int = arg(1, "trainee seeds each (shape, LR) of a variant's tuning sweep is averaged over (1: the sweep every earlier draw used)")
    seed: int = arg(50, "seed of the variants' draw (general-train's recipes draw from their --seed, 0-9 so far)")
    work: str = arg("runs/validation", "folder for the sweeps and every run's result (resumable)")
    out: str = arg("results/validation", "folder for validation.md, validation.json and validation.png")

    def __post_init__(self) -> None:
        require(1 <= self.variants_per_family <= 9, "variants_per_family", f"must be in 1..9, got {self.variants_per_family}")
        require(1 < self.min_steps <= self.max_steps, "min_steps", f"need 1 < min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")
        require(2 <= self.sweep_points <= 5, "sweep_points", f"must be in 2..5, got {self.sweep_points}")
        require(1 <= self.sweep_seeds <= MAX_SWEEP_SEEDS, "sweep_seeds", f"must be in 1..{MAX_SWEEP_SEEDS}, got {self.sweep_seeds}")
        require(0 <= self.seed < 1000, "seed", f"must be in 0..999, got {self.seed}")
        require(len(self.policy_list) >= 1, "policies", "name at least one LABEL=POLICY")
        labels = [label for label, _ in self.policy_list]
        require(len(set(labels)) == len(labels), "policies", f"labels must be unique, got {', '.join(labels)}")
        require(len(self.multiplier_list) >= 1 and all(math.isfinite(m) and m > 0 for m in self.multiplier_list), "multipliers",
                f"need finite multipliers > 0, got {self.multipliers!r}")
        require(all(1 <= d <= MAX_DEPTH for d in self.depth_list), "depths", f"every depth must be in 1..{MAX_DEPTH}, got {self.depths}")
        self.family_list  # a held-out or unknown family fails here
        require(all(math.isfinite(x) and x > 0 for x in self.init_scale_list), "init_scales", f"every scale must be finite and > 0, got {self.init_scales}")
        require(all(0 < x <= 1 for x in self.train_fraction_list), "train_fractions", f"every fraction must be in (0, 1], got {self.train_fractions}")

    @property
    def policy_list(self) -> list[tuple[str, str]]:
        return labeled_paths(self.policies, "policies")

    @property
    def multiplier_list(self) -> list[float]:
        return parse_list(self.multipliers, "multipliers", float)

    @property
    def family_list(self) -> list[str]:
        from learned_lr.training.distribution import HELD_OUT_FAMILIES, TRAINING_FAMILIES  # (no torch)

        held_out = [f for f in HELD_OUT_FAMILIES if f in {x.strip() for x in self.families.split(",")}]
        require(not held_out, "families", f"{', '.join(held_out)} held out: validation runs training families only (choices must not see held-out ones)")
        return parse_list(self.families, "families", str, TRAINING_FAMILIES, optional=True) or list(TRAINING_FAMILIES)

    @property
    def depth_list(self) -> list[int]:
        return parse_list(self.depths, "depths", int, optional=True)

    @property
    def init_scale_list(self) -> list[float]:
        return parse_list(self.init_scales, "init_scales", float, optional=True)

    @property
    def train_fraction_list(self) -> list[float]:
        return parse_list(self.train_fractions, "train_fractions", float, optional=True)


def validation_set(config: ValidateConfig, progress: bool = True) -> tuple[list[dict], list[int]]:
    """The drawn variants of ``config.families`` with their tuned expert (shape, LR), each sweep cached under ``work/sweeps``,
    and each one's validation seed (its place in the whole draw sets it, so a family's runs are the same drawn alone)."""
    from tqdm.auto import tqdm

    from learned_lr.tasks.seeds import VALIDATION_SEED_START
    from learned_lr.training.distribution import Variant, sample_variants, tune_variant

    drawn = sample_variants(config.variants_per_family, config.min_steps, config.max_steps, config.seed, config.init_scale_list,
                            config.train_fraction_list, depths=config.depth_list)
    if config.zero_head:
        drawn = [Variant(f"{v.name}-z", v.ordinal, dataclasses.replace(v.task, zero_head=True), v.steps) for v in drawn]
    families = config.family_list
    kept = [(index, variant) for index, variant in enumerate(drawn) if variant.task.task in families]
    out = []
    for _, variant in tqdm(kept, desc="tuning sweeps", disable=not progress):
        oracle = tune_variant(variant, Path(config.work) / "sweeps", config.sweep_points, config.sweep_seeds)
        out.append({"name": variant.name, "family": variant.task.task, "task": variant.task.setting(), "steps": variant.steps,
                    "oracle_shape": oracle["shape"], "oracle_lr": oracle["lr"]})
    return out, [VALIDATION_SEED_START + SET_SEED_OFFSET + index for index, _ in kept]


def run_validation(config: ValidateConfig, progress: bool = True) -> dict:
    """Every policy's runs on the validation set (each cached per policy SHA-256 and variant), summarized."""
    from tqdm.auto import tqdm

    from learned_lr.bundled import resolve_policy
    from learned_lr.files import saved_or_computed
    from learned_lr.policy import load_policy, policy_sha256
    from learned_lr.training.validation import policy_runs, tuned_expert_run

    policies = {label: load_policy(resolve_policy(path)) for label, path in config.policy_list}  # a bad file fails before any run
    variants, seeds = validation_set(config, progress)
    work, multipliers = Path(config.work), config.multiplier_list
    experts = [saved_or_computed(work / "expert" / f"{v['name']}.json", {"variant": v, "seed": s}, lambda v=v, s=s: tuned_expert_run(v, s))
               for v, s in zip(tqdm(variants, desc="tuned experts", disable=not progress), seeds)]
    runs: dict[str, list[list[dict]]] = {}
    shas = {label: policy_sha256(policy) for label, policy in policies.items()}
    for label, policy in policies.items():
        sha = shas[label]
        policy.actor.eval()
        runs[label] = [saved_or_computed(work / "policies" / sha[:16] / f"{v['name']}.json",
                                         {"variant": v, "seed": s, "multipliers": multipliers, "policy_sha256": sha},
                                         lambda v=v, s=s: {"runs": policy_runs(policy.actor, v, s, multipliers)})["runs"]
                       for v, s in zip(tqdm(variants, desc=label, disable=not progress), seeds)]
    setting = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("policies", "work", "out")}
    return summarize(variants, experts, runs, multipliers) | {"setting": setting, "policy_paths": dict(config.policy_list),
                                                              "policy_sha256": shas}


# A variant whose tuned expert ends less than this far below its initial loss (log units: about 5%) has no LR that
# trains it on its validation seed: a deep SGD MLP that stays at chance at every LR of its sweep, a small-data one
# that overfits whatever the LR. Its "tuned LR" is the best of noise, so its multipliers say nothing about the LR
# scale, and a policy's "failed" runs there (ending at or above the start) are the expert's fate too.
MIN_EXPERT_GAIN = 0.05


def expert_trains(expert: dict, min_gain: float = MIN_EXPERT_GAIN) -> bool:
    """Whether a variant's tuned expert ended at least ``min_gain`` (log units) below its initial loss.

    >>> expert_trains({"score": 0.5, "start": 1.0, "diverged": False}), expert_trains({"score": 0.98, "start": 1.0, "diverged": False})
    (True, False)
    """
    return not expert["diverged"] and expert["score"] is not None and expert["score"] <= expert["start"] - min_gain


def trainable_only(result: dict, min_gain: float = MIN_EXPERT_GAIN) -> dict:
    """``result`` (a `validate` result or pooled draws) with only the variants whose tuned expert trains (``expert_trains``)."""
    keep = [i for i, expert in enumerate(result["experts"]) if expert_trains(expert, min_gain)]
    return {**result, "variants": [result["variants"][i] for i in keep], "experts": [result["experts"][i] for i in keep],
            "runs": {label: [rows[i] for i in keep] for label, rows in result["runs"].items()}}


def _failed(run: dict) -> bool:
    return bool(run["diverged"]) or run["score"] is None or run["score"] >= run["start"]


def summarize(variants: list[dict], experts: list[dict], runs: dict[str, list[list[dict]]], multipliers: list[float]) -> dict:
    """Per policy: mean excess over the tuned experts (all, per family, per multiplier), worst run, failures, paired vs the first.

    >>> v = [{"name": "a", "family": "digits"}, {"name": "b", "family": "digits"}]
    >>> e = [{"score": 0.0, "start": 1.0, "diverged": False}] * 2
    >>> run = lambda s: {"score": s, "start": 1.0, "diverged": False}
    >>> out = summarize(v, e, {"ref": [[run(0.1)], [run(0.3)]], "new": [[run(0.0)], [run(0.2)]]}, [1.0])
    >>> round(out["policies"]["new"]["vs_reference"]["mean"], 3), out["policies"]["new"]["failed_runs"]
    (-0.1, 0)
    """
    labels = list(runs)
    families = list(dict.fromkeys(v["family"] for v in variants))
    reference = labels[0]

    def excess_matrix(label: str) -> np.ndarray:  # variants x multipliers, a failed run's score taken as its start
        return np.array([[(r["start"] if r["score"] is None else r["score"]) - expert["score"] for r in row]
                         for row, expert in zip(runs[label], experts)], dtype=np.float64)

    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(variants), size=(BOOTSTRAP_RESAMPLES, len(variants)))
    ref = excess_matrix(reference)
    out = {}
    for label in labels:
        x = excess_matrix(label)
        diff = x - ref
        per_variant = diff.mean(axis=1)
        boot = per_variant[picks].mean(axis=1)
        out[label] = {
            "mean_excess": float(x.mean()),
            "per_family": {f: float(x[[v["family"] == f for v in variants]].mean()) for f in families},
            "per_multiplier": {f"{m:g}": float(x[:, j].mean()) for j, m in enumerate(multipliers)},
            "per_family_multiplier": {f: [float(x[[v["family"] == f for v in variants], j].mean()) for j in range(len(multipliers))]
                                      for f in families},
            "worst_run": float(x.max()),
            "worst_run_at": _where(variants, multipliers, np.unravel_index(int(x.argmax()), x.shape)),
            "failed_runs": sum(_failed(r) for row in runs[label] for r in row),
            "vs_reference": {"mean": float(diff.mean()), "low": float(np.quantile(boot, 0.025)), "high": float(np.quantile(boot, 0.975)),
                             "variants_better": int((per_variant < 0).sum()), "variants_worse": int((per_variant > 0).sum()),
                             "per_family": {f: float(diff[[v["family"] == f for v in variants]].mean()) for f in families}},
        }
        lr_ratio = _lr_vs_tuned(runs[label], experts)
        if lr_ratio is not None:  # runs saved before ``mean_lr`` was recorded have none to compare
            out[label]["lr_vs_tuned"] = {f"{m:g}": float(r) for m, r in zip(multipliers, np.exp(lr_ratio.mean(axis=0)))}
    expert_failed = sum(_failed(e) for e in experts)
    return {"reference": reference, "families": families, "multipliers": multipliers, "variants": variants, "experts": experts,
            "expert_failed_runs": expert_failed, "runs": runs, "policies": out}


def _lr_vs_tuned(rows: list[list[dict]], experts: list[dict]) -> np.ndarray | None:
    """log(run's mean LR / its tuned expert's), variants x multipliers; None if any run or expert has no ``mean_lr``.

    The oracle the policies imitate runs the tuned expert's schedule whatever the base LR, so a policy that read every
    run's LR scale right would be at 0 here at every multiplier: above, it spent more LR than the tuned user did.
    """
    if not all("mean_lr" in r for row in rows for r in row) or not all("mean_lr" in e for e in experts):
        return None
    return np.array([[math.log(r["mean_lr"] / e["mean_lr"]) for r in row] for row, e in zip(rows, experts)], dtype=np.float64)


def _where(variants: list[dict], multipliers: list[float], index: tuple) -> str:
    return f"{variants[int(index[0])]['name']} x{multipliers[int(index[1])]:g}"


def log_ratio_percent(log_ratio: float) -> str:
    """A mean log ratio as the percent change of the geometric-mean loss."""
    return f"{100 * math.expm1(log_ratio):+.1f}%"


def lr_spent_table(result: dict) -> list[str]:
    """Markdown lines: the LR each policy spent per multiplier (``lr_vs_tuned``); none if no policy's runs recorded it."""
    rows = [(label, row["lr_vs_tuned"]) for label, row in result["policies"].items() if "lr_vs_tuned" in row]
    if not rows:
        return []
    keys = [f"{m:g}" for m in result["multipliers"]]
    return (["", "The LR each policy spent: a run's mean LR over its tuned expert's on the same variant (geometric mean over "
             "variants). The oracle it imitates would read 1.00 at every multiplier; above 1, more LR than the tuned user:", "",
             "| policy | " + " | ".join(f"x{k}" for k in keys) + " |", "|---" * (1 + len(keys)) + "|"]
            + [f"| {label} | " + " | ".join(f"{ratio[k]:.2f}" for k in keys) + " |" for label, ratio in rows])


def _trainable_rows(result: dict) -> list[str]:
    """Markdown lines: where some variants' tuned expert does not train, each policy over the other variants alone."""
    kept = trainable_only(result)
    dropped = len(result["variants"]) - len(kept["variants"])
    if not dropped or not kept["variants"]:
        return []
    view = summarize(kept["variants"], kept["experts"], kept["runs"], result["multipliers"])
    lines = ["", f"{dropped} of {len(result['variants'])} variants' tuned expert ends less than {100 * MIN_EXPERT_GAIN:.0f}% below its "
             "initial loss (no LR trains them on this seed; every run there counts as failed). Over the other "
             f"{len(kept['variants'])}:", "", "| policy | mean excess | failed runs | vs reference | 95% interval |", "|---|---|---|---|---|"]
    for label, row in view["policies"].items():
        d = row["vs_reference"]
        paired = ("", "") if label == view["reference"] else (log_ratio_percent(d["mean"]), f"{log_ratio_percent(d['low'])} to {log_ratio_percent(d['high'])}")
        lines.append(f"| {label} | {log_ratio_percent(row['mean_excess'])} | {row['failed_runs']} | {paired[0]} | {paired[1]} |")
    return lines


def markdown_report(result: dict) -> str:
    """The validation tables: excess over the tuned experts, and paired differences against the reference."""
    families, multipliers, reference = result["families"], result["multipliers"], result["reference"]
    s = result["setting"]
    lines = [f"{len(result['variants'])} variants of the training families (seed {s['seed']}, {s['min_steps']}-{s['max_steps']} steps), "
             f"each at its tuned LR x {', '.join(f'{m:g}' for m in multipliers)}; one validation seed per variant. "
             "Excess: the geometric-mean validation loss (last 10% of steps) over the tuned expert's on the same seed.", "",
             "| policy | mean excess | " + " | ".join(families) + " | " + " | ".join(f"x{m:g}" for m in multipliers) + " | worst run | failed runs |",
             "|---" * (4 + len(families) + len(multipliers)) + "|"]
    for label, row in result["policies"].items():
        lines.append(f"| {label} | {log_ratio_percent(row['mean_excess'])} | " + " | ".join(log_ratio_percent(row["per_family"][f]) for f in families) + " | "
                     + " | ".join(log_ratio_percent(row["per_multiplier"][f"{m:g}"]) for m in multipliers)
                     + f" | {log_ratio_percent(row['worst_run'])} ({row['worst_run_at']}) | {row['failed_runs']} |")
    lines += ["", f"Paired against `{reference}` (mean over every run of the log-loss difference, as a percent; 95% bootstrap "
              "interval over variants; variants better / worse on their mean):", "",
              "| policy | vs reference | 95% interval | variants better / worse | " + " | ".join(families) + " |",
              "|---" * (4 + len(families)) + "|"]
    for label, row in result["policies"].items():
        if label == reference:
            continue
        d = row["vs_reference"]
        lines.append(f"| {label} | {log_ratio_percent(d['mean'])} | {log_ratio_percent(d['low'])} to {log_ratio_percent(d['high'])} | {d['variants_better']} / {d['variants_worse']} | "
                     + " | ".join(log_ratio_percent(d["per_family"][f]) for f in families) + " |")
    lines += lr_spent_table(result) + _trainable_rows(result)
    if result["expert_failed_runs"]:
        lines += ["", f"The tuned experts failed {result['expert_failed_runs']} run(s) (their sweep seed differs from the validation seed)."]
    return "\n".join(lines) + "\n"


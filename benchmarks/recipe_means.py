"""Per-recipe means over BC seeds of a benchmark's training-family scores (the recipe rules of docs/results.md section 7).

A recipe is a `general-train` setting; each of its BC seeds gives one bundled policy, a contender of
`learned-lr benchmark`. One BC draw moves a recipe's score by up to 15 points, so recipes are compared
by the mean over their seeds. For each recipe this prints, per seed and as the mean: the mean excess
over the training families and multipliers, the mean gap at x1, the mean excess per family, and the
runs that failed (a classifier's final test loss above 2.0, near ln 10 = chance on ten classes, or a run
the benchmark scored as diverged).

    python benchmarks/recipe_means.py results/training-5seeds-bncopy/benchmark.json \
        "default recipe=bundled,bc seed 1 as the default" "batch-norm copies=batch-norm copies as the default,..."
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from learned_lr.training.distribution import TRAINING_FAMILIES

FAILED_CLASSIFIER_LOSS = 2.0  # ten-class families: an untrained model scores ln 10 = 2.303
REGRESSION_FAMILIES = ("diabetes",)


def family_scores(report: dict, contender: str, family: str) -> tuple[float, list[str]]:
    """Mean excess over the multipliers of one contender on one family, and its failed runs ("x10: 2.303")."""
    table = report["per_family"][family]
    cells = table["rows"][contender]["per_multiplier"]
    best = table["best_tuned_expert_loss"]
    excess = float(np.mean([cell["test_loss"]["mean"] / best - 1 for cell in cells.values()]))
    failed = []
    for multiplier, cell in cells.items():
        if family in REGRESSION_FAMILIES:
            failed += [f"x{multiplier}: diverged"] * int(cell["diverged"])
        else:
            failed += [f"x{multiplier}: {loss:.3f}" for loss in cell["test_losses"] if loss > FAILED_CLASSIFIER_LOSS]
    return excess, failed


def recipe_summary(report: dict, contenders: list[str]) -> dict:
    """The mean over ``contenders`` (one per BC seed) of the training-family scores, and their failed runs."""
    training = report["summary_by_split"]["training"]
    missing = [c for c in contenders if c not in training]
    if missing:
        raise SystemExit(f"not in this benchmark's training families: {missing}; it has {sorted(training)}")
    per_seed = {}
    for contender in contenders:
        scores = {family: family_scores(report, contender, family) for family in TRAINING_FAMILIES if family in report["per_family"]}
        per_seed[contender] = {"mean_excess": training[contender]["mean_excess"], "gap_at_1": training[contender]["mean_gap_at_1"],
                               "worst_excess": training[contender]["worst_excess"],
                               "families": {f: s[0] for f, s in scores.items()}, "failed": {f: s[1] for f, s in scores.items() if s[1]}}
    families = list(next(iter(per_seed.values()))["families"])
    return {"per_seed": per_seed,
            "mean_excess": float(np.mean([s["mean_excess"] for s in per_seed.values()])),
            "gap_at_1": float(np.mean([s["gap_at_1"] for s in per_seed.values()])),
            "families": {f: float(np.mean([s["families"][f] for s in per_seed.values()])) for f in families},
            "failed_runs": sum(len(runs) for s in per_seed.values() for runs in s["failed"].values())}


def main(path: str, recipes: list[str]) -> None:
    report = json.loads(Path(path).read_text())
    for spec in recipes:
        name, _, contenders = spec.partition("=")
        summary = recipe_summary(report, [c.strip() for c in contenders.split(",") if c.strip()])
        print(f"== {name}")
        for contender, seed in summary["per_seed"].items():
            print(f"  {contender:48s} mean {100 * seed['mean_excess']:+.2f}%  worst {100 * seed['worst_excess']:+.1f}%  "
                  f"gap at x1 {100 * seed['gap_at_1']:+.2f}%  " + "  ".join(f"{f} {100 * v:+.1f}%" for f, v in seed["families"].items()))
            for family, runs in seed["failed"].items():
                print(f"      failed on {family}: {', '.join(runs)}")
        print(f"  {'mean over its seeds':48s} mean {100 * summary['mean_excess']:+.2f}%  gap at x1 {100 * summary['gap_at_1']:+.2f}%  "
              + "  ".join(f"{f} {100 * v:+.1f}%" for f, v in summary["families"].items()) + f"  failed runs {summary['failed_runs']}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2:])

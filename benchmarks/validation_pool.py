"""Several `learned-lr validate` draws pooled into one paired comparison.

One draw of 20 variants gives a paired interval of about +-12 points, too wide to tell a change of a
few percent from none (docs/results.md section 7). Pooling two or more draws (different ``--seed``,
the same policies and multipliers) resamples all their variants together: ``experiments.validate.
summarize`` on the concatenated variants, so the numbers are computed as `validate` computes them.
Each variant keeps its own draw's tuned expert and seed; names are prefixed with the draw's seed.

    python benchmarks/validation_pool.py results/validation-60/validation.json results/validation-61/validation.json
    python benchmarks/validation_pool.py --only default,skip A/validation.json B/validation.json   # the policies every draw ran
    python benchmarks/validation_pool.py --trainable-only A/validation.json B/validation.json     # where the tuned expert trains

``--trainable-only`` leaves out the variants whose tuned expert ends less than 5% below its initial loss
(``experiments.validate.expert_trains``): no LR trains them on their validation seed, so they say nothing about
the LR scale. It is a view for reading past draws; a rule says before its runs whether it judges on it.
"""

from __future__ import annotations

import json
import sys

from learned_lr.experiments.validate import log_ratio_percent, lr_spent_table, summarize, trainable_only


def pool(results: list[dict]) -> dict:
    """One ``summarize`` result over the variants of every draw (same policies, in the same order, and multipliers).

    >>> run = lambda s: {"score": s, "start": 1.0, "diverged": False}
    >>> draw = lambda seed, new: {"setting": {"seed": seed}, "multipliers": [1.0], "variants": [{"name": "a", "family": "digits"}],
    ...     "experts": [{"score": 0.0, "start": 1.0, "diverged": False}], "runs": {"ref": [[run(0.2)]], "new": [[run(new)]]}}
    >>> pooled = pool([draw(60, 0.1), draw(61, 0.2)])
    >>> [v["name"] for v in pooled["variants"]], round(pooled["policies"]["new"]["vs_reference"]["mean"], 3)
    (['60/a', '61/a'], -0.05)
    """
    if not results:
        raise ValueError("name at least one validation.json")
    labels, multipliers = list(results[0]["runs"]), results[0]["multipliers"]
    for result in results[1:]:
        if list(result["runs"]) != labels or result["multipliers"] != multipliers:
            raise ValueError(f"draws differ: policies {list(result['runs'])} x{result['multipliers']} against {labels} x{multipliers}; "
                             "run every draw with the same --policies (in the same order) and --multipliers")
    variants = [{**v, "name": f"{r['setting']['seed']}/{v['name']}"} for r in results for v in r["variants"]]
    experts = [e for r in results for e in r["experts"]]
    runs = {label: [row for r in results for row in r["runs"][label]] for label in labels}
    return summarize(variants, experts, runs, multipliers)


def report(pooled: dict) -> list[str]:
    """Markdown rows: each policy's mean excess and failed runs, its paired difference against the first, and the LR it spent."""
    lines = [f"{len(pooled['variants'])} variants pooled; paired against `{pooled['reference']}` (95% bootstrap interval over variants)", "",
             "| policy | mean excess | failed runs | vs reference | 95% interval | variants better / worse |", "|---|---|---|---|---|---|"]
    for label, row in pooled["policies"].items():
        paired = row["vs_reference"]
        versus = ("", "", "") if label == pooled["reference"] else (
            log_ratio_percent(paired["mean"]), f"{log_ratio_percent(paired['low'])} to {log_ratio_percent(paired['high'])}",
            f"{paired['variants_better']} / {paired['variants_worse']}")
        lines.append(f"| {label} | {log_ratio_percent(row['mean_excess'])} | {row['failed_runs']} | " + " | ".join(versus) + " |")
    return lines + lr_spent_table(pooled)  # where every draw's runs recorded their mean LR (`validate` since the twenty-fifth session)


def only(result: dict, labels: list[str]) -> dict:
    """``result`` with the runs of ``labels`` alone, in that order (the first is the reference)."""
    missing = [label for label in labels if label not in result["runs"]]
    if missing:
        raise ValueError(f"draw of seed {result['setting']['seed']} has no runs of {', '.join(missing)}")
    return {**result, "runs": {label: result["runs"][label] for label in labels}}


def main(args: list[str]) -> None:
    if {"-h", "--help"} & set(args):
        raise SystemExit(__doc__)
    trainable = "--trainable-only" in args
    args = [a for a in args if a != "--trainable-only"]
    labels = args[1].split(",") if args[:1] == ["--only"] and len(args) > 1 else None
    paths = args[2:] if labels else args
    if not paths:
        raise SystemExit(__doc__)
    results = []
    for path in paths:
        with open(path) as handle:
            result = json.load(handle) if labels is None else only(json.load(handle), labels)
        results.append(trainable_only(result) if trainable else result)
    pooled = pool(results)
    kept = f" (the variants whose tuned expert trains: {len(pooled['variants'])})" if trainable else ""
    print(f"seeds {', '.join(str(r['setting']['seed']) for r in results)}{kept}:\n")
    print("\n".join(report(pooled)))


if __name__ == "__main__":
    main(sys.argv[1:])

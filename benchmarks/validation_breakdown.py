"""Paired differences of a `learned-lr validate` result, broken down by the variants' structure.

A validation set draws each variant's depth (MLP families), initial-weight scale and training-data
fraction; `learned-lr validate`'s report pairs every policy with the first over all variants. This
prints the same paired mean and 95% bootstrap interval (``experiments.validate.summarize`` on a subset
of the variants, so the numbers are computed one way) per value of each drawn field: whether a change
of recipe helps the deep, small-init or small-data models it was aimed at, or the ordinary ones.

    python benchmarks/validation_breakdown.py results/validation-59-copies/validation.json
"""

from __future__ import annotations

import json
import sys

from learned_lr.experiments.validate import log_ratio_percent as _pct, summarize
from learned_lr.tasks.config import MLP_TASKS, TaskConfig

FIELDS = {"mlp_layers": "hidden layers (MLP families)", "init_scale": "initial scale", "train_fraction": "data fraction"}


def _value(variant: dict, field: str) -> float:
    """A variant's drawn ``field``; a task setting leaves out a field at its default."""
    return variant["task"].get(field, getattr(TaskConfig(), field))


def breakdown(result: dict) -> list[str]:
    """Markdown rows: per drawn field and value, each policy's paired difference against the reference."""
    variants, labels = result["variants"], list(result["runs"])
    lines = ["| field | value | variants | " + " | ".join(f"{label} vs {labels[0]} (95% interval)" for label in labels[1:]) + " |",
             "|---" * (3 + len(labels) - 1) + "|"]
    for field, title in FIELDS.items():
        eligible = [i for i, v in enumerate(variants) if field != "mlp_layers" or v["family"] in MLP_TASKS]
        for value in sorted({_value(variants[i], field) for i in eligible}):
            rows = [i for i in eligible if _value(variants[i], field) == value]
            subset = summarize([variants[i] for i in rows], [result["experts"][i] for i in rows],
                               {label: [result["runs"][label][i] for i in rows] for label in labels}, result["multipliers"])
            cells = []
            for label in labels[1:]:
                paired = subset["policies"][label]["vs_reference"]
                cells.append(f"{_pct(paired['mean'])} ({_pct(paired['low'])} to {_pct(paired['high'])})")
            lines.append(f"| {title} | {value:g} | {len(rows)} | " + " | ".join(cells) + " |")
    return lines


def main(paths: list[str]) -> None:
    if not paths:
        raise SystemExit(__doc__)
    for path in paths:
        with open(path) as handle:
            result = json.load(handle)
        print(f"\n{path} (seed {result['setting']['seed']}):\n")
        print("\n".join(breakdown(result)))


if __name__ == "__main__":
    main(sys.argv[1:])

"""What the response columns (``inputs="all+distance+response"``) read on recorded runs, and whether it tells the LR's error.

For every decision of a demonstration set (``general-train``'s ``bc/data`` or a DAgger round's ``data``):
the two slopes (``features.response_slopes``) at the last row the decision reads, and the change of LR the
oracle asks for there (its label minus the LR in use, in log units: below zero, the LR is too high).
Prints how often the slopes read anything (|slope| > 0.05) and their correlation with that change,
beside the same for the latest log train loss and log gradient norm (columns the policy had already).

    python benchmarks/response_signal.py runs/general-response/bc/data runs/general-response/dagger/round-2/data
"""

from __future__ import annotations

import sys

import numpy as np

from learned_lr.features import FEATURE_NAMES, input_feature_names, window_from_features
from learned_lr.training.bc import Demonstrations

INPUTS = "all+distance+response"
COLUMNS = {name: input_feature_names(INPUTS).index(column) for name, column in (
    ("loss slope", "loss_lr_response"), ("grad slope", "grad_lr_response"), ("log train loss", "log_train_loss"),
    ("log grad norm", "log_grad_norm"))}
LR = FEATURE_NAMES.index("log_lr_factor")


def readings(folder: str) -> dict[str, np.ndarray]:
    """Per decision: the slopes and raw columns at the last row read, and the oracle's asked-for change of log LR."""
    demos = Demonstrations.load(folder)
    out: dict[str, list[float]] = {"loss slope": [], "grad slope": [], "log train loss": [], "log grad norm": [], "asked change": []}
    for run, step, label in zip(demos.decision_run, demos.decision_step, demos.labels):
        if step < 2:
            continue
        last = window_from_features(demos.features[run], int(step), demos.control.window, demos.runs[run]["total_steps"], INPUTS)[0][-1]
        for name, column in COLUMNS.items():  # the row the decision read last, as the policy reads it
            out[name].append(float(last[column]))
        out["asked change"].append(float(label) - float(last[LR]))
    return {k: np.asarray(v) for k, v in out.items()}


def main(folders: list[str]) -> None:
    if not folders:
        raise SystemExit(__doc__)
    for folder in folders:
        r = readings(folder)
        asked = r["asked change"]
        print(f"\n{folder}: {len(asked)} decisions; the oracle asks a cut (< -0.1) at {np.mean(asked < -0.1):.0%} of them\n")
        print("| reading | reads anything (abs > 0.05) | correlation with the asked change | mean where a cut is asked | elsewhere |")
        print("|---|---|---|---|---|")
        cut = asked < -0.1
        for name in ("loss slope", "grad slope", "log train loss", "log grad norm"):
            x = r[name]
            corr = np.corrcoef(x, asked)[0, 1] if x.std() > 0 else float("nan")
            print(f"| {name} | {np.mean(np.abs(x) > 0.05):.0%} | {corr:+.2f} | {x[cut].mean():+.3f} | {x[~cut].mean():+.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Which per-step signals tell a run's base LR apart from its tuned one, on any training-family model?

Issue 18's question for the general policy: losses and gradient norms relative to their first
values show how a run moves, not whether its LR is right for *this* model. This measures, on the
general policy's training-family variants only (``training.distribution``: the held-out families
are never run), how much each candidate signal says about the multiplier m = base LR / tuned LR.

Each variant (its tuned LR from its cached oracle sweep, ``tune_variant``) runs at m in {0.1, 0.3,
1, 3, 10} at a constant LR for ``--steps`` steps on its sweep seed. Per run, each signal is
averaged over the steps after the first ``--skip``; then across all runs, the signal's R^2 for
log10(m) (a one-feature least-squares line; 0: it says nothing, 1: it determines m), and for sets
of signals together the R^2 of a quadratic fit that predicts each variant from the others. Signals:

* ``log_train_loss``, ``log_grad_norm``, ``layer_grad_mean``: the features policies read today
  (log ratios to the run's first values);
* ``momentum_cos``: mean over layers of cos(gradient, momentum / exp_avg) before the step (the
  ``all+momentum`` inputs);
* ``update_ratio``: mean over layers of log10(|w_l after - w_l before| / |w_l before|), the
  update-to-weight norm ratio (a classic LR diagnostic);
* ``init_distance``: mean over layers of log10(|w_l - w_l at init| / |w_l at init|) at the end
  (what DoG and D-Adaptation estimate the step size from).

    .venv/bin/python benchmarks/lr_scale_signals.py --work runs/general-v8-near --variants-per-family 8
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from learned_lr.tasks.run import TrainingRun, layer_groups
from learned_lr.training.distribution import sample_variants, tune_variant

MULTIPLIERS = (0.1, 0.3, 1.0, 3.0, 10.0)
SIGNALS = ("log_train_loss", "log_grad_norm", "layer_grad_mean", "momentum_cos", "update_ratio", "init_distance")


def layer_norms(tensors: list[torch.Tensor], layer_of: list[int], layers: int) -> np.ndarray:
    """Per layer, the L2 norm of its tensors together."""
    squares = np.zeros(layers)
    for t, layer in zip(tensors, layer_of):
        squares[layer] += float(t.detach().double().square().sum())
    return np.sqrt(squares)


def signals_of_run(run: TrainingRun, lr: float, steps: int, skip: int) -> dict[str, float] | None:
    params, owner, names = layer_groups(run.model)
    layer_of, layers = owner.tolist(), len(names)
    initial = [p.detach().clone() for p in params]
    init_norms = layer_norms(params, layer_of, layers)
    rows: dict[str, list[float]] = {name: [] for name in SIGNALS[:-1]}
    first_loss = first_norm = first_layers = None
    for step in range(steps):
        before = [p.detach().clone() for p in params]
        weights = layer_norms(params, layer_of, layers)
        report = run.step(lr, momentum_cosines=True)
        if not math.isfinite(report.train_loss):
            return None
        norms = report.layer_grad_norms.double().numpy()
        if step == 0:
            first_loss, first_norm, first_layers = report.train_loss, float(np.sqrt((norms**2).sum())), np.maximum(norms, 1e-12)
        if step < skip:
            continue
        updates = layer_norms([p.detach() - b for p, b in zip(params, before)], layer_of, layers)
        rows["log_train_loss"].append(math.log(max(report.train_loss, 1e-12) / first_loss))
        rows["log_grad_norm"].append(math.log(max(float(np.sqrt((norms**2).sum())), 1e-12) / first_norm))
        rows["layer_grad_mean"].append(float(np.mean(np.log(np.maximum(norms, 1e-12) / first_layers))))
        cosines = report.layer_momentum_cos.double().numpy()
        rows["momentum_cos"].append(float(np.nanmean(cosines)) if np.isfinite(cosines).any() else 0.0)
        rows["update_ratio"].append(float(np.mean(np.log10(np.maximum(updates, 1e-30) / np.maximum(weights, 1e-30)))))
    distance = layer_norms([p.detach() - w0 for p, w0 in zip(params, initial)], layer_of, layers)
    result = {name: float(np.mean(values)) for name, values in rows.items()}
    result["init_distance"] = float(np.mean(np.log10(np.maximum(distance, 1e-30) / np.maximum(init_norms, 1e-30))))
    return result


TODAY = ("log_train_loss", "log_grad_norm", "layer_grad_mean")
FEATURE_SETS = {"today's features": TODAY, "today's + momentum_cos": TODAY + ("momentum_cos",),
                "today's + update_ratio": TODAY + ("update_ratio",), "today's + init_distance": TODAY + ("init_distance",),
                "init_distance alone": ("init_distance",)}


def held_out_variant_r_squared(x: np.ndarray, y: np.ndarray, variant: np.ndarray) -> float:
    """R^2 of log10(m) from a quadratic least-squares fit of the features, each variant predicted by a fit
    on the other variants (so a signal must carry over to a model the fit has not seen)."""
    columns = [np.ones(len(x))] + [x[:, i] for i in range(x.shape[1])]
    columns += [x[:, i] * x[:, j] for i in range(x.shape[1]) for j in range(i, x.shape[1])]
    design = np.stack(columns, 1)
    predicted = np.empty_like(y)
    for v in np.unique(variant):
        out = variant == v
        coef, *_ = np.linalg.lstsq(design[~out], y[~out], rcond=None)
        predicted[out] = design[out] @ coef
    return 1.0 - float(np.mean((y - predicted) ** 2) / y.var())


def r_squared(x: np.ndarray, y: np.ndarray) -> float:
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    return 1.0 - float(residual.var() / y.var())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/general-v8-near", help="a general-train work folder (its sweeps/ are reused)")
    parser.add_argument("--variants-per-family", type=int, default=8)
    parser.add_argument("--min-steps", type=int, default=150)
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60, help="steps per run (a policy's first decisions)")
    parser.add_argument("--skip", type=int, default=10, help="steps left out of the averages (the start)")
    args = parser.parse_args()
    torch.manual_seed(0)
    variants = sample_variants(args.variants_per_family, args.min_steps, args.max_steps, args.seed)
    table = []  # (family, optimizer, log10 m, signals)
    for variant in variants:
        oracle = tune_variant(variant, Path(args.work) / "sweeps")
        for m in MULTIPLIERS:
            run = TrainingRun(variant.task, variant.sweep_seed, total_steps=variant.steps)
            signals = signals_of_run(run, oracle["lr"] * m, args.steps, args.skip)
            if signals is not None:  # a run that blew up within the window says "too high" by itself
                table.append((variant.task.task, variant.task.optimizer, math.log10(m), signals, variant.name))
        print(f"{variant.name}: tuned LR {oracle['lr']:g}", flush=True)
    y = np.array([row[2] for row in table])
    print(f"\n{len(table)} finite runs of {len(variants) * len(MULTIPLIERS)} ({len(variants)} variants x {len(MULTIPLIERS)} multipliers), "
          f"steps {args.skip}-{args.steps}")
    groups = {"all": lambda row: True, "sgd": lambda row: row[1] == "sgd", "adam/adamw": lambda row: row[1] != "sgd"}
    print("| signal | " + " | ".join(f"R^2 {g}" for g in groups) + " |")
    print("|---|" + "---|" * len(groups))
    for name in SIGNALS:
        cells = []
        for keep in groups.values():
            chosen = [i for i, row in enumerate(table) if keep(row)]
            x = np.array([table[i][3][name] for i in chosen])
            cells.append(f"{r_squared(x, y[chosen]):.2f}" if len(chosen) > 2 and x.std() > 0 else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nTogether (quadratic fit, each variant predicted from the others):")
    print("| features | " + " | ".join(f"R^2 {g}" for g in groups) + " |")
    print("|---|" + "---|" * len(groups))
    for label, names in FEATURE_SETS.items():
        cells = []
        for keep in groups.values():
            chosen = [i for i, row in enumerate(table) if keep(row)]
            x = np.array([[table[i][3][n] for n in names] for i in chosen])
            cells.append(f"{held_out_variant_r_squared(x, y[chosen], np.array([table[i][4] for i in chosen])):.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

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
* ``update_max`` / ``update_min``: the largest / smallest layer's update ratio (log10), and ``update_sum``:
  log10 of the sum over layers of the update ratios, a bound on the whole network's relative change
  that grows with depth where the mean does not;
* ``probe_step``: a line-search probe along the step the optimizer just took, every ``PROBE_EVERY`` steps:
  on a fixed batch of ``PROBE_EXAMPLES`` training examples, the loss at w_before + t * (w_after - w_before)
  for t = 0, 1, 2; log10 of the t that minimises the parabola through them (clipped to [1/64, 64]; a
  parabola open downwards reads as 64): below 0 the step overshot along its own direction, above 0 it
  stopped short. Three forward passes per probe and no gradient: what a scheduler could afford once per
  decision. ``probe_gain``: log(loss at t = 1 / loss at t = 0) on that batch, what the step gained there;
* ``init_distance``: mean over layers of log10(|w_l - w_l at init| / |w_l at init|) at the end
  (what DoG and D-Adaptation estimate the step size from), and ``distance_max`` / ``distance_min``,
  its largest / smallest layer (the policies' ``all+distance`` inputs read the mean, min and max).

    .venv/bin/python benchmarks/lr_scale_signals.py --work runs/general-v8-near --variants-per-family 8

``--validation FILE,...``: the variants of ``learned-lr validate`` draws instead (their tuned LRs from the
draws' ``validation.json``; no sweep is run), e.g. the deep-MLP draws, where the policies' LR follows the base
LR most. ``--trainable-only``: of those, only the variants whose tuned expert trains (``experiments.validate.
expert_trains``; a variant that no LR trains has no LR scale to read).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from tuned_lr_noise import NOISE_WORK, saved_sweep

from learned_lr.experiments.validate import expert_trains
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.run import TrainingRun, layer_groups, task_loss
from learned_lr.training.distribution import sample_variants, tune_variant

MULTIPLIERS = (0.1, 0.3, 1.0, 3.0, 10.0)
SIGNALS = ("log_train_loss", "log_grad_norm", "layer_grad_mean", "momentum_cos", "update_ratio", "update_max", "update_min",
           "update_sum", "init_distance", "distance_max", "distance_min")
PER_STEP = SIGNALS[:8]  # averaged over the steps after --skip; the distances are read once, at the end
PROBE = ("probe_step", "probe_gain")  # averaged over the probes, every PROBE_EVERY steps after --skip
SIGNALS += PROBE
PROBE_EVERY, PROBE_EXAMPLES, PROBE_CLIP = 5, 256, 64.0  # averaged over the steps after --skip; the distances are read once, at the end


def layer_norms(tensors: list[torch.Tensor], layer_of: list[int], layers: int) -> np.ndarray:
    """Per layer, the L2 norm of its tensors together."""
    squares = np.zeros(layers)
    for t, layer in zip(tensors, layer_of):
        squares[layer] += float(t.detach().double().square().sum())
    return np.sqrt(squares)


@torch.no_grad()
def probe(run: TrainingRun, before: list[torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
    """(log10 of the parabola's best multiple of the last step, log loss ratio after/before the step) on ``batch``."""
    after = [p.detach().clone() for p in run.params]
    losses = []
    for t in (0.0, 1.0, 2.0):
        for p, b, a in zip(run.params, before, after):
            p.copy_(b + t * (a - b))
        run.model.eval()
        losses.append(float(task_loss(run.data.loss, run.model(batch[0]), batch[1])))
    for p, a in zip(run.params, after):
        p.copy_(a)
    l0, l1, l2 = losses
    curvature, slope = (l2 - 2 * l1 + l0) / 2, (4 * l1 - 3 * l0 - l2) / 2  # L(t) = curvature t^2 + slope t + l0
    best = -slope / (2 * curvature) if curvature > 0 else PROBE_CLIP
    best = min(max(best, 1 / PROBE_CLIP), PROBE_CLIP)
    return math.log10(best), math.log(max(l1, 1e-12) / max(l0, 1e-12))


def signals_of_run(run: TrainingRun, lr: float, steps: int, skip: int) -> dict[str, float] | None:
    params, owner, names = layer_groups(run.model)
    layer_of, layers = owner.tolist(), len(names)
    initial = [p.detach().clone() for p in params]
    init_norms = layer_norms(params, layer_of, layers)
    rows: dict[str, list[float]] = {name: [] for name in PER_STEP + PROBE}
    probe_batch = (run.data.train_x[:PROBE_EXAMPLES].to(run.device), run.data.train_y[:PROBE_EXAMPLES].to(run.device))
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
        ratios = np.maximum(updates, 1e-30) / np.maximum(weights, 1e-30)
        rows["update_ratio"].append(float(np.mean(np.log10(ratios))))
        rows["update_max"].append(float(np.log10(ratios.max())))
        rows["update_min"].append(float(np.log10(ratios.min())))
        rows["update_sum"].append(float(np.log10(ratios.sum())))
        if (step - skip) % PROBE_EVERY == 0:
            step_multiple, gain = probe(run, before, probe_batch)
            if math.isfinite(gain):
                rows["probe_step"].append(step_multiple)
                rows["probe_gain"].append(gain)
    distance = layer_norms([p.detach() - w0 for p, w0 in zip(params, initial)], layer_of, layers)
    result = {name: float(np.mean(values)) if values else 0.0 for name, values in rows.items()}
    # a layer that starts at zero has no relative distance (the policies leave it out too)
    started = init_norms > 0
    relative = np.log10(np.maximum(distance[started], 1e-30) / init_norms[started])
    result.update(init_distance=float(relative.mean()), distance_max=float(relative.max()), distance_min=float(relative.min()))
    return result


TODAY = ("log_train_loss", "log_grad_norm", "layer_grad_mean")
DISTANCE = ("init_distance", "distance_max", "distance_min")
FEATURE_SETS = {"today's features": TODAY, "today's + momentum_cos": TODAY + ("momentum_cos",),
                "today's + update_ratio": TODAY + ("update_ratio",), "today's + init_distance": TODAY + ("init_distance",),
                "init_distance alone": ("init_distance",),
                # the rows below are linear fits: with the distance's three summaries a quadratic fit has more
                # coefficients than a small draw has variants to spare
                "linear: today's + distance mean/max/min (the default's inputs)": TODAY + DISTANCE,
                "linear: ... + update mean/max/min": TODAY + DISTANCE + ("update_ratio", "update_max", "update_min"),
                "linear: ... + update_sum": TODAY + DISTANCE + ("update_sum",),
                "linear: ... + momentum_cos": TODAY + DISTANCE + ("momentum_cos",),
                "probe_step alone": ("probe_step",),
                "linear: ... + probe_step, probe_gain": TODAY + DISTANCE + PROBE}


def held_out_variant_r_squared(x: np.ndarray, y: np.ndarray, variant: np.ndarray, quadratic: bool = True) -> float:
    """R^2 of log10(m) from a quadratic (or linear) least-squares fit of the features, each variant predicted by a fit
    on the other variants (so a signal must carry over to a model the fit has not seen)."""
    columns = [np.ones(len(x))] + [x[:, i] for i in range(x.shape[1])]
    if quadratic:
        columns += [x[:, i] * x[:, j] for i in range(x.shape[1]) for j in range(i, x.shape[1])]
    design = np.stack(columns, 1)
    predicted = np.empty_like(y)
    for v in np.unique(variant):
        out = variant == v
        coef, *_ = np.linalg.lstsq(design[~out], y[~out], rcond=None)
        predicted[out] = design[out] @ coef
    return 1.0 - float(np.mean((y - predicted) ** 2) / y.var())


def study_variants(args: argparse.Namespace) -> list[tuple[str, TaskConfig, int, int, float]]:
    """(name, task, seed, steps, tuned LR) of each variant studied: a general-train draw's (its sweeps cached in
    --work) or the variants of --validation's draws (their tuned LRs as those draws found them, or with
    --tuned-sweep-seeds N > 1 as a sweep over N seeds finds them)."""
    if args.validation:
        out = []
        for path in args.validation.split(","):
            draw = json.loads(Path(path).read_text())
            for i, (v, expert) in enumerate(zip(draw["variants"], draw["experts"])):
                if args.trainable_only and not expert_trains(expert):
                    continue
                tuned_lr = v["oracle_lr"]
                if args.tuned_sweep_seeds > 1:  # the tuned LR of a sweep over several seeds (tuned_lr_noise.py's, cached there)
                    drawn, grid_points, _ = saved_sweep(path, v)
                    tuned_lr = tune_variant(drawn, Path(NOISE_WORK) / Path(path).parent.name, grid_points, args.tuned_sweep_seeds)["lr"]
                # seed 900 + i: one fixed trainee seed per variant, the same model at every multiplier
                out.append((f"{draw['setting']['seed']}/{v['name']}", TaskConfig(**v["task"]), 900 + i, v["steps"], tuned_lr))
        return out
    variants = sample_variants(args.variants_per_family, args.min_steps, args.max_steps, args.seed)
    return [(v.name, v.task, v.sweep_seed, v.steps, tune_variant(v, Path(args.work) / "sweeps")["lr"]) for v in variants]


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
    parser.add_argument("--validation", default="", help="comma-separated validation.json files of `learned-lr validate` draws: "
                        "study their variants at their tuned LRs (instead of --work's draw)")
    parser.add_argument("--trainable-only", action="store_true", help="with --validation: leave out the variants whose tuned expert "
                        "does not train (experiments.validate.expert_trains)")
    parser.add_argument("--tuned-sweep-seeds", type=int, default=1, help="with --validation: the tuned LR of a sweep over this many "
                        "trainee seeds (benchmarks/tuned_lr_noise.py's sweep a, computed if it is not cached) instead of the draw's one-seed one")
    args = parser.parse_args()
    torch.manual_seed(0)
    table = []  # (family, optimizer, log10 m, signals, variant name)
    variants = study_variants(args)
    for name, task, seed, steps, tuned_lr in variants:
        for m in MULTIPLIERS:
            run = TrainingRun(task, seed, total_steps=steps)
            signals = signals_of_run(run, tuned_lr * m, args.steps, args.skip)
            if signals is not None:  # a run that blew up within the window says "too high" by itself
                table.append((task.task, task.optimizer, math.log10(m), signals, name))
        print(f"{name}: tuned LR {tuned_lr:g}", flush=True)
    y = np.array([row[2] for row in table])
    print(f"\n{len(table)} finite runs of {len(variants) * len(MULTIPLIERS)} ({len(variants)} variants x {len(MULTIPLIERS)} multipliers), "
          f"steps {args.skip}-{args.steps}")
    groups = {"all": lambda row: True, "sgd": lambda row: row[1] == "sgd", "adam/adamw": lambda row: row[1] != "sgd"}
    counts = {g: len({row[4] for row in table if keep(row)}) for g, keep in groups.items()}
    heads = " | ".join(f"R^2 {g} ({counts[g]} variants)" for g in groups)
    print("| signal | " + heads + " |")
    print("|---|" + "---|" * len(groups))
    for name in SIGNALS:
        cells = []
        for keep in groups.values():
            chosen = [i for i, row in enumerate(table) if keep(row)]
            x = np.array([table[i][3][name] for i in chosen])
            cells.append(f"{r_squared(x, y[chosen]):.2f}" if len(chosen) > 2 and x.std() > 0 else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nTogether (quadratic fit, each variant predicted from the others):")
    print("| features | " + heads + " |")
    print("|---|" + "---|" * len(groups))
    for label, names in FEATURE_SETS.items():
        cells = []
        for keep in groups.values():
            chosen = [i for i, row in enumerate(table) if keep(row)]
            x = np.array([[table[i][3][n] for n in names] for i in chosen])
            names_of = np.array([table[i][4] for i in chosen])
            cells.append(f"{held_out_variant_r_squared(x, y[chosen], names_of, quadratic=not label.startswith('linear')):.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

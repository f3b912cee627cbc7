"""Does a step's loss fall against its first-order prediction, or how straight the weights' path runs, tell whether
the LR in use now is too high?

The default spends more LR the higher the base LR, 2x the tuned user's at x1 and 4x at x10 pooled, and a rise limit
does not change the level it settles at (docs/results.md section 7, "A slower rise"): what it reads late in a run
does not say that the LR it holds is too high. Its distance input separates a too-low base LR from a too-high one
early (AUC 0.95 at step 17, ``benchmarks/early_scale_signals.py``), but it records the whole run so far rather than
the LR of now. Two signals read the LR of now, on any model and optimizer. The descent ratio, as an Armijo line
search does:

    descent ratio = (loss on the step's batch after the step - loss on it before) / (gradient . update)

Over a block, the two sums' ratio. A step small for the loss's curvature along it falls as the gradient predicts
(ratio 1); a step at the edge of stability gains nothing (0); a step beyond it makes the loss rise (below 0). On a
quadratic, for an update -eta*d, the ratio is 1 - eta * d'Hd / (2 g'd): the LR against the curvature the step meets.
Its cost, were the scheduler to read it on decision steps only: one forward pass of that step's batch and the
update's dot product with the gradient.

The path's straightness over a window, per layer: how far the weights moved from the window's start over the sum of
the lengths of its steps (log10, mean over layers). An LR too high for the curvature makes the weights bounce across a
valley (far below 1); gradient noise bends the path at any LR, by about the same fraction whatever the LR while the
LR is small, so it should read a too-high LR rather than a too-low one. Its cost in the drop-in: the weights at the
last decision (one copy, as the distance input's initial weights) and each step's update norm.

Each variant of `learned-lr validate` results (training families only: their ``validation.json``; the tuned LR is
their ``oracle_lr``) runs at its tuned LR times each multiplier, held constant, for ``--steps`` steps (a variant
shorter than that runs its own length), on one seed per variant. Per window of steps (early and late), the
descent ratio, the path's straightness, the mean log train loss over its first and the weights' log10 distance from
their start relative to their size there (mean over layers, at the window's end). Reported per signal and window:
the median per multiplier; the AUC of telling x0.1 and x0.3 from x3 and x10 (0.5 says nothing; 1 or 0 separates them) and x1 from
x3; the R^2 of log10 of the multiplier from the signal (one-feature line) and, with the others, from a quadratic
fit that predicts each variant from the others (``lr_scale_signals.held_out_variant_r_squared``). A run that blew
up (a non-finite loss) before a window ends has no value there.

    python benchmarks/descent_ratio_signal.py results/validation-95-rise/validation.json \\
        results/validation-zero-head-94-rise/validation.json results/validation-deep-93-rise/validation.json \\
        --steps 300 --windows 10-60,240-300
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
from early_scale_signals import auc
from lr_scale_signals import held_out_variant_r_squared, layer_norms, r_squared
from tqdm.auto import tqdm

from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.run import TrainingRun, layer_groups, task_loss

MULTIPLIERS = (0.1, 0.3, 1.0, 3.0, 10.0)
SIGNALS = ("descent_ratio", "path_straightness", "log_train_loss", "init_distance")


def descent_ratio(observed: list[float], predicted: list[float]) -> float:
    """The loss's fall over a block against its first-order prediction: sum(observed) / sum(predicted), clipped to
    [-10, 10] (a block whose prediction is zero says nothing: NaN).

    >>> descent_ratio([-0.10, -0.08], [-0.1, -0.1]), descent_ratio([0.05, -0.01], [-0.1, -0.1]), descent_ratio([0.0], [0.0])
    (0.9, -0.2, nan)
    """
    total = float(np.sum(predicted))
    if total == 0.0 or not math.isfinite(total):
        return math.nan
    return float(np.clip(np.sum(observed) / total, -10.0, 10.0))


def path_straightness(displacement: np.ndarray, path_length: np.ndarray) -> float:
    """Mean over layers of log10(displacement / path length); a layer that did not move is left out (NaN if none did).

    >>> round(path_straightness(np.array([1.0, 0.1, 0.0]), np.array([1.0, 1.0, 0.0])), 3)
    -0.5
    """
    moved = path_length > 0
    if not moved.any():
        return math.nan
    return float(np.mean(np.log10(np.maximum(displacement[moved], 1e-30) / path_length[moved])))


def windows_of_run(task: TaskConfig, seed: int, steps: int, lr: float, windows: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, float]]:
    """Each window's signals on one constant-LR run (a window the run did not reach, or reached blown up, is left out)."""
    run = TrainingRun(task, seed, total_steps=steps)
    model, optimizer = run.model, run.optimizer
    run.trainee_optimizer.set_lr(lr)
    params, owner, names = layer_groups(model)
    layer_of, layers = owner.tolist(), len(names)
    initial = [p.detach().clone() for p in params]
    init_norms = layer_norms(initial, layer_of, layers)
    observed, predicted, log_losses, first_loss = [], [], [], None
    step_lengths: list[np.ndarray] = []  # per step, each layer's update norm
    window_start: dict[int, list[torch.Tensor]] = {}  # the weights at each window's first step
    out: dict[tuple[int, int], dict[str, float]] = {}
    for step in range(max(end for _, end in windows)):
        if any(start == step for start, _ in windows):
            window_start[step] = [p.detach().clone() for p in params]
        x, y = (t.to(run.device) for t in run.stream.next_train_batch())
        model.train()
        loss = task_loss(run.data.loss, model(x), y)
        optimizer.zero_grad()
        loss.backward()
        before = [p.detach().clone() for p in params]
        optimizer.step()  # (it leaves .grad as it was: SGD's, Adam's and AdamW's steps read the gradient out of place)
        with torch.no_grad():  # the same batch after the step (batch norm's running statistics move once more: a benchmark's cost)
            after = float(task_loss(run.data.loss, model(x), y))
            change = sum(float((p.grad.double() * (p.detach().double() - b.double())).sum())
                         for p, b in zip(params, before) if p.grad is not None)
        value = float(loss.detach())
        if not (math.isfinite(value) and math.isfinite(after)):
            break
        first_loss = value if first_loss is None else first_loss
        observed.append(after - value)
        step_lengths.append(layer_norms([p.detach() - b for p, b in zip(params, before)], layer_of, layers))
        predicted.append(change)
        log_losses.append(math.log(max(value, 1e-12) / max(first_loss, 1e-12)))
        for start, end in windows:
            if step + 1 == end:
                distance = layer_norms([p.detach() - w0 for p, w0 in zip(params, initial)], layer_of, layers)
                moved = np.log10(np.maximum(distance, 1e-30) / np.maximum(init_norms, 1e-30))[init_norms > 0]  # zero-start layers: no size
                moved_in_window = layer_norms([p.detach() - w for p, w in zip(params, window_start[start])], layer_of, layers)
                out[(start, end)] = {"descent_ratio": descent_ratio(observed[start:end], predicted[start:end]),
                                     "path_straightness": path_straightness(moved_in_window, np.sum(step_lengths[start:end], axis=0)),
                                     "log_train_loss": float(np.mean(log_losses[start:end])), "init_distance": float(np.mean(moved))}
    return out


def separation(low: list[float], high: list[float]) -> float:
    """``early_scale_signals.auc`` of two groups of runs, NaN where either is empty (every run of a multiplier blew up)."""
    return auc(low, high) if low and high else math.nan


def report(table: list[dict], windows: list[tuple[int, int]]) -> list[str]:
    """Markdown rows: per signal and window, the medians per multiplier, the AUCs and the R^2 of log10 m."""
    lines = ["| signal | steps | " + " | ".join(f"x{m:g} median" for m in MULTIPLIERS)
             + " | AUC x0.1-0.3 vs x3-10 | AUC x1 vs x3 | R^2 alone | R^2 with the others (held-out variant) | runs |",
             "|---|---|" + "---|" * (len(MULTIPLIERS) + 5)]
    for window in windows:
        rows = [r for r in table if window in r["windows"] and all(np.isfinite(r["windows"][window][s]) for s in SIGNALS)]
        if len(rows) < 3:
            lines.append(f"| (every signal) | {window[0]}-{window[1]} | too few finite runs ({len(rows)}) |")
            continue
        y = np.array([math.log10(r["m"]) for r in rows])
        x_all = np.array([[r["windows"][window][s] for s in SIGNALS] for r in rows])
        together = held_out_variant_r_squared(x_all, y, np.array([r["variant"] for r in rows]))
        for i, signal in enumerate(SIGNALS):
            by_m = {m: [r["windows"][window][signal] for r in rows if r["m"] == m] for m in MULTIPLIERS}
            medians = [f"{np.median(v):+.2f}" if v else "-" for v in by_m.values()]
            low, high = by_m[0.1] + by_m[0.3], by_m[3.0] + by_m[10.0]
            alone = r_squared(x_all[:, i], y) if x_all[:, i].std() > 0 else math.nan
            lines.append(f"| {signal} | {window[0]}-{window[1]} | " + " | ".join(medians)
                         + f" | {separation(low, high):.2f} | {separation(by_m[1.0], by_m[3.0]):.2f} | {alone:.2f} | "
                         + (f"{together:.2f}" if i == 0 else "") + f" | {len(rows)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="validation.json files of `learned-lr validate`")
    parser.add_argument("--steps", type=int, default=300, help="steps per run at most (a shorter variant runs its own length)")
    parser.add_argument("--windows", default="10-60,240-300", help="comma-separated step windows START-END")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    windows = [tuple(int(s) for s in w.split("-")) for w in args.windows.split(",")]
    if any(not 0 <= a < b <= args.steps for a, b in windows):
        raise SystemExit(f"--windows {args.windows}: each START-END must satisfy 0 <= START < END <= --steps {args.steps}")
    variants = []
    for path in args.results:
        result = json.load(open(path))
        variants += [(v, result["setting"]["seed"]) for v in result["variants"]]
    table = []
    for index, (variant, draw) in enumerate(tqdm(variants, desc="variants")):
        seed = draw * 1000 + index  # one seed per variant, the same for every multiplier
        for m in MULTIPLIERS:
            steps = min(args.steps, variant["steps"])
            reached = [w for w in windows if w[1] <= steps]  # a variant shorter than a window has no value there
            found = windows_of_run(TaskConfig(**variant["task"]), seed, steps, variant["oracle_lr"] * m, reached) if reached else {}
            table.append({"variant": f"{draw}/{variant['name']}", "m": m, "windows": found})
    print(f"{len(variants)} variants x {len(MULTIPLIERS)} multipliers, constant LR, at most {args.steps} steps\n")
    print("\n".join(report(table, windows)))


if __name__ == "__main__":
    main()

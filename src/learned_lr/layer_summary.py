"""Per-layer values -> the mean, min and max over layers that the policy reads (``learned_lr.features``).

A model's layers are many or few (2 for the smallest MLP, 41 for ResNet-18), and the policy reads three numbers
per per-layer quantity whatever their count. The mean is over every layer that has a value. The min and max are
over layers too, unless ``groups`` is set (``ControlConfig.layer_groups``): then a model with more layers than
``groups`` has them split, in their order (``layers.module_layers``: the model's order), into ``groups`` runs of
consecutive layers as equal as can be, each read as the mean of its layers, and the min and max are over those.

Why groups: the extremes of many layers' values lie further out than those of few, for no reason that says
anything about the LR (the max of 41 draws exceeds the max of 4), so a policy that learned on models of 2-4 layers
reads a deep model's spread as wider than any it saw. With ``groups`` at the most layers the policy trained on, a
model of that many layers or fewer is read exactly as before, and a deeper one as a model of that depth whose
layers are blocks of its own. Whether that helps is for validation runs to say (docs/results.md section 7).

Example:
    >>> values = np.array([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    >>> depth_pooled(values, groups=3).tolist(), depth_pooled(values, groups=0).shape
    ([[0.5, 2.5, 4.5]], (1, 6))
    >>> summarize(values, groups=3, empty=0.0).tolist()
    [[2.5, 0.5, 4.5]]
"""

from __future__ import annotations

import numpy as np


def depth_pooled(values: np.ndarray, groups: int) -> np.ndarray:
    """(rows, layers) -> (rows, groups): the mean of each run of consecutive layers over the ones that have a value
    (not NaN; NaN where none has). ``values`` itself when ``groups`` is 0 or the layers are no more than ``groups``."""
    layers = values.shape[1]
    if groups <= 0 or layers <= groups:
        return values
    starts = (np.arange(groups) * layers) // groups  # strictly increasing, as layers > groups: no group is empty
    known = ~np.isnan(values)
    sums = np.add.reduceat(np.where(known, values, 0.0), starts, axis=1)
    counts = np.add.reduceat(known.astype(np.int64), starts, axis=1)
    return np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)


def summarize(values: np.ndarray, groups: int, empty: float) -> np.ndarray:
    """(rows, layers) values, NaN where a layer has none -> (rows, 3): the mean over the layers that have one, the min
    and max over them (or over their depth groups, ``depth_pooled``); ``empty`` in a row where no layer has one."""
    known = ~np.isnan(values)
    count = known.sum(1)
    mean = np.divide(np.where(known, values, 0.0).sum(1), count, out=np.zeros(len(count)), where=count > 0)
    pooled = depth_pooled(values, groups)
    pooled_known = ~np.isnan(pooled)
    low, high = np.where(pooled_known, pooled, np.inf).min(1), np.where(pooled_known, pooled, -np.inf).max(1)
    return np.where((count > 0)[:, None], np.stack([mean, low, high], axis=1), empty)


def grad_norm_summary(log_ratios: np.ndarray, groups: int, skipped: np.ndarray | None = None) -> np.ndarray:
    """(rows, layers) log gradient-norm ratios, finite and clipped -> (rows, 3) mean, min, max; over the layers not
    ``skipped`` (a (layers,) mask: those whose first gradient was zero, ``ControlConfig.grad_norms_skip_zero_start``;
    0 in every column if every layer is)."""
    if skipped is not None and skipped.any():
        return summarize(np.where(skipped, np.nan, log_ratios), groups, empty=0.0)
    pooled = depth_pooled(log_ratios, groups)
    return np.stack([log_ratios.mean(1), pooled.min(1), pooled.max(1)], axis=1)


def distance_summary(logs: np.ndarray, skip_undefined: bool, clip: float, groups: int = 0) -> np.ndarray:
    """(rows, 3) mean, min and max over layers of log distances from the start (NaN: a layer that started at zero).

    Without ``skip_undefined`` a NaN reads as a blow-up (+clip), as every policy before
    ``ControlConfig.distance_skips_zero_start`` read a zero-start layer that had moved (one that had not moved read
    -clip then; its gradient is zero, rare: LoRA's B moves at the first step, and a policy without the skip
    repeats its LoRA runs to the digit, docs/results.md section 7); with it, the summary is over the layers that have a
    distance, and a row where none has one reads as a blow-up still (a history row never measured).
    """
    clipped = np.where(np.isnan(logs), clip, np.clip(logs, -clip, clip))
    if not skip_undefined:
        pooled = depth_pooled(clipped, groups)
        return np.stack([clipped.mean(1), pooled.min(1), pooled.max(1)], axis=1)
    return summarize(np.where(np.isnan(logs), np.nan, clipped), groups, empty=clip)


def cosine_summary(cosines: np.ndarray, groups: int = 0) -> np.ndarray:
    """(steps, layers) cosines -> (steps, 3) mean, min, max over the layers that have one; 0 where none."""
    known = np.isfinite(cosines)
    return summarize(np.where(known, np.clip(cosines, -1.0, 1.0), np.nan), groups, empty=0.0)

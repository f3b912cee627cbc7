"""What the policy sees: a window of the last W steps of normalized per-step features.

Per step t (the LR used at t and what step t observed):

====================  =====================================================================
remaining_fraction    (T - t - 1) / T: how much of the run is left after this step
log_lr_factor         log(lr_t / base_lr): the LR as a fraction of the optimizer's base (peak) LR
log_train_loss        log(train_loss_t / train_loss_0)
log_val_loss          log(val_loss_t / train_loss_0) (same reference, so train/val gap is visible)
log_grad_norm         log(|g_t| / |g_0|), |g| the global gradient norm
layer_grad_mean/min/max  mean, min and max over layers l of log(|g_l,t| / |g_l,0|) (a layer with |g_l,0| = 0 has
                      no ratio: 1.0 stands for it, its first non-zero norm, or it is left out, by
                      ``ControlConfig.grad_norms_from_first_nonzero`` / ``grad_norms_skip_zero_start``)
momentum_cos_mean/min/max  (``inputs="all+momentum"`` only) mean, min and max over layers of
                      cos(g_l,t, m_l,t-1), the gradient against the optimizer's momentum
                      (``layers.layer_momentum_cosines``); 0 where unknown (first step)
init_distance_mean/min/max  (``inputs="all+distance"`` only) mean, min and max over layers of
                      log(|w_l,t - w_l,0| / |w_l,0|) after step t, how far each layer has moved
                      from its initial weights (``layers.layer_init_distances``)
log_run_length        (``inputs="all+distance+length"`` only) log(T / 1000), the run's length in
                      steps; the same in every row, made when the window is read (not recorded)
loss_lr_response      (``inputs="all+distance+response"`` only) how the loss has answered the LR's own
grad_lr_response      changes: in each row, the ridge slope of the log train loss's (log gradient norm's)
                      change over RESPONSE_LAG steps on the log LR's change over the same steps, fitted
                      over the window's last RESPONSE_SPAN rows; made when the window is read (not recorded)
====================  =====================================================================

Why the momentum cosine: the other features are relative to the run's own start, so they show
how a run moves but not whether its LR is too large for this model; the gradient's alignment
with the momentum is the sign of the hypergradient (Baydin et al., 2018), negative when steps
overshoot and positive when they are too short to make progress, on any model.

Why this normalization: a policy trained on one task must read another. Losses and norms
relative to their first value remove the task's scale (an MLP and ResNet-18 start at the same
cross-entropy but with gradient norms orders of magnitude apart); the LR relative to the base
LR is what the action sets. Logs turn ratios into additive, bounded-ish numbers.

Why the response to the LR's own changes: a policy that raised the LR and saw the loss rise (or stop
falling), or that cut it and saw the loss drop, has read that the LR is above what the model bears now,
on any model and whatever the base LR; the other columns show the two curves side by side, and the
slope states their relation in one number (0 while the LR has not moved: the ridge term). Every input
is a recorded column of the window (``log_lr_factor``, ``log_train_loss``, ``log_grad_norm``), so it
costs nothing per step and demonstrations recorded for ``"all+distance"`` hold what it needs.

Why the run's length: the remaining fraction tells where a run is but not how long it is, and
the best schedule differs with it. The same actor deciding every 16-32 steps sees a 100-step
run in a handful of decisions; recipes trained on 150-1,000-step runs beat those trained on
300-3,000 on short runs and lose on long ones (docs/results.md section 7), and one actor
trained on both ranges without the length learned neither well.

Why this layer summary: the number of layers differs by architecture (2 for the MLP, 41 for
ResNet-18); the mean, min and max over layers of each layer's value is fixed-size and
layer-order-free, yet shows layers that part ways (the spread) and the trend (the mean). The extremes of
many layers lie further out than those of few; ``ControlConfig.layer_groups`` reads a model deeper than K layers
as K blocks of consecutive layers for the min and max (``learned_lr.layer_summary``).

Every feature is made finite and clipped to [-FEATURE_CLIP, FEATURE_CLIP]; a NaN or inf loss
(a diverging run) reads as the top of the range, so the policy sees "very bad", never NaN.

Example:
    >>> window, mask, context = window_from_features(np.zeros((3, NUM_FEATURES), np.float32), end=3, window=8, total_steps=100)
    >>> window.shape, mask.tolist()[-4:], [round(x, 2) for x in context.tolist()]
    ((8, 8), [0.0, 1.0, 1.0, 1.0], [0.97, -0.03, 0.38])
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

FEATURE_NAMES = (
    "remaining_fraction",
    "log_lr_factor",
    "log_train_loss",
    "log_val_loss",
    "log_grad_norm",
    "layer_grad_mean",
    "layer_grad_min",
    "layer_grad_max",
)
NUM_FEATURES = len(FEATURE_NAMES)
MOMENTUM_FEATURE_NAMES = ("momentum_cos_mean", "momentum_cos_min", "momentum_cos_max")
DISTANCE_FEATURE_NAMES = ("init_distance_mean", "init_distance_min", "init_distance_max")
LENGTH_FEATURE_NAMES = ("log_run_length",)
RESPONSE_FEATURE_NAMES = ("loss_lr_response", "grad_lr_response")
# Columns made from the others when a window is read, never recorded per step.
DERIVED_FEATURE_NAMES = LENGTH_FEATURE_NAMES + RESPONSE_FEATURE_NAMES
INPUT_CHOICES = ("all", "subramanian", "all+momentum", "all+distance", "all+distance+length", "all+distance+response")
_EXTRA_FEATURES = {"all+momentum": MOMENTUM_FEATURE_NAMES, "all+distance": DISTANCE_FEATURE_NAMES,
                   "all+distance+length": DISTANCE_FEATURE_NAMES + LENGTH_FEATURE_NAMES,
                   "all+distance+response": DISTANCE_FEATURE_NAMES + RESPONSE_FEATURE_NAMES}
# log_run_length is log(T / RUN_LENGTH_REFERENCE): 0 for a 1,000-step run, -2.8 for 60 steps, +1.1 for 3,000.
RUN_LENGTH_REFERENCE = 1000.0
# The response slope: changes over RESPONSE_LAG steps (a quarter of the policy's 32-step block, so a
# decision's ramp is seen within its block), fitted over the last RESPONSE_SPAN rows (four blocks), with
# RESPONSE_RIDGE added to the LR changes' variance (a spread of LR changes of ~0.1 in log, a 10% move,
# weighs half; an LR held still reads 0, not noise over nothing).
RESPONSE_LAG = 8
# Each response column and the recorded column whose response it reads.
_RESPONSE_OF = {"loss_lr_response": "log_train_loss", "grad_lr_response": "log_grad_norm"}
RESPONSE_SPAN = 128
RESPONSE_RIDGE = 0.01


def input_feature_names(inputs: str) -> tuple[str, ...]:
    """The per-step feature columns a policy with ``inputs`` reads (``ControlConfig.inputs``)."""
    if inputs not in INPUT_CHOICES:
        raise ValueError(f"unknown inputs {inputs!r}; choose from {', '.join(INPUT_CHOICES)}")
    return FEATURE_NAMES + _EXTRA_FEATURES.get(inputs, ())


def num_inputs(inputs: str) -> int:
    """How many feature columns a policy with ``inputs`` reads per step."""
    return len(input_feature_names(inputs))


def recorded_feature_names(inputs: str) -> tuple[str, ...]:
    """The columns a run's history records per step for ``inputs``: all it reads but the derived
    ones (the run's length, the response slopes), which ``window_from_features`` adds (so
    ``"all+distance+length"`` records the rows ``"all+distance"`` does, and reads rows recorded for it)."""
    return tuple(name for name in input_feature_names(inputs) if name not in DERIVED_FEATURE_NAMES)


def reads_momentum(inputs: str) -> bool:
    """Whether a policy with ``inputs`` reads the gradient-momentum cosines (a run must measure them)."""
    return MOMENTUM_FEATURE_NAMES[0] in input_feature_names(inputs)


def reads_distance(inputs: str) -> bool:
    """Whether a policy with ``inputs`` reads each layer's distance from its initial weights (a run must keep them)."""
    return DISTANCE_FEATURE_NAMES[0] in input_feature_names(inputs)


# The log of the remaining fraction is given beside the fraction itself: expert schedules are
# close to linear in it near the end of a run (cosine ~ 2 log r, polynomial ~ p log r), where
# a log-space action needs precision the linear fraction gives poorly (in development, adding it
# cut a cosine BC policy's rollout LR error from 0.085 to 0.006).
CONTEXT_NAMES = ("remaining_fraction_now", "log_remaining_fraction_now", "history_fill")
NUM_CONTEXT = len(CONTEXT_NAMES)
FEATURE_CLIP = 10.0


# The inputs of Subramanian et al. (2023): remaining time, validation loss, layer-wise gradient
# norms. ``inputs="subramanian"`` zeroes the other columns (train loss, previous LRs).
SUBRAMANIAN_FEATURES = ("remaining_fraction", "log_val_loss", "log_grad_norm", "layer_grad_mean", "layer_grad_min", "layer_grad_max")
_INPUT_MASKS = {
    "all": np.ones(NUM_FEATURES, dtype=np.float32),
    "all+momentum": np.ones(NUM_FEATURES + len(MOMENTUM_FEATURE_NAMES), dtype=np.float32),
    "all+distance": np.ones(NUM_FEATURES + len(DISTANCE_FEATURE_NAMES), dtype=np.float32),
    "all+distance+length": np.ones(NUM_FEATURES + len(DISTANCE_FEATURE_NAMES) + len(LENGTH_FEATURE_NAMES), dtype=np.float32),
    "all+distance+response": np.ones(NUM_FEATURES + len(DISTANCE_FEATURE_NAMES) + len(RESPONSE_FEATURE_NAMES), dtype=np.float32),
    "subramanian": np.array([name in SUBRAMANIAN_FEATURES for name in FEATURE_NAMES], dtype=np.float32),
}


def window_from_features(features: np.ndarray, end: int, window: int, total_steps: int, inputs: str = "all",
                         first_step: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The observation at a decision before step ``end`` from a run's per-step feature rows (row 0 is step ``first_step``)."""
    columns = _INPUT_MASKS[inputs]
    recorded = len(recorded_feature_names(inputs))
    if features.shape[1] < recorded:
        raise ValueError(f"a policy with inputs={inputs!r} reads {recorded} recorded features per step; these runs recorded "
                         f"{features.shape[1]} (recorded for another policy's inputs)")
    start = max(0, end - window)
    filled = end - start
    out = np.zeros((window, len(columns)), dtype=np.float32)
    mask = np.zeros(window, dtype=np.float32)
    if filled:
        rows = features[start - first_step : end - first_step, :recorded]
        out[window - filled :, :recorded] = rows * columns[:recorded]
        for offset, name in enumerate(input_feature_names(inputs)[recorded:], start=recorded):  # derived, in every real row
            if name == "log_run_length":
                out[window - filled :, offset] = np.clip(math.log(total_steps / RUN_LENGTH_REFERENCE), -FEATURE_CLIP, FEATURE_CLIP)
            else:
                response_of = FEATURE_NAMES.index(_RESPONSE_OF[name])
                out[window - filled :, offset] = response_slopes(rows[:, FEATURE_NAMES.index("log_lr_factor")], rows[:, response_of])
        mask[window - filled :] = 1.0
    remaining = (total_steps - end) / total_steps
    log_remaining = max(math.log(remaining), -FEATURE_CLIP) if remaining > 0 else -FEATURE_CLIP
    context = np.array([remaining, log_remaining, filled / window], dtype=np.float32)
    return out, mask, context


def response_slopes(log_lr: np.ndarray, log_value: np.ndarray, lag: int = RESPONSE_LAG, span: int = RESPONSE_SPAN,
                    ridge: float = RESPONSE_RIDGE) -> np.ndarray:
    """Per row, the ridge slope of ``log_value``'s change over ``lag`` rows on ``log_lr``'s, over the last ``span`` rows.

    Rows read only what came before them within the given rows (a window is its own history), so the
    window a policy reads in deployment (its last W steps) gives the same numbers as in training.
    Rows with fewer than two changes read 0. Why by hand: a rolling least-squares slope is five rolling
    sums (count, x, y, x*x, x*y); numpy's cumulative sums give them for all rows at once.

    >>> lr = np.repeat([0.0, 0.5, 0.0, 0.5], 8)          # the LR moves up and down in steps of 8
    >>> [round(float(x), 2) for x in response_slopes(lr, 0.2 * lr)[[7, 15, 31]]]  # the value follows at 0.2 per log LR
    [0.0, 0.0, 0.19]

    (Row 15 has seen one rise only: every change alike, nothing to tell the LR's part from a trend.)
    """
    n = len(log_lr)
    out = np.zeros(n, dtype=np.float32)
    if n <= lag:
        return out
    log_lr, log_value = np.asarray(log_lr, dtype=np.float64), np.asarray(log_value, dtype=np.float64)
    if not (np.isfinite(log_lr).all() and np.isfinite(log_value).all()):  # recorded columns never are; one inf would poison every later sum
        log_lr, log_value = (np.clip(np.nan_to_num(v, nan=FEATURE_CLIP), -FEATURE_CLIP, FEATURE_CLIP) for v in (log_lr, log_value))
    x, y = log_lr[lag:] - log_lr[:-lag], log_value[lag:] - log_value[:-lag]
    sums = np.zeros((5, len(x) + 1))
    np.cumsum(np.stack([np.ones_like(x), x, y, x * x, x * y]), axis=1, out=sums[:, 1:])
    last = np.arange(1, len(x) + 1)
    count, sx, sy, sxx, sxy = sums[:, last] - sums[:, np.maximum(last - span, 0)]
    variance = sxx / count - (sx / count) ** 2
    covariance = sxy / count - (sx / count) * (sy / count)
    slope = np.where(count >= 2, covariance / (np.maximum(variance, 0.0) + ridge), 0.0)
    out[lag:] = np.clip(np.nan_to_num(slope, nan=0.0), -FEATURE_CLIP, FEATURE_CLIP)
    return out


def stack_observations(observations: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack per-run observations into batch arrays (N, W, F), (N, W), (N, C)."""
    windows, masks, contexts = zip(*observations)
    return np.stack(windows), np.stack(masks), np.stack(contexts)

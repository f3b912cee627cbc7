"""What the policy sees: a window of the last W steps of normalized per-step features.

Per step t (the LR used at t and what step t observed):

====================  =====================================================================
remaining_fraction    (T - t - 1) / T: how much of the run is left after this step
log_lr_factor         log(lr_t / base_lr): the LR as a fraction of the optimizer's base (peak) LR
log_train_loss        log(train_loss_t / train_loss_0)
log_val_loss          log(val_loss_t / train_loss_0) (same reference, so train/val gap is visible)
log_grad_norm         log(|g_t| / |g_0|), |g| the global gradient norm
layer_grad_mean/min/max  mean, min and max over layers l of log(|g_l,t| / |g_l,0|)
====================  =====================================================================

Why this normalization: a policy trained on one task must read another. Losses and norms
relative to their first value remove the task's scale (an MLP and ResNet-18 start at the same
cross-entropy but with gradient norms orders of magnitude apart); the LR relative to the base
LR is what the action sets. Logs turn ratios into additive, bounded-ish numbers.

Why this layer summary: the number of layers differs by architecture (2 for the MLP, 41
parameterized modules for ResNet-18). Each layer's gradient norm relative to its own first
value, then the mean, min and max over layers, is a fixed-size, layer-order-free vector that
still shows when some layers' gradients grow while others shrink (the spread) and the
typical trend (the mean). Quantiles beyond min/max add little for 2-layer models.

Every feature is made finite and clipped to [-FEATURE_CLIP, FEATURE_CLIP]; a NaN or inf loss
(a diverging run) reads as the top of the range, so the policy sees "very bad", never NaN.

Example:
    >>> history = RunHistory(total_steps=100, base_lr=0.1, window=512)
    >>> history.record(lr=0.1, train_loss=2.3, val_loss=2.2, layer_grad_norms=[1.0, 0.5])
    >>> window, mask, context = history.observation()
    >>> window.shape, mask.shape, context.shape
    ((512, 8), (512,), (3,))
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
# The log of the remaining fraction is given beside the fraction itself: expert schedules are
# close to linear in it near the end of a run (cosine ~ 2 log r, polynomial ~ p log r), where
# a log-space action needs precision the linear fraction gives poorly (in development, adding it
# cut a cosine BC policy's rollout LR error from 0.085 to 0.006).
CONTEXT_NAMES = ("remaining_fraction_now", "log_remaining_fraction_now", "history_fill")
NUM_CONTEXT = len(CONTEXT_NAMES)
FEATURE_CLIP = 10.0
_TINY = 1e-12


def _safe_log_ratio(value: float, reference: float) -> float:
    """log(value / reference), made finite: NaN or +inf reads as +FEATURE_CLIP (a blow-up)."""
    if not math.isfinite(value) or not math.isfinite(reference) or reference <= 0:
        return FEATURE_CLIP
    return float(np.clip(math.log(max(value, _TINY) / max(reference, _TINY)), -FEATURE_CLIP, FEATURE_CLIP))


class RunHistory:
    """Per-step features of one run, recorded as it goes, and the policy's view of them."""

    def __init__(self, total_steps: int, base_lr: float, window: int, inputs: str = "all"):
        if total_steps <= 0:
            raise ValueError(f"total_steps must be > 0, got {total_steps}")
        if not (math.isfinite(base_lr) and base_lr > 0):
            raise ValueError(f"base_lr must be a finite number > 0, got {base_lr}")
        self.total_steps = total_steps
        self.base_lr = base_lr
        self.window = window
        self.inputs = inputs
        self.features = np.zeros((total_steps, NUM_FEATURES), dtype=np.float32)
        self.train_loss = np.full(total_steps, np.nan)
        self.val_loss = np.full(total_steps, np.nan)
        self.lrs = np.full(total_steps, np.nan)
        self.steps = 0
        self._first_train_loss = math.nan
        self._first_grad_norm = math.nan
        self._first_layer_norms: np.ndarray | None = None

    def record(self, lr: float, train_loss: float, val_loss: float, layer_grad_norms: Sequence[float] | np.ndarray) -> None:
        """Append one step. Values may be NaN/inf (a diverging run); features stay finite."""
        t = self.steps
        if t >= self.total_steps:
            raise IndexError(f"run already has its {self.total_steps} steps")
        norms = np.nan_to_num(np.asarray(layer_grad_norms, dtype=np.float64).reshape(-1), nan=np.inf)
        with np.errstate(over="ignore", invalid="ignore"):
            total_norm = float(np.sqrt(np.sum(np.square(norms)))) if norms.size else math.nan
        if t == 0:
            self._first_train_loss = train_loss if math.isfinite(train_loss) and train_loss > 0 else 1.0
            self._first_grad_norm = total_norm if math.isfinite(total_norm) and total_norm > 0 else 1.0
            self._first_layer_norms = np.where(np.isfinite(norms) & (norms > 0), norms, 1.0)
        if norms.size and self._first_layer_norms is not None and norms.size == self._first_layer_norms.size:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios = np.log(np.maximum(norms, _TINY) / self._first_layer_norms)
            ratios = np.clip(np.nan_to_num(ratios, nan=FEATURE_CLIP, posinf=FEATURE_CLIP, neginf=-FEATURE_CLIP), -FEATURE_CLIP, FEATURE_CLIP)
            layer_stats = (float(ratios.mean()), float(ratios.min()), float(ratios.max()))
        else:
            layer_stats = (0.0, 0.0, 0.0)
        lr_factor = lr / self.base_lr if math.isfinite(lr) else math.nan
        self.features[t] = (
            (self.total_steps - t - 1) / self.total_steps,
            _safe_log_ratio(lr_factor, 1.0),
            _safe_log_ratio(train_loss, self._first_train_loss),
            _safe_log_ratio(val_loss, self._first_train_loss),
            _safe_log_ratio(total_norm, self._first_grad_norm),
            *layer_stats,
        )
        self.train_loss[t], self.val_loss[t], self.lrs[t] = train_loss, val_loss, lr
        self.steps += 1

    def state(self) -> dict:
        """Everything needed to continue this history elsewhere: plain values and numpy arrays."""
        return {
            "steps": self.steps,
            "features": self.features.copy(),
            "train_loss": self.train_loss.copy(),
            "val_loss": self.val_loss.copy(),
            "lrs": self.lrs.copy(),
            "first_train_loss": self._first_train_loss,
            "first_grad_norm": self._first_grad_norm,
            "first_layer_norms": None if self._first_layer_norms is None else self._first_layer_norms.copy(),
        }

    def load_state(self, state: dict) -> None:
        """Restore what ``state()`` returned (arrays may come back as tensors or numpy arrays)."""
        as_array = lambda value: np.asarray(value.numpy() if hasattr(value, "numpy") else value)  # noqa: E731
        if as_array(state["features"]).shape != self.features.shape:
            raise ValueError(f"history state has {as_array(state['features']).shape[0]} steps, this history {self.total_steps}")
        self.steps = int(state["steps"])
        self.features[:] = as_array(state["features"])
        self.train_loss[:] = as_array(state["train_loss"])
        self.val_loss[:] = as_array(state["val_loss"])
        self.lrs[:] = as_array(state["lrs"])
        self._first_train_loss = float(state["first_train_loss"])
        self._first_grad_norm = float(state["first_grad_norm"])
        first = state["first_layer_norms"]
        self._first_layer_norms = None if first is None else as_array(first).astype(np.float64).copy()

    def normalized_losses(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Train and val losses of steps [start, end) relative to the first train loss (the reward's scale)."""
        return self.train_loss[start:end] / self._first_train_loss, self.val_loss[start:end] / self._first_train_loss

    def observation(self, at_step: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(window (W, F), mask (W,), context (C,)) for a decision taken before step ``at_step``.

        The window holds steps [at_step - W, at_step), left-padded with zeros where the run is
        younger than W; mask is 1 for real steps. ``at_step`` defaults to the steps recorded.
        """
        end = self.steps if at_step is None else at_step
        if not 0 <= end <= self.steps:
            raise ValueError(f"at_step must be in [0, {self.steps}], got {at_step}")
        return window_from_features(self.features, end, self.window, self.total_steps, self.inputs)


# The inputs of Subramanian et al. (2023): remaining time, validation loss, layer-wise gradient
# norms. ``inputs="subramanian"`` zeroes the other columns (train loss, previous LRs).
SUBRAMANIAN_FEATURES = ("remaining_fraction", "log_val_loss", "log_grad_norm", "layer_grad_mean", "layer_grad_min", "layer_grad_max")
_INPUT_MASKS = {
    "all": np.ones(NUM_FEATURES, dtype=np.float32),
    "subramanian": np.array([name in SUBRAMANIAN_FEATURES for name in FEATURE_NAMES], dtype=np.float32),
}


def window_from_features(features: np.ndarray, end: int, window: int, total_steps: int, inputs: str = "all") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The observation at a decision before step ``end`` from a run's per-step feature rows."""
    start = max(0, end - window)
    filled = end - start
    out = np.zeros((window, features.shape[1]), dtype=np.float32)
    mask = np.zeros(window, dtype=np.float32)
    if filled:
        out[window - filled :] = features[start:end] * _INPUT_MASKS[inputs]
        mask[window - filled :] = 1.0
    remaining = (total_steps - end) / total_steps
    log_remaining = max(math.log(remaining), -FEATURE_CLIP) if remaining > 0 else -FEATURE_CLIP
    context = np.array([remaining, log_remaining, filled / window], dtype=np.float32)
    return out, mask, context


def stack_observations(observations: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack per-run observations into batch arrays (N, W, F), (N, W), (N, C)."""
    windows, masks, contexts = zip(*observations)
    return np.stack(windows), np.stack(masks), np.stack(contexts)

"""What the policy sees: a window of the last W steps of normalized per-step features.

Per step t (the LR used at t and what step t observed):

====================  =====================================================================
remaining_fraction    (T - t - 1) / T: how much of the run is left after this step
log_lr_factor         log(lr_t / base_lr): the LR as a fraction of the optimizer's base (peak) LR
log_train_loss        log(train_loss_t / train_loss_0)
log_val_loss          log(val_loss_t / train_loss_0) (same reference, so train/val gap is visible)
log_grad_norm         log(|g_t| / |g_0|), |g| the global gradient norm
layer_grad_mean/min/max  mean, min and max over layers l of log(|g_l,t| / |g_l,0|)
momentum_cos_mean/min/max  (``inputs="all+momentum"`` only) mean, min and max over layers of
                      cos(g_l,t, m_l,t-1), the gradient against the optimizer's momentum
                      (``layers.layer_momentum_cosines``); 0 where unknown (first step)
====================  =====================================================================

Why the momentum cosine: the other features are relative to the run's own start, so they show
how a run moves but not whether its LR is too large for this model; the gradient's alignment
with the momentum is the sign of the hypergradient (Baydin et al., 2018), negative when steps
overshoot and positive when they are too short to make progress, on any model.

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
MOMENTUM_FEATURE_NAMES = ("momentum_cos_mean", "momentum_cos_min", "momentum_cos_max")
INPUT_CHOICES = ("all", "subramanian", "all+momentum")


def input_feature_names(inputs: str) -> tuple[str, ...]:
    """The per-step feature columns a policy with ``inputs`` reads (``ControlConfig.inputs``)."""
    if inputs not in INPUT_CHOICES:
        raise ValueError(f"unknown inputs {inputs!r}; choose from {', '.join(INPUT_CHOICES)}")
    return FEATURE_NAMES + MOMENTUM_FEATURE_NAMES if inputs == "all+momentum" else FEATURE_NAMES


def num_inputs(inputs: str) -> int:
    """How many feature columns a policy with ``inputs`` reads per step."""
    return len(input_feature_names(inputs))
# The log of the remaining fraction is given beside the fraction itself: expert schedules are
# close to linear in it near the end of a run (cosine ~ 2 log r, polynomial ~ p log r), where
# a log-space action needs precision the linear fraction gives poorly (in development, adding it
# cut a cosine BC policy's rollout LR error from 0.085 to 0.006).
CONTEXT_NAMES = ("remaining_fraction_now", "log_remaining_fraction_now", "history_fill")
NUM_CONTEXT = len(CONTEXT_NAMES)
FEATURE_CLIP = 10.0
_TINY = 1e-12


class RunHistory:
    """Per-step features of one run, recorded as it goes, and the policy's view of them.

    ``record`` only stores the raw numbers of a step (it runs every training step, so it must
    cost microseconds, not the ~0.2 ms that per-step feature arithmetic in Python costs); the
    feature rows are computed for all new steps at once, vectorized, when ``features`` or an
    observation is read (once per decision).
    """

    def __init__(self, total_steps: int, base_lr: float, window: int, inputs: str = "all"):
        if total_steps <= 0:
            raise ValueError(f"total_steps must be > 0, got {total_steps}")
        if not (math.isfinite(base_lr) and base_lr > 0):
            raise ValueError(f"base_lr must be a finite number > 0, got {base_lr}")
        self.total_steps = total_steps
        self.base_lr = base_lr
        self.window = window
        self.inputs = inputs
        self.reads_momentum = inputs == "all+momentum"
        # The arrays grow with the steps recorded (doubling, up to total_steps), so a history of a
        # 10^6-step run costs what its recorded steps cost, not 10^6 rows from step 0.
        self._capacity = 0
        self._features = np.zeros((0, num_inputs(inputs)), dtype=np.float32)
        self._features_done = 0  # rows of _features computed so far
        self._train_loss = np.zeros(0)
        self._val_loss = np.zeros(0)
        self._lrs = np.zeros(0)
        self._layer_norms: np.ndarray | None = None  # (capacity, layers), sized at the first record
        self._layers_match = np.zeros(0, dtype=bool)
        self._total_norm = np.zeros(0)
        self._momentum_cos: np.ndarray | None = None  # (capacity, layers), only for a policy that reads it
        # Steps recorded but not yet written into the arrays above: (lr, train, val, norms, cosines) tuples.
        self._pending: list[tuple] = []
        self.steps = 0
        self._first_train_loss = math.nan
        self._first_grad_norm = math.nan
        self._first_layer_norms: np.ndarray | None = None

    def record(self, lr: float, train_loss: float, val_loss: float, layer_grad_norms: Sequence[float] | np.ndarray,
               layer_momentum_cos: Sequence[float] | np.ndarray | None = None) -> None:
        """Append one step. Values may be NaN/inf (a diverging run); features stay finite.

        ``layer_momentum_cos`` (per layer, see ``layers.layer_momentum_cosines``) is kept only
        when the policy reads it (``inputs="all+momentum"``); missing, it reads as unknown (0).

        Why a Python list and not numpy writes: this runs inside the user's training loop, where
        the training step has just pushed numpy's code and data out of the CPU caches; there ten
        small numpy calls cost ~50 us (1.5 us when warm), a list append ~1 us. The rows are
        written into arrays, vectorized, when anything reads the history (once per decision).
        """
        t = self.steps
        if t >= self.total_steps:
            raise IndexError(f"run already has its {self.total_steps} steps")
        if type(layer_grad_norms) is not tuple:  # noqa: E721 - a tuple of floats is the fast path
            layer_grad_norms = tuple(np.asarray(layer_grad_norms, dtype=np.float64).reshape(-1).tolist())
        if t == 0:
            self._reserve(1)
            self._start(train_loss, np.array(layer_grad_norms, dtype=np.float64))
        cosines = None
        if self.reads_momentum and layer_momentum_cos is not None:
            cosines = layer_momentum_cos if type(layer_momentum_cos) is tuple else tuple(np.asarray(layer_momentum_cos, dtype=np.float64).reshape(-1).tolist())  # noqa: E721
        self._pending.append((lr, train_loss, val_loss, layer_grad_norms, cosines))
        self.steps = t + 1

    def _start(self, train_loss: float, norms: np.ndarray) -> None:
        """The first step's values: the references that every later feature is relative to."""
        finite_norms = np.nan_to_num(norms, nan=np.inf)
        with np.errstate(over="ignore", invalid="ignore"):
            total_norm = float(np.sqrt(np.sum(np.square(finite_norms)))) if norms.size else math.nan
        self._first_train_loss = train_loss if math.isfinite(train_loss) and train_loss > 0 else 1.0
        self._first_grad_norm = total_norm if math.isfinite(total_norm) and total_norm > 0 else 1.0
        self._first_layer_norms = np.where(np.isfinite(finite_norms) & (finite_norms > 0), finite_norms, 1.0)
        self._layer_norms = np.zeros((self._capacity, norms.size))
        if self.reads_momentum:
            self._momentum_cos = np.full((self._capacity, norms.size), np.nan)

    def _reserve(self, rows: int) -> None:
        """Make room for ``rows`` steps (at most ``total_steps``): at least double the capacity."""
        if rows <= self._capacity:
            return
        capacity = min(self.total_steps, max(rows, 2 * self._capacity, 256))
        grow = lambda array, fill: np.concatenate([array, np.full((capacity - len(array),) + array.shape[1:], fill, dtype=array.dtype)])  # noqa: E731
        self._features = grow(self._features, 0.0)
        self._train_loss, self._val_loss, self._lrs = grow(self._train_loss, np.nan), grow(self._val_loss, np.nan), grow(self._lrs, np.nan)
        self._layers_match, self._total_norm = grow(self._layers_match, False), grow(self._total_norm, np.nan)
        if self._layer_norms is not None:
            self._layer_norms = grow(self._layer_norms, 0.0)
        if self._momentum_cos is not None:
            self._momentum_cos = grow(self._momentum_cos, np.nan)
        self._capacity = capacity

    def _flush(self) -> None:
        """Write the pending steps into the arrays."""
        if not self._pending:
            return
        end = self.steps
        start = end - len(self._pending)
        self._reserve(end)
        lrs, trains, vals, norm_rows, cosine_rows = zip(*self._pending)
        self._pending = []
        self._lrs[start:end], self._train_loss[start:end], self._val_loss[start:end] = lrs, trains, vals
        layers = self._layer_norms.shape[1]
        if self._momentum_cos is not None:
            for t, row in enumerate(cosine_rows, start):
                if row is not None and len(row) == layers:
                    self._momentum_cos[t] = row
        if layers and all(len(row) == layers for row in norm_rows):
            self._layer_norms[start:end] = norm_rows
            self._layers_match[start:end] = True
            return
        for t, row in enumerate(norm_rows, start):
            if layers and len(row) == layers:
                self._layer_norms[t] = row
                self._layers_match[t] = True
            else:  # a step with another number of layers (or none): only its total norm is used
                norms = np.array(row, dtype=np.float64)
                with np.errstate(over="ignore", invalid="ignore"):
                    self._total_norm[t] = float(np.sqrt(np.sum(np.square(np.nan_to_num(norms, nan=np.inf))))) if norms.size else math.nan

    @property
    def train_loss(self) -> np.ndarray:
        """(steps,) training loss of each recorded step. Treat as read-only."""
        self._flush()
        return self._train_loss[: self.steps]

    @property
    def val_loss(self) -> np.ndarray:
        """(steps,) validation loss of each recorded step. Treat as read-only."""
        self._flush()
        return self._val_loss[: self.steps]

    @property
    def lrs(self) -> np.ndarray:
        """(steps,) LR of each recorded step. Treat as read-only."""
        self._flush()
        return self._lrs[: self.steps]

    @property
    def layer_grad_norms(self) -> np.ndarray:
        """(steps, layers) gradient norm of every layer at each recorded step; NaN where a step had another number of layers."""
        self._flush()
        if self._layer_norms is None:
            return np.zeros((self.steps, 0))
        norms = self._layer_norms[: self.steps].copy()
        norms[~self._layers_match[: self.steps]] = np.nan
        return norms

    @property
    def features(self) -> np.ndarray:
        """(steps, F) feature rows of the recorded steps. Treat as read-only."""
        self._flush()
        start, end = self._features_done, self.steps
        if end > start:
            self._features[start:end] = self._compute_features(start, end)
            self._features_done = end
        return self._features[:end]

    def _compute_features(self, start: int, end: int) -> np.ndarray:
        # Called once per decision inside the user's training loop, so it is written as few
        # whole-array numpy calls as possible (each costs microseconds whatever its size). A log
        # ratio is made finite: a NaN or +inf value, or an unusable reference, reads as
        # +FEATURE_CLIP (a blow-up).
        out = np.empty((end - start, self._features.shape[1]), dtype=np.float32)
        out[:, 0] = (self.total_steps - np.arange(start, end) - 1) / self.total_steps
        # As in ``record``: NaN reads as a blow-up (the largest float, as +inf does).
        norms = np.nan_to_num(self._layer_norms[start:end], nan=np.inf)
        match = self._layers_match[start:end]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            total_norm = np.where(match, np.sqrt(np.square(norms).sum(axis=1)), self._total_norm[start:end])
            # Columns 1-4: lr factor, train loss, val loss, total gradient norm, each a log ratio.
            values = np.stack([self._lrs[start:end] / self.base_lr, self._train_loss[start:end], self._val_loss[start:end], total_norm], axis=1)
            references = np.array([1.0, self._first_train_loss, self._first_train_loss, self._first_grad_norm])
            logs = np.log(np.maximum(values, _TINY) / np.maximum(references, _TINY))
            logs = np.where(np.isfinite(values) & (np.isfinite(references) & (references > 0)), np.clip(logs, -FEATURE_CLIP, FEATURE_CLIP), FEATURE_CLIP)
            out[:, 1:5] = logs
            ratios = np.log(np.maximum(norms, _TINY) / self._first_layer_norms)
        ratios = np.where(np.isnan(ratios), FEATURE_CLIP, np.clip(ratios, -FEATURE_CLIP, FEATURE_CLIP))
        out[:, 5:] = 0.0
        if ratios.shape[1] and match.any():
            out[match, 5:8] = np.stack([ratios.mean(1), ratios.min(1), ratios.max(1)], axis=1)[match]
        if self._momentum_cos is not None and self._momentum_cos.shape[1]:
            out[:, 8:11] = _cosine_summary(self._momentum_cos[start:end])
        return out

    def state(self) -> dict:
        """Everything needed to continue this history elsewhere: plain values and numpy arrays.

        The arrays hold the recorded steps only, so a state saved early in a long run is small
        (a run of 10^6 steps does not save 10^6 rows at step 0).
        """
        self._flush()
        n = self.steps
        layers = 0 if self._layer_norms is None else self._layer_norms.shape[1]
        cosines = {} if self._momentum_cos is None else {"momentum_cos": self._momentum_cos[:n].copy()}
        return {
            **cosines,
            "steps": n,
            "total_steps": self.total_steps,
            "train_loss": self._train_loss[:n].copy(),
            "val_loss": self._val_loss[:n].copy(),
            "lrs": self._lrs[:n].copy(),
            "layer_norms": np.zeros((n, 0)) if self._layer_norms is None else self._layer_norms[:n].copy(),
            "layers_match": self._layers_match[:n].copy(),
            "total_norm": self._total_norm[:n].copy(),
            "has_layers": self._layer_norms is not None,
            "first_train_loss": self._first_train_loss,
            "first_grad_norm": self._first_grad_norm,
            "first_layer_norms": np.zeros(layers) if self._first_layer_norms is None else self._first_layer_norms.copy(),
        }

    def load_state(self, state: dict) -> None:
        """Restore what ``state()`` returned (arrays may come back as tensors or numpy arrays).

        The state may come from a run of another length (a run extended on resume): its recorded
        steps are kept, and every feature is recomputed for this history's ``total_steps``, so
        the remaining fraction reads as if the run had always been this long.
        """
        as_array = lambda value: np.asarray(value.numpy() if hasattr(value, "numpy") else value)  # noqa: E731
        steps = int(state["steps"])
        if steps > self.total_steps:
            raise ValueError(f"history state has {steps} steps recorded, more than this history's total_steps={self.total_steps}")
        self._pending = []
        self.steps = steps
        self._capacity = 0
        features = num_inputs(self.inputs)
        self._features, self._train_loss, self._val_loss, self._lrs = np.zeros((0, features), dtype=np.float32), np.zeros(0), np.zeros(0), np.zeros(0)
        self._layers_match, self._total_norm = np.zeros(0, dtype=bool), np.zeros(0)
        has_layers = bool(state["has_layers"])
        saved_norms = as_array(state["layer_norms"]).astype(np.float64) if has_layers else None
        self._layer_norms = np.zeros((0, saved_norms.shape[1])) if has_layers else None
        self._momentum_cos = np.full((0, saved_norms.shape[1]), np.nan) if has_layers and self.reads_momentum else None
        self._reserve(max(steps, 1))
        for mine, key in ((self._train_loss, "train_loss"), (self._val_loss, "val_loss"), (self._lrs, "lrs"),
                          (self._layers_match, "layers_match"), (self._total_norm, "total_norm")):
            mine[:steps] = as_array(state[key])[:steps]
        if has_layers:
            self._layer_norms[:steps] = saved_norms[:steps]
        self._first_layer_norms = as_array(state["first_layer_norms"]).astype(np.float64).copy() if has_layers else None
        if self._momentum_cos is not None and "momentum_cos" in state:
            saved = as_array(state["momentum_cos"]).astype(np.float64)
            if saved.shape[1:] == self._momentum_cos.shape[1:]:
                self._momentum_cos[:steps] = saved[:steps]
        self._first_train_loss = float(state["first_train_loss"])
        self._first_grad_norm = float(state["first_grad_norm"])
        self._features_done = 0

    def normalized_losses(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Train and val losses of steps [start, end) relative to the first train loss (the reward's scale)."""
        self._flush()
        return self._train_loss[start:end] / self._first_train_loss, self._val_loss[start:end] / self._first_train_loss

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
    "all+momentum": np.ones(NUM_FEATURES + len(MOMENTUM_FEATURE_NAMES), dtype=np.float32),
    "subramanian": np.array([name in SUBRAMANIAN_FEATURES for name in FEATURE_NAMES], dtype=np.float32),
}


def window_from_features(features: np.ndarray, end: int, window: int, total_steps: int, inputs: str = "all") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The observation at a decision before step ``end`` from a run's per-step feature rows."""
    columns = _INPUT_MASKS[inputs]
    if features.shape[1] < len(columns):
        raise ValueError(f"a policy with inputs={inputs!r} reads {len(columns)} features per step; these runs recorded "
                         f"{features.shape[1]} (recorded for another policy's inputs)")
    start = max(0, end - window)
    filled = end - start
    out = np.zeros((window, len(columns)), dtype=np.float32)
    mask = np.zeros(window, dtype=np.float32)
    if filled:
        out[window - filled :] = features[start:end, : len(columns)] * columns
        mask[window - filled :] = 1.0
    remaining = (total_steps - end) / total_steps
    log_remaining = max(math.log(remaining), -FEATURE_CLIP) if remaining > 0 else -FEATURE_CLIP
    context = np.array([remaining, log_remaining, filled / window], dtype=np.float32)
    return out, mask, context


def _cosine_summary(cosines: np.ndarray) -> np.ndarray:
    """(steps, layers) cosines -> (steps, 3) mean, min, max over the layers that have one; 0 where none."""
    known = np.isfinite(cosines)
    count = known.sum(1)
    safe = np.where(known, np.clip(cosines, -1.0, 1.0), 0.0)
    mean = np.divide(safe.sum(1), count, out=np.zeros(len(count)), where=count > 0)
    low = np.where(count > 0, np.where(known, safe, np.inf).min(1), 0.0)
    high = np.where(count > 0, np.where(known, safe, -np.inf).max(1), 0.0)
    return np.stack([mean, low, high], axis=1)


def stack_observations(observations: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack per-run observations into batch arrays (N, W, F), (N, W), (N, C)."""
    windows, masks, contexts = zip(*observations)
    return np.stack(windows), np.stack(masks), np.stack(contexts)

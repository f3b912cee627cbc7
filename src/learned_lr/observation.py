"""RunHistory: a run's per-step numbers as they are recorded, and the policy's window of their features.

What each feature is and why: ``learned_lr.features``.

Example:
    >>> history = RunHistory(total_steps=100, base_lr=0.1, window=512)
    >>> history.record(lr=0.1, train_loss=2.3, val_loss=2.2, layer_grad_norms=[1.0, 0.5])
    >>> window, mask, context = history.observation()
    >>> window.shape, mask.shape, context.shape
    ((512, 8), (512,), (3,))
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from learned_lr.features import FEATURE_CLIP, reads_distance, reads_momentum, recorded_feature_names, window_from_features
from learned_lr.layer_summary import cosine_summary, distance_summary, grad_norm_summary

if TYPE_CHECKING:
    from learned_lr.settings import ControlConfig

_TINY = 1e-12


class RunHistory:
    """Per-step features of one run, recorded as it goes, and the policy's view of them.

    ``record`` only stores the raw numbers of a step (it runs every training step, so it must
    cost microseconds, not the ~0.2 ms that per-step feature arithmetic in Python costs); the
    feature rows are computed for all new steps at once, vectorized, when ``features`` or an
    observation is read (once per decision).

    ``keep``: how many of the latest steps to hold (None: all). The policy reads only its window,
    so ``LearnedLR`` keeps ``window`` steps and its memory stays the same however long the run;
    training keeps every step (demonstrations and PPO read them all). The per-step properties
    hold the steps from ``first_step`` on. ``skip_zero_start`` (``ControlConfig.distance_skips_zero_start``): the distance
    features summarize only the layers that have a distance (a layer that started at zero has none, NaN).
    ``norms_from_first_nonzero`` (``ControlConfig.grad_norms_from_first_nonzero``): a layer whose first gradient is
    zero reads its norms relative to its first non-zero one, not to 1.0; ``norms_skip_zero_start``
    (``ControlConfig.grad_norms_skip_zero_start``): such a layer is left out of the layer-gradient summaries. ``layer_groups``
    (``ControlConfig.layer_groups``): the min and max over layers are over that many depth groups of a deeper model
    (``layer_summary``).
    """

    # Per-step arrays and what an unwritten row holds ("features" is float32, "layers_match" bool;
    # the per-layer "layer_norms" and "momentum_cos" exist once the number of layers is known).
    _FILL = {"train_loss": np.nan, "val_loss": np.nan, "lrs": np.nan, "total_norm": np.nan, "layers_match": False, "features": 0.0,
             "layer_norms": 0.0, "momentum_cos": np.nan, "init_distance": np.nan}

    def __init__(self, total_steps: int, base_lr: float, window: int, inputs: str = "all", keep: int | None = None,
                 skip_zero_start: bool = False, norms_from_first_nonzero: bool = False, layer_groups: int = 0,
                 norms_skip_zero_start: bool = False):
        if total_steps <= 0:
            raise ValueError(f"total_steps must be > 0, got {total_steps}")
        if not (math.isfinite(base_lr) and base_lr > 0):
            raise ValueError(f"base_lr must be a finite number > 0, got {base_lr}")
        if keep is not None and keep < window:
            raise ValueError(f"keep must be >= the window ({window}) the policy reads, got {keep}")
        self.total_steps = total_steps
        self.base_lr = base_lr
        self.window = window
        self.inputs = inputs
        self.keep = keep
        self.reads_momentum = reads_momentum(inputs)
        self.reads_distance = reads_distance(inputs)
        self.skip_zero_start = skip_zero_start  # ``ControlConfig.distance_skips_zero_start``
        self.norms_from_first_nonzero = norms_from_first_nonzero  # ``ControlConfig.grad_norms_from_first_nonzero``
        self.norms_skip_zero_start = norms_skip_zero_start  # ``ControlConfig.grad_norms_skip_zero_start``
        if norms_from_first_nonzero and norms_skip_zero_start:
            raise ValueError("a layer whose first gradient is zero either takes its first non-zero norm as reference or is left out, not both")
        self.layer_groups = layer_groups  # ``ControlConfig.layer_groups``
        self._reference_pending: np.ndarray | None = None  # layers still without a gradient-norm reference (skipped: for good)
        self._clear(layers=None)
        # Steps recorded but not yet written into the arrays: (lr, train, val, norms, cosines) tuples.
        self._pending: list[tuple] = []
        self.steps = 0
        self._first_train_loss = math.nan
        self._first_grad_norm = math.nan
        self._first_layer_norms, self._structure = None, None  # (the first step's: ``_start``)
        # The last step given distances and its values (the steps after it are filled in by ``_fill_distances``; before any: 0).
        self._distance_step = -1
        self._distance_value: np.ndarray | None = None

    @property
    def _tracks_zero_start(self) -> bool:
        """Whether the layers whose first gradient is zero are kept track of (``_reference_pending``)."""
        return self.norms_from_first_nonzero or self.norms_skip_zero_start

    @classmethod
    def of(cls, total_steps: int, base_lr: float, control: "ControlConfig", keep: int | None = None) -> "RunHistory":
        """The history a policy run under ``control`` (a ``settings.ControlConfig``) reads."""
        return cls(total_steps, base_lr, control.window, control.inputs, keep=keep, skip_zero_start=control.distance_skips_zero_start,
                   norms_from_first_nonzero=control.grad_norms_from_first_nonzero, layer_groups=control.layer_groups,
                   norms_skip_zero_start=control.grad_norms_skip_zero_start)

    def _clear(self, layers: int | None) -> None:
        """Empty arrays; the per-layer ones ("layer_norms", "momentum_cos") once the number of layers is known."""
        # The arrays grow with the steps recorded (doubling), so a history of a 10^6-step run
        # costs what its recorded (or kept) steps cost, not 10^6 rows from step 0.
        self._rows = {"train_loss": np.zeros(0), "val_loss": np.zeros(0), "lrs": np.zeros(0), "total_norm": np.zeros(0),
                      "layers_match": np.zeros(0, dtype=bool), "features": np.zeros((0, len(recorded_feature_names(self.inputs))), dtype=np.float32)}
        if layers is not None:
            self._rows["layer_norms"] = np.zeros((0, layers))
            if self.reads_momentum:
                self._rows["momentum_cos"] = np.zeros((0, layers))
            if self.reads_distance:
                self._rows["init_distance"] = np.zeros((0, layers))
        self._capacity = 0
        self.first_step = 0  # the step held in row 0 of every array
        self._features_done = 0  # steps whose feature rows are computed

    def record(self, lr: float, train_loss: float, val_loss: float, layer_grad_norms: Sequence[float] | np.ndarray,
               layer_momentum_cos: Sequence[float] | np.ndarray | None = None,
               layer_init_distance: Sequence[float] | np.ndarray | None = None) -> None:
        """Append one step. Values may be NaN/inf (a diverging run); features stay finite.

        ``layer_momentum_cos`` (per layer, see ``layers.layer_momentum_cosines``) is kept only
        when the policy reads it (``inputs="all+momentum"``); missing, it reads as unknown (0).
        ``layer_init_distance`` (``layers.layer_init_distances``) likewise for ``"all+distance"``;
        it is measured at the steps ``loop.DecisionLoop.measures_distance`` names (every step of the
        first K, then once per decision), and the steps given none in between read the straight line
        between the two measured steps around them
        (steps after the last measured one hold it until the next; NaN reads as a blow-up).

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
            self._start(train_loss, np.array(layer_grad_norms, dtype=np.float64))
        cosines = _as_tuple(layer_momentum_cos) if self.reads_momentum else None
        distances = _as_tuple(layer_init_distance) if self.reads_distance else None
        self._pending.append((lr, train_loss, val_loss, layer_grad_norms, cosines, distances))
        self.steps = t + 1

    def _start(self, train_loss: float, norms: np.ndarray) -> None:
        """The first step's values: the references that every later feature is relative to."""
        finite_norms = np.nan_to_num(norms, nan=np.inf)
        with np.errstate(over="ignore", invalid="ignore"):
            total_norm = float(np.sqrt(np.sum(np.square(finite_norms)))) if norms.size else math.nan
        self._first_train_loss = train_loss if math.isfinite(train_loss) and train_loss > 0 else 1.0
        self._first_grad_norm = total_norm if math.isfinite(total_norm) and total_norm > 0 else 1.0
        usable = np.isfinite(finite_norms) & (finite_norms > 0)
        self._first_layer_norms = np.where(usable, finite_norms, 1.0)
        # A layer whose first gradient is zero (LoRA's A while B is zero) has no reference: with norms_from_first_nonzero it
        # takes its first non-zero norm (``_adopt_references``); with norms_skip_zero_start it stays pending for good and is
        # left out of the layer-gradient summary; with neither, 1.0, and its features are absolute norms.
        self._reference_pending = ~usable if self._tracks_zero_start else None
        self._structure = (int(norms.size), int(np.count_nonzero(norms == 0)))
        self._clear(layers=norms.size)

    def _reserve(self, end: int) -> None:
        """Make room for the steps up to ``end``: drop steps older than ``keep`` first, else at least double."""
        if end - self.first_step <= self._capacity:
            return
        if self.keep is not None:
            # Steps before the last ``keep`` go, but never a pending (unwritten) one; moving the
            # kept rows down only when the arrays are full costs O(1) per step over a run.
            drop = min(end - self.keep, self.steps - len(self._pending)) - self.first_step
            if drop > 0:
                for name, array in self._rows.items():
                    array[: len(array) - drop] = array[drop:].copy()
                    array[len(array) - drop :] = self._FILL[name]
                self.first_step += drop
                self._features_done = max(self._features_done, self.first_step)
            if end - self.first_step <= self._capacity:
                return
        capacity = min(self.total_steps, max(end - self.first_step, 2 * self._capacity, 256))
        for name, array in self._rows.items():
            fill = np.full((capacity - len(array),) + array.shape[1:], self._FILL[name], dtype=array.dtype)
            self._rows[name] = np.concatenate([array, fill])
        self._capacity = capacity

    def _flush(self) -> None:
        """Write the pending steps into the arrays."""
        if not self._pending:
            return
        end = self.steps
        self._reserve(end)
        start, rows = end - len(self._pending) - self.first_step, self._rows
        stop = start + len(self._pending)
        lrs, trains, vals, norm_rows, cosine_rows, distance_rows = zip(*self._pending)
        self._pending = []
        rows["lrs"][start:stop], rows["train_loss"][start:stop], rows["val_loss"][start:stop] = lrs, trains, vals
        layer_norms = rows["layer_norms"]
        layers = layer_norms.shape[1]
        if "momentum_cos" in rows:
            for t, row in enumerate(cosine_rows, start):
                if row is not None and len(row) == layers:
                    rows["momentum_cos"][t] = row
        if "init_distance" in rows:
            self._fill_distances(start, distance_rows)
        if layers and all(len(row) == layers for row in norm_rows):
            layer_norms[start:stop] = norm_rows
            rows["layers_match"][start:stop] = True
        else:
            for t, row in enumerate(norm_rows, start):
                if layers and len(row) == layers:
                    layer_norms[t] = row
                    rows["layers_match"][t] = True
                else:  # a step with another number of layers (or none): only its total norm is used
                    norms = np.array(row, dtype=np.float64)
                    with np.errstate(over="ignore", invalid="ignore"):
                        rows["total_norm"][t] = float(np.sqrt(np.sum(np.square(np.nan_to_num(norms, nan=np.inf))))) if norms.size else math.nan
        if self.norms_from_first_nonzero and self._reference_pending is not None and self._reference_pending.any():
            self._adopt_references(start, stop)

    def _adopt_references(self, start: int, stop: int) -> None:
        """Give each layer still without a gradient-norm reference its first positive, finite norm in rows [start, stop)
        (before it, its norm was zero: those rows read the bottom of the range with any reference)."""
        norms = self._rows["layer_norms"][start:stop]
        usable = np.isfinite(norms) & (norms > 0) & self._rows["layers_match"][start:stop, None]
        found = self._reference_pending & usable.any(axis=0)
        columns = np.flatnonzero(found)
        self._first_layer_norms[columns] = norms[usable.argmax(axis=0)[columns], columns]
        self._reference_pending = self._reference_pending & ~found

    def _fill_distances(self, start: int, distance_rows: Sequence[tuple | None]) -> None:
        """Write the distances given to the steps from row ``start`` on, and fill the steps given none.

        Why a straight line and not the last value held: a policy reads how fast the weights move
        within each patch of its window, and a held value shows them standing still (a policy
        trained on per-step distances then reads "LR far too low", docs/results.md section 7).
        The distance moves smoothly, so a line between two measurements K steps apart is close to
        what measuring every step gives, for 1/K of the cost.
        """
        distance = self._rows["init_distance"]
        layers = distance.shape[1]
        for row, given in enumerate(distance_rows, start):
            if given is None or len(given) != layers:
                continue
            value, step = np.asarray(given, dtype=np.float64), row + self.first_step
            last = np.zeros(layers) if self._distance_value is None else self._distance_value
            gap = step - self._distance_step
            first = max(self._distance_step + 1, self.first_step)  # (steps already dropped by ``keep`` stay dropped)
            if first < step:
                weights = (np.arange(first, step) - self._distance_step)[:, None] / gap
                # A layer that started at zero (LoRA's B matrices) has no distance (NaN) and the line through it none
                # either; weights that blew up are at inf, and the line from there is inf or NaN: no warning.
                with np.errstate(invalid="ignore"):
                    distance[first - self.first_step : row] = last + weights * (value - last)
            distance[row] = value
            self._distance_step, self._distance_value = step, value
        held_from = max(self._distance_step + 1, self.first_step)
        if self._distance_value is not None and held_from < self.steps:  # until the next measurement
            distance[held_from - self.first_step : self.steps - self.first_step] = self._distance_value

    def _held(self, name: str) -> np.ndarray:
        self._flush()
        return self._rows[name][: self.steps - self.first_step]

    # (steps - first_step,) per held step; treat as read-only.
    train_loss = property(lambda self: self._held("train_loss"), doc="training loss of each held step")
    val_loss = property(lambda self: self._held("val_loss"), doc="validation loss of each held step")
    lrs = property(lambda self: self._held("lrs"), doc="LR of each held step")

    @property
    def structure(self) -> tuple[int, int] | None:
        """(layers, layers whose first gradient was exactly zero), read at the first step (None before): ``gates``' input."""
        return self._structure

    @property
    def layer_grad_norms(self) -> np.ndarray:
        """(steps - first_step, layers) gradient norm of every layer at each held step; NaN where a step had another number of layers."""
        if "layer_norms" not in self._rows:
            return np.zeros((self.steps, 0))
        norms = self._held("layer_norms").copy()
        norms[~self._held("layers_match")] = np.nan
        return norms

    @property
    def layer_init_distances(self) -> np.ndarray:
        """(steps - first_step, layers) each layer's distance from its initial weights at each held step, as
        the policy reads it: as measured where it was given, on the line between two measurements in between
        (``record``); (steps, 0) for a policy that does not read them."""
        if "init_distance" not in self._rows:
            return np.zeros((self.steps, 0))
        return self._held("init_distance").copy()

    @property
    def features(self) -> np.ndarray:
        """(steps - first_step, F) feature rows of the held steps. Treat as read-only."""
        self._flush()
        start, end = self._features_done, self.steps
        if end > start:
            self._rows["features"][start - self.first_step : end - self.first_step] = self._compute_features(start, end)
            # Steps after the last measured distance are computed again once it is measured.
            self._features_done = max(start, min(end, self._distance_step + 1)) if self.reads_distance else end
        return self._rows["features"][: end - self.first_step]

    def _compute_features(self, start: int, end: int) -> np.ndarray:
        # Called once per decision inside the user's training loop, so it is written as few
        # whole-array numpy calls as possible (each costs microseconds whatever its size). A log
        # ratio is made finite: a NaN or +inf value, or an unusable reference, reads as
        # +FEATURE_CLIP (a blow-up).
        rows = {name: array[start - self.first_step : end - self.first_step] for name, array in self._rows.items()}
        out = np.empty((end - start, rows["features"].shape[1]), dtype=np.float32)
        out[:, 0] = (self.total_steps - np.arange(start, end) - 1) / self.total_steps
        # As in ``record``: NaN reads as a blow-up (the largest float, as +inf does).
        norms = np.nan_to_num(rows["layer_norms"], nan=np.inf)
        match = rows["layers_match"]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            total_norm = np.where(match, np.sqrt(np.square(norms).sum(axis=1)), rows["total_norm"])
            # Columns 1-4: lr factor, train loss, val loss, total gradient norm, each a log ratio.
            values = np.stack([rows["lrs"] / self.base_lr, rows["train_loss"], rows["val_loss"], total_norm], axis=1)
            references = np.array([1.0, self._first_train_loss, self._first_train_loss, self._first_grad_norm])
            logs = np.log(np.maximum(values, _TINY) / np.maximum(references, _TINY))
            logs = np.where(np.isfinite(values) & (np.isfinite(references) & (references > 0)), np.clip(logs, -FEATURE_CLIP, FEATURE_CLIP), FEATURE_CLIP)
            out[:, 1:5] = logs
            ratios = np.log(np.maximum(norms, _TINY) / self._first_layer_norms)
        ratios = np.where(np.isnan(ratios), FEATURE_CLIP, np.clip(ratios, -FEATURE_CLIP, FEATURE_CLIP))
        out[:, 5:] = 0.0
        if ratios.shape[1] and match.any():
            skipped = self._reference_pending if self.norms_skip_zero_start else None
            out[match, 5:8] = grad_norm_summary(ratios, self.layer_groups, skipped)[match]
        if "momentum_cos" in rows and rows["momentum_cos"].shape[1]:
            out[:, 8:11] = cosine_summary(rows["momentum_cos"], self.layer_groups)
        if "init_distance" in rows and rows["init_distance"].shape[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.log(np.maximum(rows["init_distance"], _TINY))
            out[:, 8:11] = distance_summary(logs, self.skip_zero_start, FEATURE_CLIP, self.layer_groups)
        return out

    def state(self) -> dict:
        """Everything needed to continue this history elsewhere: plain values and numpy arrays.

        The arrays hold the held steps only, so a state saved early in a long run is small
        (a run of 10^6 steps does not save 10^6 rows at step 0), and with ``keep`` it stays small.
        """
        self._flush()
        held = {name: array[: self.steps - self.first_step].copy() for name, array in self._rows.items() if name != "features"}
        layers = 0 if self._first_layer_norms is None else len(self._first_layer_norms)
        return {
            **held,
            "layer_norms": held.get("layer_norms", np.zeros((len(held["lrs"]), 0))),
            "steps": self.steps,
            "first_step": self.first_step,
            "total_steps": self.total_steps,
            "has_layers": "layer_norms" in self._rows,
            "first_train_loss": self._first_train_loss,
            "first_grad_norm": self._first_grad_norm,
            "distance_step": self._distance_step,
            "first_layer_norms": np.zeros(layers) if self._first_layer_norms is None else self._first_layer_norms.copy(),
            "layer_reference_pending": np.zeros(layers, dtype=bool) if self._reference_pending is None else self._reference_pending.copy(),
            "structure": np.asarray(self._structure or (-1, -1), dtype=np.int64),
        }

    def load_state(self, state: dict) -> None:
        """Restore what ``state()`` returned (arrays may come back as tensors or numpy arrays).

        The state may come from a run of another length (a run extended on resume): its held
        steps are kept, and every feature is recomputed for this history's ``total_steps``, so
        the remaining fraction reads as if the run had always been this long.
        """
        as_array = lambda value: np.asarray(value.numpy() if hasattr(value, "numpy") else value)  # noqa: E731
        steps, saved_first = int(state["steps"]), int(state.get("first_step", 0))
        if steps > self.total_steps:
            raise ValueError(f"history state has {steps} steps recorded, more than this history's total_steps={self.total_steps}")
        first = saved_first if self.keep is None else max(saved_first, steps - self.keep)  # a state may hold more than this keeps
        has_layers = bool(state["has_layers"])
        saved = {name: as_array(value)[first - saved_first :] for name, value in state.items() if name in self._FILL}
        self._clear(layers=saved["layer_norms"].shape[1] if has_layers else None)
        self._pending, self.steps, self.first_step, self._features_done = [], steps, first, first
        self._reserve(max(steps, first + 1))
        for name, array in self._rows.items():
            if name in saved and saved[name].shape[1:] == array.shape[1:]:  # a plain history's state has no cosines: unknown
                array[: steps - first] = saved[name][: steps - first]
        self._first_layer_norms = as_array(state["first_layer_norms"]).astype(np.float64).copy() if has_layers else None
        pending = state.get("layer_reference_pending")  # (a state saved before it: every layer has its reference)
        self._reference_pending = (as_array(pending).astype(bool).copy() if pending is not None and has_layers else
                                   np.zeros(len(self._first_layer_norms), dtype=bool)) if self._tracks_zero_start and has_layers else None
        layers, zero_start = (int(v) for v in as_array(state.get("structure", (-1, -1))).reshape(-1))  # -1: none read (or an older state)
        self._structure = (layers, zero_start) if layers >= 0 else ((len(self._first_layer_norms), 0) if has_layers else None)
        self._first_train_loss = float(state["first_train_loss"])
        self._first_grad_norm = float(state["first_grad_norm"])
        held_distances = self._rows.get("init_distance")
        self._distance_step, self._distance_value = -1, None
        if held_distances is not None and steps > first:
            # The last measured step (a state from before interpolation measured every step).
            self._distance_step = min(int(state.get("distance_step", steps - 1)), steps - 1)
            if self._distance_step >= first:
                self._distance_value = held_distances[self._distance_step - first].copy()

    def normalized_losses(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Train and val losses of steps [start, end) relative to the first train loss (the reward's scale)."""
        if start < self.first_step:
            raise ValueError(f"steps before {self.first_step} are no longer held (keep={self.keep})")
        self._flush()
        rows, offset = self._rows, self.first_step
        return rows["train_loss"][start - offset : end - offset] / self._first_train_loss, rows["val_loss"][start - offset : end - offset] / self._first_train_loss

    def observation(self, at_step: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(window (W, F), mask (W,), context (C,)) for a decision taken before step ``at_step``.

        The window holds steps [at_step - W, at_step), left-padded with zeros where the run is
        younger than W; mask is 1 for real steps. ``at_step`` defaults to the steps recorded.
        """
        end = self.steps if at_step is None else at_step
        if not 0 <= end <= self.steps:
            raise ValueError(f"at_step must be in [0, {self.steps}], got {at_step}")
        if max(0, end - self.window) < self.first_step:
            raise ValueError(f"the window before step {end} starts before step {self.first_step}, the first one held (keep={self.keep})")
        return window_from_features(self.features, end, self.window, self.total_steps, self.inputs, first_step=self.first_step)


def _as_tuple(values: Sequence[float] | np.ndarray | None) -> tuple[float, ...] | None:
    """A per-layer row as a tuple of floats (a tuple is kept as it is: the fast path in ``record``)."""
    if values is None or type(values) is tuple:  # noqa: E721
        return values
    return tuple(np.asarray(values, dtype=np.float64).reshape(-1).tolist())

"""``LearnedLR``: the learned policy as a drop-in ``torch.optim.lr_scheduler.LRScheduler``.

Example (a plain PyTorch loop; only the scheduler line changes):

    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)      # doctest: +SKIP
    >>> scheduler = LearnedLR(optimizer, total_steps=1000)
    >>> for x, y in batches:
    ...     optimizer.zero_grad()
    ...     loss = loss_fn(model(x), y)
    ...     loss.backward()
    ...     optimizer.step()
    ...     scheduler.observe(train_loss=loss.item())   # optional, but the policy reads losses
    ...     scheduler.step()

Each param group's ``lr`` at construction is its base (peak) LR, as for ``CosineAnnealingLR``;
the policy sets every group's LR to its base LR times one factor in
[min_lr_factor, max_lr_factor] of the policy's control config.

What it observes at each step: the training loss and validation loss given to ``observe`` (or
to ``step(train_loss=..., val_loss=...)``); the gradient norm of every layer, read from the
optimizer's parameters just before ``optimizer.step()`` runs (an optimizer step pre-hook), so
every usual loop order (``zero_grad`` first or last, ``set_to_none`` or not) gives the same LRs;
and its own LRs. A step the optimizer skipped (AMP's ``GradScaler`` on an overflow) repeats the last gradient
norms it saw. A "layer" is a module owning parameters, as in training (``learned_lr.layers``): pass ``model=``
so the scheduler can see the modules. Without it the layers are guessed from the order of the parameters (a
weight and the bias after it), which is right for plain Linear/Conv stacks; where it cannot be (normalization
layers), the scheduler warns once. Missing values are handled:

* no validation loss: the latest training loss stands in for it;
* no loss at all in a step: the last known loss is carried forward (before the first one,
  the run reads as "at its starting loss");
* NaN/inf losses or gradients read as "very bad" to the policy; the LR stays finite and within bounds whatever happens.

Past ``total_steps`` the LR stays at its last value.

The decision is taken in ``step()``; ``get_lr()`` only reads it, so a logger may call
``get_lr()`` or ``get_last_lr()`` as often as it likes. The per-step cycle (decide every K
steps, ramp, record) is ``loop.DecisionLoop``, the one the policy was trained through.
``LearnedLR`` also works as a later stage of ``torch.optim.lr_scheduler.SequentialLR`` (after a
warm-up scheduler), with ``total_steps`` counting its own steps.
"""

from __future__ import annotations

import math
import warnings
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from learned_lr.bundled import resolve_policy
from learned_lr.control import clip_action
from learned_lr.features import reads_distance, reads_momentum, recorded_feature_names
from learned_lr.gates import actor_for_run
from learned_lr.layers import InitialWeights, layer_index, layer_init_distances, layer_momentum_cosines, sampled_elements
from learned_lr.loop import DecisionLoop
from learned_lr.observation import RunHistory
from learned_lr.policy import LoadedPolicy, load_policy, policy_sha256, single_decision_fn


def _squared_norm_cpu(grad: torch.Tensor) -> float:
    """Squared L2 norm of a CPU gradient. This runs every training step, so
    the kernel matters: ``torch.dot`` of the flat gradient with itself runs on the calling thread
    for these sizes, while numpy's BLAS dot and ``torch._foreach_norm`` wake helper threads that
    then compete with the training step on a small CPU (``benchmarks/overhead_breakdown.py``:
    the norms cost ~3 points of the MLP step this way, ~9 with the BLAS dot). The common case (a
    dense, contiguous float32 gradient) takes the shortest path: each tensor call costs ~1-3 us."""
    if grad.dtype is torch.float32 and grad.layout is torch.strided and grad.is_contiguous():
        flat = grad if grad.dim() == 1 else grad.view(-1)
        return torch.dot(flat, flat).item()
    flat = grad.coalesce().values() if grad.is_sparse else grad
    flat = flat.reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.double()
    return torch.dot(flat, flat).item()


class LayerGradNorms:
    """Reads the gradient norm of every layer of an optimizer's parameters, as ``LearnedLR`` does.

    A "layer" is a module owning parameters (``learned_lr.layers``); without ``model`` it is
    guessed from the order of the parameters, and ``grouping_is_sure`` says whether that guess
    is certain to match. Call it after backward and before ``zero_grad``; a missing gradient
    counts as zero.

    Example:
        >>> read_norms = LayerGradNorms(optimizer, model)                        # doctest: +SKIP
        >>> loss.backward(); norms = read_norms()   # a tuple of floats, one norm per layer
    """

    def __init__(self, optimizer: torch.optim.Optimizer, model: nn.Module | None = None):
        self.params, self.layer_of, self.grouping_is_sure = self._layers(optimizer, model)
        self.num_layers = int(self.layer_of.max()) + 1 if len(self.layer_of) else 0
        self.layer_list = self.layer_of.tolist()
        self._one_device = len({p.device for p in self.params}) <= 1
        self._all_on_cpu = all(p.device.type == "cpu" for p in self.params)

    @staticmethod
    def _layers(optimizer: torch.optim.Optimizer, model: nn.Module | None) -> tuple[list[torch.Tensor], np.ndarray, bool]:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        layer_of, sure = layer_index(params, model)
        return params, np.array(layer_of, dtype=np.int64), sure

    def __call__(self) -> tuple[float, ...]:
        if not self.params:
            return ()
        if self._all_on_cpu:
            # Plain Python arithmetic on a handful of floats: this runs every training step, right
            # after the step has pushed numpy out of the CPU caches (see ``RunHistory.record``).
            # No no_grad() block (~10 us in the loop): a gradient does not require grad, and
            # with create_graph=True the dot's tiny graph is dropped by ``.item()``.
            squares = [0.0] * self.num_layers
            for layer, p in zip(self.layer_list, self.params):
                grad = p.grad
                if grad is not None:
                    squares[layer] += _squared_norm_cpu(grad)
            return tuple(math.sqrt(square) for square in squares)
        with torch.no_grad():
            grads = [p.grad if p.grad is not None else torch.zeros((), device=p.device) for p in self.params]
            norms = torch._foreach_norm(grads)
            if self._one_device:  # one transfer, one sync
                squares = np.square(torch.stack(norms).float().cpu().numpy().astype(np.float64))
            else:
                squares = np.square([float(n) for n in norms])
        return tuple(np.sqrt(np.bincount(self.layer_of, weights=squares, minlength=self.num_layers)).tolist())


def _ignore(*args) -> None:
    """What the optimizer hook calls once its scheduler is gone."""


class LearnedLR(torch.optim.lr_scheduler.LRScheduler):
    """Sets the LR every step from a learned policy that watches the run.

    Example (a plain PyTorch loop; only the scheduler line changes):

        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)  # doctest: +SKIP
        >>> scheduler = LearnedLR(optimizer, total_steps=1000, model=model)
        >>> for x, y in batches:
        ...     optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); optimizer.step()
        ...     scheduler.observe(train_loss=loss.item())   # optional, but the policy reads losses
        ...     scheduler.step()
        >>> scheduler.decisions()[0]["lr"]                   # what it decided, step by step

    What it observes, how missing values are handled and how it runs inside ``SequentialLR``:
    ``help(learned_lr.scheduler)``.

    Args:
        optimizer: the wrapped optimizer; each group's ``lr`` now is its base (peak) LR.
        total_steps: how many times ``step()`` will be called in the run.
        policy: a path to a policy checkpoint, a ``LoadedPolicy``, the name of a bundled one
            (``"zero-start"``, ``"short-span"``, ``"rise-limit-4"``, ... : see ``bundled.BUNDLED_NAMES``), or None for the default
            bundled one. Its weights are copied when the scheduler is built.
        model: the model being trained; groups gradient norms by module, as during training.

    ``load_state_dict`` accepts a state saved with another ``total_steps`` (a run extended on
    resume, e.g. Lightning's larger ``max_epochs``), as long as the steps already run fit: the
    steps left are counted against the new total from then on.

    ``history`` holds what the policy reads: the per-step LRs (of the first param group), losses
    and features of the last ``window`` steps (from ``history.first_step`` on), so its memory and
    ``state_dict`` stay the same size however long the run; ``decisions()`` keeps every decision.
    """

    def __del__(self) -> None:
        handle = getattr(self, "_hook_handle", None)
        if handle is not None:
            handle.remove()

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, policy: str | Path | LoadedPolicy | None = None,
                 model: nn.Module | None = None, last_epoch: int = -1):
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
        if last_epoch != -1:
            raise ValueError("LearnedLR starts at last_epoch=-1; to resume a run, build it as usual and call load_state_dict()")
        bad = [group["lr"] for group in optimizer.param_groups if not (math.isfinite(float(group["lr"])) and float(group["lr"]) >= 0)]
        if bad:
            raise ValueError(f"every param group's lr (its base LR) must be a finite number >= 0, got {bad}")
        loaded = policy if isinstance(policy, LoadedPolicy) else load_policy(resolve_policy(policy))
        self.policy = loaded
        self.policy_sha256 = policy_sha256(loaded)
        # The actor for this run (gates.actor_for_run: a length gate reads the run's length now, a structure gate the model's
        # layers at the first step, so its side may change once) and its fast decision function.
        self._deciding_actor, self._decide = None, None
        self.total_steps = total_steps
        first = optimizer.param_groups[0] if optimizer.param_groups else {}
        first_lr = float(first.get("initial_lr", first.get("lr", 1.0)))  # initial_lr: after a warm-up scheduler
        # The run's history records the first group's LRs; the features only read LR / base LR.
        # The history holds only the window the policy reads, so memory does not grow with the run;
        # each decision keeps the feature row it read (``decisions()``).
        control = loaded.control_config
        self._loop = DecisionLoop(total_steps, first_lr if math.isfinite(first_lr) and first_lr > 0 else 1.0, control, keep_steps=control.window)
        self._seen: list[np.ndarray | None] = []  # per decision: the features of the last step it read
        self._train_loss: float | None = None
        self._val_loss: float | None = None
        self._last_train_loss = math.nan
        self._grad_norms = LayerGradNorms(optimizer, model)
        # Norms of the step in progress, read when the optimizer steps (``_capture_grad_norms``), and the last ones seen.
        self._step_norms: tuple[float, ...] | None = None
        self._last_norms: tuple[float, ...] = tuple(0.0 for _ in range(self._grad_norms.num_layers))
        self._saw_gradient = False
        self._warned_no_gradient = False
        self._saw_loss = self._warned_no_loss = False  # checked once, at the first K steps' end
        # Only a policy that reads them pays for the gradient-momentum cosines (features.MOMENTUM_FEATURE_NAMES).
        self._reads_momentum = reads_momentum(loaded.control_config.inputs)
        self._step_cosines: tuple[float, ...] | None = None
        # A policy reading the distance from the initial weights keeps the sampled elements of each parameter
        # at the start (at most layers.DISTANCE_SAMPLE per tensor), taken here: the run starts when the scheduler is built.
        self._initial_weights = InitialWeights.of(self._grad_norms.params) if reads_distance(loaded.control_config.inputs) else None
        hook = weakref.WeakMethod(self._capture_grad_norms)
        self._hook_handle = optimizer.register_step_pre_hook(lambda opt, args, kwargs: (hook() or _ignore)(opt, args, kwargs))
        if not self._grad_norms.grouping_is_sure:
            warnings.warn(
                "LearnedLR: without model= the layers of the gradient norms are guessed from the order of the parameters, and "
                "this optimizer has 1-D parameters (normalization layers?) that the guess may group differently from training; "
                "pass LearnedLR(optimizer, total_steps, model=model)", UserWarning, stacklevel=2)
        super().__init__(optimizer, last_epoch)

    # ---- what the user calls ----

    def observe(self, train_loss: float | torch.Tensor | None = None, val_loss: float | torch.Tensor | None = None) -> None:
        """Give the latest losses (either may be omitted); read at the next ``step()``."""
        if train_loss is not None:
            self._train_loss = float(train_loss)
        if val_loss is not None:
            self._val_loss = float(val_loss)
        self._saw_loss = self._saw_loss or train_loss is not None or val_loss is not None

    def step(self, epoch: int | None = None, *, train_loss: float | None = None, val_loss: float | None = None) -> None:  # type: ignore[override]
        """Record the step just taken, take the next decision when one is due, and set the LR.

        Works with no arguments; losses may be passed here instead of ``observe``.
        """
        if epoch is not None:
            raise ValueError("LearnedLR.step() does not take an epoch; call it once per optimizer step")
        self.observe(train_loss, val_loss)
        if self.last_epoch >= 0 and not self._loop.done:
            self._record_finished_step()
        self._adopt_new_param_groups()
        if self._loop.needs_decision():
            window, mask, context = (torch.from_numpy(a)[None] for a in self._loop.observation())
            self._seen.append(self.history.features[-1].copy() if self.history.steps else None)
            actor = actor_for_run(self.policy.actor, self.total_steps, self.history.structure)
            if actor is not self._deciding_actor:
                self._deciding_actor, self._decide = actor, single_decision_fn(actor)
            self._loop.decide(float(self._decide(window, mask, context)[0]))
        super().step()

    def get_lr(self) -> list[float]:
        """The LR of every param group for the current step. Only reads: call it as often as you like."""
        factor = self._loop.lr_factor()
        return [base * factor for base in self.base_lrs]

    def _adopt_new_param_groups(self) -> None:
        """A group added with ``optimizer.add_param_group`` after construction gets its ``lr`` as its base LR."""
        groups = self.optimizer.param_groups
        if len(groups) <= len(self.base_lrs):
            return
        for group in groups[len(self.base_lrs):]:
            self.base_lrs.append(group.setdefault("initial_lr", group["lr"]))
        warnings.warn("LearnedLR: a param group was added after the scheduler was built; it follows the policy's LR factor, "
                      "but its gradients are not among the layers the policy reads", UserWarning, stacklevel=3)

    # ---- internals ----

    def _capture_grad_norms(self, optimizer, args, kwargs) -> None:
        """Optimizer step pre-hook: the gradients of this step, before any ``zero_grad`` can clear them."""
        self._step_norms = self._grad_norms()
        if self._reads_momentum:
            grads = self._grad_norms
            self._step_cosines = layer_momentum_cosines(optimizer, grads.params, grads.layer_list, grads.num_layers)
        if not self._saw_gradient:  # checked until the first gradient: this runs every training step
            self._saw_gradient = any(p.grad is not None for p in self._grad_norms.params)

    def _record_finished_step(self) -> None:
        train = self._train_loss
        if train is None:
            train = self._last_train_loss if not math.isnan(self._last_train_loss) else (self.history.train_loss[0] if self.history.steps else 1.0)
        val = self._val_loss if self._val_loss is not None else train
        self._last_train_loss = train
        if self._step_norms is not None:
            self._last_norms = self._step_norms
        elif not self._saw_gradient and not self._warned_no_gradient:
            self._warned_no_gradient = True
            warnings.warn("LearnedLR has seen no gradients: it reads them when the optimizer it wraps steps, so call "
                          "loss.backward(), optimizer.step(), then scheduler.step(), once per training step", UserWarning, stacklevel=3)
        if not self._saw_loss and not self._warned_no_loss and self.history.steps + 1 == self.decision_interval:
            # Without losses the policy reads a flat loss; the default one then schedules worse (the
            # README's MLP reaches 95.8% test accuracy, tests/test_dropin.py; 97.68% on average given
            # the losses, the README's drop-in numbers): say so once.
            self._warned_no_loss = True
            warnings.warn("LearnedLR has been given no loss: the policy reads a flat loss and schedules worse without one; "
                          "call scheduler.observe(train_loss=loss.item()) (or step(train_loss=...)) each step", UserWarning, stacklevel=3)
        distances = None
        if self._initial_weights is not None and self._loop.measures_distance():  # the first K steps, then once per decision
            grads = self._grad_norms
            distances = layer_init_distances(grads.params, self._initial_weights, grads.layer_list, grads.num_layers)
        self._loop.record(train, val, self._last_norms, self._step_cosines, distances)
        self._train_loss = self._val_loss = None
        self._step_norms = self._step_cosines = None

    # ---- checkpointing: plain values and tensors only ----

    def state_dict(self) -> dict[str, Any]:
        loop = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in self._loop.state().items()}
        return {
            "policy_sha256": self.policy_sha256,
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "base_lrs": list(self.base_lrs),
            "_last_lr": list(self._last_lr),
            "total_steps": self.total_steps,
            **loop,
            "pending_losses": [self._train_loss, self._val_loss],
            "pending_grad_norms": None if self._step_norms is None else list(self._step_norms),
            "pending_momentum_cos": None if self._step_cosines is None else list(self._step_cosines),
            "last_grad_norms": list(self._last_norms),
            "saw_gradient": self._saw_gradient,
            "last_train_loss": self._last_train_loss,
            "decision_seen": torch.from_numpy(self._seen_rows()),
            **({} if self._initial_weights is None else {"initial_weights": [w.clone() for w in self._initial_weights.values]}),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_policy = state_dict.get("policy_sha256")
        if saved_policy != self.policy_sha256:
            raise ValueError(
                f"this state was saved by a LearnedLR running another policy (policy_sha256 {saved_policy}, this scheduler's "
                f"{self.policy_sha256}); build the scheduler with the policy the run used")
        done = int(state_dict["history_steps"])
        if done > self.total_steps:
            raise ValueError(f"this state has already run {done} steps, more than this scheduler's total_steps={self.total_steps}")
        if len(state_dict["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(f"this state is for {len(state_dict['base_lrs'])} param groups, the optimizer has {len(self.optimizer.param_groups)}")
        if self._initial_weights is not None:
            self._initial_weights = self._saved_initial_weights(state_dict.get("initial_weights"))
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["_step_count"])
        self.base_lrs = list(state_dict["base_lrs"])
        self._last_lr = list(state_dict["_last_lr"])
        self._loop.load_state(state_dict)
        self._train_loss, self._val_loss = state_dict["pending_losses"]
        pending = state_dict["pending_grad_norms"]
        self._step_norms = None if pending is None else tuple(float(v) for v in pending)
        cosines = state_dict.get("pending_momentum_cos")
        self._step_cosines = None if cosines is None else tuple(float(v) for v in cosines)
        self._last_norms = tuple(float(v) for v in state_dict["last_grad_norms"])
        self._saw_gradient = bool(state_dict["saw_gradient"])
        self._last_train_loss = float(state_dict["last_train_loss"])
        seen = state_dict.get("decision_seen")
        if seen is not None and len(seen) == len(self._loop.decision_steps):
            self._seen = [None if np.isnan(row).all() else row for row in np.asarray(seen, dtype=np.float32)]
        else:  # a state saved before decisions kept what they read: what the held steps still show
            features, first = self.history.features, self.history.first_step
            self._seen = [features[step - 1 - first].copy() if step - 1 >= first else None for step in self._loop.decision_steps]
        # Constructing the scheduler set the optimizer's LR for step 0; put back the LR of the
        # step the run is at, whichever order the optimizer and scheduler states are loaded in.
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def _saved_initial_weights(self, saved: list[torch.Tensor] | None) -> InitialWeights:
        """The run's initial weights from a state: the sampled elements ``state_dict`` saves, or whole tensors
        (a state saved before they were sampled), sampled the same way; ValueError if they do not fit."""
        mine, params = self._initial_weights, self._grad_norms.params
        if saved is not None and len(saved) == len(params):
            saved = [sampled_elements(w, index) if w.numel() == p.numel() and index is not None else w.reshape(-1)
                     for w, p, index in zip(saved, params, mine.index)]
        if saved is None or [w.shape for w in saved] != [w.shape for w in mine.values]:
            raise ValueError("this state has no initial weights matching the optimizer's parameters, which this policy "
                             "(inputs='all+distance') measures its distances from")
        return mine.with_values([w.detach().clone().to(v.device, v.dtype) for w, v in zip(saved, mine.values)])

    def _seen_rows(self) -> np.ndarray:
        """(decisions, F) what each decision read; NaN for the one taken before any step."""
        width = len(recorded_feature_names(self.history.inputs))
        return np.array([np.full(width, np.nan) if row is None else row for row in self._seen], dtype=np.float32).reshape(len(self._seen), width)

    @property
    def history(self) -> RunHistory:
        """What the policy reads: per-step LRs of the first param group, losses and features of the last ``window`` steps; read-only use."""
        return self._loop.history

    def decisions(self) -> list[dict[str, Any]]:
        """What the policy decided so far, one dict per decision, with what it had read.

        ``step``: the first step the decision controls; ``lr_factor`` and ``lr``: the LR it set (reached at the end of
        its block, ramping log-linearly from the one before) as a fraction of the first group's base LR and absolute;
        ``asked_factor``: the factor the policy asked for (within its bounds; times the cooldown's decay where one
        applies, ``ControlConfig.cooldown_fraction``), above ``lr_factor`` where the rise limit (``max_lr_rise``) held
        the decision back; ``seen``: the features of the last step it read, by name (``features.FEATURE_NAMES``:
        remaining fraction, log LR factor, log train and val loss and log gradient norms relative to the run's first
        ones), None for the decision before any step.

        Example:
            >>> scheduler.decisions()[-1]["lr_factor"]   # doctest: +SKIP
            0.42
        """
        loop, names, bounds = self._loop, recorded_feature_names(self.history.inputs), self.policy.control_config.log_bounds
        return [{"step": step, "lr_factor": factor, "lr": loop.base_lr * factor, "asked_factor": math.exp(clip_action(action, bounds))
                 * loop.ramp.cooldown_multiplier(step + loop.ramp.block_length(step) - 1),
                 "seen": None if seen is None else dict(zip(names, seen.tolist()))}
                for step, factor, action, seen in zip(loop.decision_steps, loop.decision_factors, loop.actions, self._seen)]

    @property
    def decision_interval(self) -> int:
        """Steps between the policy's decisions (K)."""
        return self.policy.control_config.decision_interval

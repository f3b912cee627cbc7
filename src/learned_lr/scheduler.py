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
optimizer's parameters when ``step()`` is called (so call it after ``optimizer.step()`` and
before the next ``zero_grad``); and its own LRs. Without a model, a "layer" is a weight tensor
together with the 1-D tensor (its bias) that follows it in the param group; pass ``model=`` to
group parameters by module exactly as in training. Missing values are handled:

* no validation loss: the latest training loss stands in for it;
* no loss at all in a step: the last known loss is carried forward (before the first one,
  the run reads as "at its starting loss");
* NaN/inf losses or gradients read as "very bad" to the policy; the LR stays finite and
  within bounds whatever happens.

Past ``total_steps`` the LR stays at its last value.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from learned_lr.env.control import LRRamp
from learned_lr.env.observation import RunHistory
from learned_lr.policy import LoadedPolicy, load_policy, single_decision_fn

BUNDLED_POLICY = Path(__file__).parent / "policies" / "default.safetensors"


def _layer_index_from_order(params: list[torch.Tensor]) -> list[int]:
    """Layer of each parameter: a >=2-D tensor opens a layer; a 1-D tensor right after it joins it."""
    layer_of, layer, previous_was_matrix = [], -1, False
    for p in params:
        if p.dim() >= 2 or not previous_was_matrix:
            layer += 1
        layer_of.append(layer)
        previous_was_matrix = p.dim() >= 2
    return layer_of


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

    A "layer" is a module owning parameters when ``model`` is given, else a weight tensor with
    the 1-D tensor (its bias) that follows it in the param groups. Call it after backward and
    before ``zero_grad``; a missing gradient counts as zero.

    Example:
        >>> read_norms = LayerGradNorms(optimizer, model)                        # doctest: +SKIP
        >>> loss.backward(); norms = read_norms()   # a tuple of floats, one norm per layer
    """

    def __init__(self, optimizer: torch.optim.Optimizer, model: nn.Module | None = None):
        self.params, self.layer_of = self._layers(optimizer, model)
        self.num_layers = int(self.layer_of.max()) + 1 if len(self.layer_of) else 0
        self._layer_list = self.layer_of.tolist()
        self._one_device = len({p.device for p in self.params}) <= 1
        self._all_on_cpu = all(p.device.type == "cpu" for p in self.params)

    @staticmethod
    def _layers(optimizer: torch.optim.Optimizer, model: nn.Module | None) -> tuple[list[torch.Tensor], np.ndarray]:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if model is not None:
            owner = {}
            for index, (_, module) in enumerate((n, m) for n, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))):
                for p in module.parameters(recurse=False):
                    owner[id(p)] = index
            layer_of = [owner.get(id(p), -1) for p in params]
            missing = [i for i, layer in enumerate(layer_of) if layer < 0]
            base = max(layer_of) + 1
            for k, i in enumerate(missing):  # parameters the model does not own: a layer each
                layer_of[i] = base + k
            _, dense = np.unique(layer_of, return_inverse=True)
            return params, dense.astype(np.int64)
        return params, np.array(_layer_index_from_order(params), dtype=np.int64)

    def __call__(self) -> tuple[float, ...]:
        if not self.params:
            return ()
        if self._all_on_cpu:
            # Plain Python arithmetic on a handful of floats: this runs every training step, right
            # after the step has pushed numpy out of the CPU caches (see ``RunHistory.record``).
            # No no_grad() block (~10 us in the loop): a gradient does not require grad, and
            # with create_graph=True the dot's tiny graph is dropped by ``.item()``.
            squares = [0.0] * self.num_layers
            for layer, p in zip(self._layer_list, self.params):
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


class LearnedLR(torch.optim.lr_scheduler.LRScheduler):
    """Sets the LR every step from a learned policy that watches the run (see module docstring).

    Args:
        optimizer: the wrapped optimizer; each group's ``lr`` now is its base (peak) LR.
        total_steps: how many times ``step()`` will be called in the run.
        policy: a path to a policy checkpoint, a ``LoadedPolicy``, or None for the bundled one. Its
            weights are copied when the scheduler is built; later changes to them do not reach it.
        model: optional; groups gradient norms by module, as during training.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, policy: str | Path | LoadedPolicy | None = None,
                 model: nn.Module | None = None, last_epoch: int = -1):
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
        loaded = policy if isinstance(policy, LoadedPolicy) else load_policy(policy if policy is not None else BUNDLED_POLICY)
        self.policy = loaded
        self._decide = single_decision_fn(loaded.actor)
        self.total_steps = total_steps
        control = loaded.control_config
        self._history = RunHistory(total_steps, base_lr=1.0, window=control.window, inputs=control.inputs)
        self._ramp = LRRamp(total_steps, control.decision_interval, control.log_bounds)
        self._decision_steps = set(self._ramp.decision_steps())
        self._block: list[float] = [1.0]  # LR factors of the current decision's steps
        self._block_start = 0
        self._factor = 1.0
        self._train_loss: float | None = None
        self._val_loss: float | None = None
        self._last_train_loss = math.nan
        self._grad_norms = LayerGradNorms(optimizer, model)
        super().__init__(optimizer, last_epoch)

    # ---- what the user calls ----

    def observe(self, train_loss: float | torch.Tensor | None = None, val_loss: float | torch.Tensor | None = None) -> None:
        """Give the latest losses (either may be omitted); read at the next ``step()``."""
        if train_loss is not None:
            self._train_loss = float(train_loss)
        if val_loss is not None:
            self._val_loss = float(val_loss)

    def step(self, epoch: int | None = None, *, train_loss: float | None = None, val_loss: float | None = None) -> None:  # type: ignore[override]
        """Advance one step. Works with no arguments; losses may be passed here instead of ``observe``."""
        if epoch is not None:
            raise ValueError("LearnedLR.step() does not take an epoch; call it once per optimizer step")
        self.observe(train_loss, val_loss)
        if self.last_epoch >= 0 and self._history.steps < self.total_steps:
            self._record_finished_step()
        super().step()

    # ---- internals ----

    def _record_finished_step(self) -> None:
        train = self._train_loss
        if train is None:
            train = self._last_train_loss if not math.isnan(self._last_train_loss) else (self._history.train_loss[0] if self._history.steps else 1.0)
        val = self._val_loss if self._val_loss is not None else train
        self._last_train_loss = train
        self._history.record(self._factor, train, val, self._grad_norms())
        self._train_loss = self._val_loss = None

    def _factor_for(self, step: int) -> float:
        if step >= self.total_steps:
            return self._factor
        if step in self._decision_steps:
            window, mask, context = (torch.from_numpy(a)[None] for a in self._history.observation(step))
            mean = self._decide(window, mask, context)
            self._block = self._ramp.apply(step, float(mean[0])).tolist()
            self._block_start = step
        offset = min(step - self._block_start, len(self._block) - 1)
        return self._block[offset]

    def get_lr(self) -> list[float]:
        self._factor = self._factor_for(self.last_epoch)
        return [base * self._factor for base in self.base_lrs]

    # ---- checkpointing: plain values and tensors only ----

    def state_dict(self) -> dict[str, Any]:
        history = {f"history_{k}": (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in self._history.state().items()}
        return {
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "base_lrs": list(self.base_lrs),
            "_last_lr": list(self._last_lr),
            "total_steps": self.total_steps,
            **history,
            "ramp_previous_action": self._ramp.previous_action,
            "block": torch.tensor(self._block, dtype=torch.float64),
            "block_start": self._block_start,
            "factor": self._factor,
            "pending_losses": [self._train_loss, self._val_loss],
            "last_train_loss": self._last_train_loss,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("total_steps") != self.total_steps:
            raise ValueError(f"state is for total_steps={state_dict.get('total_steps')}, this scheduler has {self.total_steps}")
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["_step_count"])
        self.base_lrs = list(state_dict["base_lrs"])
        self._last_lr = list(state_dict["_last_lr"])
        self._history.load_state({k[len("history_"):]: v for k, v in state_dict.items() if k.startswith("history_")})
        self._ramp.load_state({"previous_action": state_dict["ramp_previous_action"]})
        self._block = [float(v) for v in state_dict["block"].tolist()]
        self._block_start = int(state_dict["block_start"])
        self._factor = float(state_dict["factor"])
        self._train_loss, self._val_loss = state_dict["pending_losses"]
        self._last_train_loss = float(state_dict["last_train_loss"])
        # Constructing the scheduler set the optimizer's LR for step 0; put back the LR of the
        # step the run is at, whichever order the optimizer and scheduler states are loaded in.
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    @property
    def history(self) -> RunHistory:
        """What the policy has observed so far (per-step LRs, losses, features); read-only use."""
        return self._history

"""Hugging Face ``Trainer`` integration: the idiomatic route.

The Trainer steps whatever scheduler it is given in ``optimizers=(optimizer, scheduler)`` right
after ``optimizer.step()`` (gradients are still there, so ``LearnedLR`` reads the layer norms),
and a ``TrainerCallback`` feeds the scheduler the losses the Trainer logs (``loss``) and
evaluates (``eval_loss``). Writing an LR into the param groups from a callback instead would be
overwritten by the Trainer's own scheduler, which is why the scheduler itself is passed in.

The Trainer logs the training loss every ``logging_steps``; the policy reads losses more
finely with a small value (e.g. ``logging_steps=1``). Needs the ``hf`` extra
(``pip install learned-lr[hf]``).

Example:
    >>> optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)               # doctest: +SKIP
    >>> scheduler, callback = learned_lr_for_trainer(optimizer, total_steps=args.max_steps, model=model)
    >>> trainer = Trainer(model=model, args=args, train_dataset=data,
    ...                   optimizers=(optimizer, scheduler), callbacks=[callback])
    >>> trainer.train()
"""

from __future__ import annotations

from pathlib import Path

import torch

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    raise ImportError("learned_lr.integrations.hf needs transformers: pip install 'learned-lr[hf]'") from exc

from learned_lr.policy import LoadedPolicy
from learned_lr.scheduler import LearnedLR


class LearnedLRCallback(TrainerCallback):
    """Passes the Trainer's logged training loss and evaluation loss to a ``LearnedLR``, and logs
    the factor the policy set (LR / base LR of the first param group) as ``learned_lr_factor``.

    The Trainer itself logs ``learning_rate`` (the policy's LR) to every reporter. The factor is
    added to that log entry in ``trainer.state.log_history`` (so ``trainer_state.json`` keeps it)
    and to the ``logs`` the callbacks after this one receive; reporting integrations run before
    user callbacks, so they show ``learning_rate`` only.
    """

    def __init__(self, scheduler: LearnedLR):
        self.scheduler = scheduler

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs if logs is not None else {}
        if "loss" in logs:
            self.scheduler.observe(train_loss=float(logs["loss"]))
            # The factor of the step just taken (what the Trainer logs as its learning_rate), not the next one's.
            history = self.scheduler.history
            used = float(history.lrs[-1]) if history.steps else self.scheduler.get_last_lr()[0]
            factor = used / self.scheduler.base_lrs[0]
            logs["learned_lr_factor"] = factor
            last = state.log_history[-1] if state.log_history else {}
            if last.get("step") == state.global_step and "loss" in last:  # the entry the Trainer just wrote for these logs
                last["learned_lr_factor"] = factor
        if "eval_loss" in logs:
            self.scheduler.observe(val_loss=float(logs["eval_loss"]))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_loss" in metrics:
            self.scheduler.observe(val_loss=float(metrics["eval_loss"]))


def learned_lr_for_trainer(optimizer: torch.optim.Optimizer, total_steps: int, policy: str | Path | LoadedPolicy | None = None,
                           model: torch.nn.Module | None = None) -> tuple[LearnedLR, LearnedLRCallback]:
    """A ``LearnedLR`` over ``optimizer`` and the callback that feeds it; pass both to ``Trainer``."""
    scheduler = LearnedLR(optimizer, total_steps=total_steps, policy=policy, model=model)
    return scheduler, LearnedLRCallback(scheduler)

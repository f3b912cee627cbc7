"""PyTorch Lightning: feed a ``LearnedLR`` the losses of a ``Trainer`` run.

Return the scheduler from ``configure_optimizers`` with ``interval="step"`` and add the callback::

    class Model(pytorch_lightning.LightningModule):
        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
            scheduler = LearnedLR(optimizer, total_steps=self.trainer.estimated_stepping_batches, model=self)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    trainer = pytorch_lightning.Trainer(max_epochs=3, callbacks=[LearnedLRCallback()])

Lightning steps the scheduler after each optimizer step, as LearnedLR expects; the callback
gives it each step's training loss (the loss Lightning backpropagates, or a logged metric named
``train_key``) before that, and the validation loss logged as ``val_key`` after each validation.
It logs the LR factor the policy set as ``learned_lr_factor``.
"""

from __future__ import annotations

try:
    from pytorch_lightning import Callback
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    raise ImportError("learned_lr.integrations.lightning needs pytorch-lightning: pip install 'learned-lr[lightning]'") from exc

from learned_lr.scheduler import LearnedLR


class LearnedLRCallback(Callback):
    """Passes a Lightning run's training and validation losses to its ``LearnedLR``.

    Args:
        train_key: a metric the module logs every step to use as the training loss; None (default)
            takes the loss Lightning backpropagates.
        val_key: the logged validation loss.
    """

    def __init__(self, train_key: str | None = None, val_key: str = "val_loss"):
        self.train_key = train_key
        self.val_key = val_key
        self.scheduler: LearnedLR | None = None
        self._step_loss: float | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        found = [config for config in trainer.lr_scheduler_configs if isinstance(config.scheduler, LearnedLR)]
        if not found:
            raise ValueError("LearnedLRCallback: configure_optimizers returned no LearnedLR scheduler; return "
                             '{"optimizer": ..., "lr_scheduler": {"scheduler": LearnedLR(...), "interval": "step"}}')
        if found[0].interval != "step":
            raise ValueError(f'LearnedLRCallback: LearnedLR must step every optimizer step (interval "step"), got interval {found[0].interval!r}')
        self.scheduler = found[0].scheduler

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._step_loss = float(loss.detach())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        logged = trainer.callback_metrics.get(self.train_key) if self.train_key else None
        value = float(logged) if logged is not None else self._step_loss
        if value is not None:
            self.scheduler.observe(train_loss=value)
        self._step_loss = None
        pl_module.log("learned_lr_factor", self.scheduler.get_lr()[0] / self.scheduler.base_lrs[0], on_step=True, on_epoch=False)

    def on_validation_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.val_key)
        if value is not None and not trainer.sanity_checking and self.scheduler is not None:
            self.scheduler.observe(val_loss=float(value))

"""A real pytorch_lightning.Trainer (CPU, a few steps) with LearnedLR and its callback."""

import numpy as np
import pytest
import torch

pl = pytest.importorskip("pytorch_lightning")

from conftest import save_small_policy  # noqa: E402

from learned_lr.integrations.lightning import LearnedLRCallback  # noqa: E402
from learned_lr.policy import load_policy  # noqa: E402
from learned_lr.scheduler import LearnedLR  # noqa: E402


class Regression(pl.LightningModule):
    def __init__(self, policy):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        self.policy = policy
        self.losses, self.lrs = [], []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.losses.append(float(loss.detach()))
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        self.scheduler = LearnedLR(optimizer, total_steps=self.trainer.estimated_stepping_batches, policy=self.policy, model=self)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler, "interval": "step"}}


def loader(seed: int):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 5, generator=generator)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True) + 0.1 * torch.randn(96, 1, generator=generator))
    return torch.utils.data.DataLoader(data, batch_size=8)


def test_lightning_trainer_feeds_its_losses_and_the_policy_sets_its_lrs(tmp_path):
    torch.manual_seed(0)
    policy = load_policy(save_small_policy(tmp_path / "policy.safetensors", window=32, decision_interval=4))
    module = Regression(policy)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[LearnedLRCallback()], default_root_dir=str(tmp_path), limit_val_batches=2)
    trainer.fit(module, loader(0), loader(1))
    history = module.scheduler.history
    steps = 2 * 12
    assert history.steps == steps == len(module.losses)
    # every step's training loss reached the scheduler, and the LRs the optimizer used are the policy's
    np.testing.assert_allclose(history.train_loss[:steps], module.losses, rtol=1e-6)
    np.testing.assert_allclose(module.lrs, history.lrs[:steps], rtol=1e-12)
    assert len(set(np.round(module.lrs, 8))) > 3
    # the validation loss after epoch 1 was read at the next step (the first of epoch 2), not the train loss
    assert history.val_loss[12] != history.train_loss[12] and history.val_loss[13] == history.train_loss[13]
    assert "learned_lr_factor" in trainer.callback_metrics


def test_the_callback_says_how_to_return_the_scheduler(tmp_path):
    class NoScheduler(Regression):
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    module = NoScheduler(None)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[LearnedLRCallback()], default_root_dir=str(tmp_path))
    with pytest.raises(ValueError, match="interval"):
        trainer.fit(module, loader(0))

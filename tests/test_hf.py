"""A real transformers Trainer, a tiny randomly initialized GPT-2, and the learned scheduler."""

import math

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from learned_lr.bundled import BUNDLED_POLICY  # noqa: E402
from learned_lr.integrations.hf import learned_lr_for_trainer  # noqa: E402


@pytest.mark.skipif(not BUNDLED_POLICY.is_file(), reason="bundled policy not built")
def test_trainer_uses_the_learned_scheduler(tmp_path):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    generator = torch.Generator().manual_seed(0)
    data = [{"input_ids": ids, "labels": ids} for ids in torch.randint(64, (48, 16), generator=generator)]
    steps = 12
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=4, logging_steps=1,
                                          report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler, callback = learned_lr_for_trainer(optimizer, total_steps=steps, model=model)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, optimizers=(optimizer, scheduler), callbacks=[callback])
    assert trainer.lr_scheduler is scheduler
    trainer.train()
    history = scheduler.history
    assert scheduler.last_epoch == steps and history.steps == steps
    # The policy, not a fixed schedule, set the LRs: they follow its decisions and stay in bounds.
    factors = history.lrs[:steps] / 1e-3  # the history holds LRs; as fractions of the base LR 1e-3
    lo, hi = scheduler.policy.control_config.min_lr_factor, scheduler.policy.control_config.max_lr_factor
    assert np.all((factors >= lo * 0.999) & (factors <= hi * 1.001))
    assert len(set(np.round(factors, 6))) > 2
    logged_lrs = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
    # What the Trainer logged as its learning rate is the policy's LR of that step.
    assert len(logged_lrs) >= steps - 1
    np.testing.assert_allclose(logged_lrs, 1e-3 * factors[: len(logged_lrs)], rtol=1e-5)
    # The callback logged the factor beside each training-loss entry: the logged LR over the base LR.
    loss_entries = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(loss_entries) >= steps - 1 and all("learned_lr_factor" in entry for entry in loss_entries)
    np.testing.assert_allclose([e["learned_lr_factor"] for e in loss_entries], [e["learning_rate"] / 1e-3 for e in loss_entries], rtol=1e-6)
    # The callback delivered the Trainer's logged losses.
    assert np.isfinite(history.train_loss[1:steps]).all()
    assert not math.isclose(history.train_loss[1], history.train_loss[steps - 1])

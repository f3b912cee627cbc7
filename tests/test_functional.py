"""torch.func batched runs match the same runs stepped one by one, for every family they support."""

from __future__ import annotations

import pytest
import torch

from learned_lr.settings import ConfigError
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.functional import FuncBatchedRuns, supports
from learned_lr.tasks.groups import make_run_group
from learned_lr.tasks.run import TrainingRun

CASES = [
    ("mnist-mlp", "adam", dict(hidden=32, batch_size=32, weight_decay=1e-3)),
    ("mnist-cnn", "sgd", dict(width=4, batch_size=16, val_batch_size=16, weight_decay=1e-3)),
    ("mnist1d", "adamw", dict(width=8, batch_size=32, weight_decay=0.1)),
    ("char-lm", "adamw", dict(width=16, lm_context=16, batch_size=8, val_batch_size=8)),
    ("digits", "sgd", dict(hidden=16, batch_size=32)),
    ("diabetes", "adam", dict(hidden=16, batch_size=32, val_batch_size=32)),
]
BASE_LR = {"sgd": 0.1, "adam": 3e-3, "adamw": 3e-3}


@pytest.mark.parametrize("task_name, optimizer, sizes", CASES, ids=[c[0] for c in CASES])
def test_batched_runs_equal_sequential_runs(task_name, optimizer, sizes, mnist):
    task = TaskConfig(task=task_name, optimizer=optimizer, **sizes)
    seeds, scales = [0, 1, 2], [1.0, 0.3, 0.0]
    batched = FuncBatchedRuns(task, seeds, mnist)
    separate = [TrainingRun(task, seed, mnist) for seed in seeds]
    assert batched.layer_names == separate[0].layer_names
    for step in range(12):
        lrs = [BASE_LR[optimizer] * s * (1 - step / 12) for s in scales]  # its own LR per run and per step
        rb = batched.step(lrs, momentum_cosines=True, init_distances=True)
        rs = [run.step(lr, momentum_cosines=True, init_distances=True) for run, lr in zip(separate, lrs)]
        torch.testing.assert_close(rb.train_loss, torch.tensor([r.train_loss for r in rs]), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(rb.val_loss, torch.tensor([r.val_loss for r in rs]), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(rb.layer_grad_norms, torch.stack([r.layer_grad_norms for r in rs]), rtol=1e-3, atol=1e-5)
        # NaN at step 0 (no momentum yet) in both; then the gradient-momentum cosines of the policy's "all+momentum" inputs
        torch.testing.assert_close(rb.layer_momentum_cos, torch.stack([r.layer_momentum_cos for r in rs]), rtol=1e-3, atol=1e-4, equal_nan=True)
        assert step == 0 or bool(torch.isfinite(rb.layer_momentum_cos[0]).all())
        torch.testing.assert_close(rb.layer_init_distance, torch.stack([r.layer_init_distance for r in rs]), rtol=1e-3, atol=1e-6)
        assert bool((rb.layer_init_distance[2] == 0).all()) and bool((rb.layer_init_distance[0] > 0).all())  # LR 0 has not moved
    test_loss, accuracy = batched.evaluate_test()
    for i, run in enumerate(separate):
        loss, acc = run.evaluate_test()
        assert float(test_loss[i]) == pytest.approx(loss, rel=1e-4)
        assert (torch.isnan(accuracy[i]) and acc != acc) or float(accuracy[i]) == pytest.approx(acc, abs=1e-3)
    assert float(test_loss[0]) < float(test_loss[2])  # the run at LR 0 did not learn; the others did


def test_unsupported_setups_are_refused_and_run_sequentially(mnist):
    for task in (TaskConfig(task="mnist-resnet18", width=2), TaskConfig(optimizer="prodigy")):
        assert not supports(task)
        with pytest.raises(ConfigError, match="torch.func batched runs"):
            FuncBatchedRuns(task, [0], mnist)
    assert type(make_run_group(TaskConfig(task="mnist-resnet18", width=2, batch_size=8), [0], mnist)).__name__ == "SequentialRuns"
    assert type(make_run_group(TaskConfig(optimizer="prodigy", hidden=8), [0], mnist)).__name__ == "SequentialRuns"


def test_rollouts_use_batched_runs_for_every_family_they_support(mnist):
    """make_run_group picks FuncBatchedRuns wherever it applies (the benchmark, sweeps and rollouts all go through it)."""
    for task_name, optimizer, sizes in CASES:
        kind = type(make_run_group(TaskConfig(task=task_name, optimizer=optimizer, **sizes), [0, 1], mnist)).__name__
        assert kind == ("SequentialRuns" if task_name == "mnist-cnn" else "FuncBatchedRuns"), (task_name, kind)  # CNN: faster one by one on a CPU
    assert type(make_run_group(TaskConfig(hidden=8), [0, 1], mnist)).__name__ == "BatchedMLPRuns"

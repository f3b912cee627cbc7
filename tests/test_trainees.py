import math

import numpy as np
import torch

from learned_lr.tasks import ResNet18, TrainingRun
from learned_lr.tasks.batched import BatchedMLPRuns
from learned_lr.tasks.config import TaskConfig
from learned_lr.training.experts import expert_schedule


def test_resnet18_has_resnet18_parameter_count():
    # The CIFAR-style ResNet-18 (3x3 stem, 10 classes) has 11,173,962 params with 3 input channels;
    # one input channel removes 2 * 9 * 64 = 1,152 stem weights.
    params = sum(p.numel() for p in ResNet18(width=64).parameters())
    assert params == 11_173_962 - 1_152
    assert ResNet18(width=16)(torch.zeros(2, 784)).shape == (2, 10)


def test_same_seed_same_numbers_different_seed_different_numbers(mnist):
    task = TaskConfig(hidden=32)
    a, b, c = (TrainingRun(task, seed, mnist) for seed in (3, 3, 4))
    for _ in range(20):
        ra, rb, rc = a.step(0.1), b.step(0.1), c.step(0.1)
    assert ra.train_loss == rb.train_loss and ra.val_loss == rb.val_loss
    assert torch.equal(ra.layer_grad_norms, rb.layer_grad_norms)
    assert ra.train_loss != rc.train_loss


def test_layer_grad_norms_match_a_direct_computation(mnist):
    run = TrainingRun(TaskConfig(task="mnist-resnet18", width=4), 0, mnist)
    report = run.step(0.0)  # lr 0: weights unchanged, grads are those of this step
    by_module = dict(run.model.named_modules())
    expected = []
    for name in run.layer_names:
        grads = [p.grad for p in by_module[name].parameters(recurse=False)]
        expected.append(math.sqrt(sum(float(g.pow(2).sum()) for g in grads)))
    assert len(run.layer_names) == 41  # 20 conv + 20 batch-norm + fc
    torch.testing.assert_close(report.layer_grad_norms, torch.tensor(expected), rtol=1e-4, atol=1e-7)


def test_mlp_learns_and_reports_test_accuracy(mnist):
    run = TrainingRun(TaskConfig(), 0, mnist)
    lrs = expert_schedule("cosine").lrs(300, 0.1)
    first = run.step(float(lrs[0]))
    for lr in lrs[1:]:
        last = run.step(float(lr))
    assert first.train_loss > 2.0 and last.train_loss < 0.5
    test_loss, accuracy = run.evaluate_test()
    assert accuracy > 0.93 and test_loss < 0.25


def test_adam_and_resnet_run(mnist):
    run = TrainingRun(TaskConfig(task="mnist-resnet18", width=4, optimizer="adam", batch_size=32, val_batch_size=32), 0, mnist)
    assert isinstance(run.optimizer, torch.optim.Adam)
    assert run.num_layers == 41  # the parameterized modules of ResNet-18: 20 convs, 20 batch norms, the head
    reports = [run.step(1e-2) for _ in range(15)]
    losses = [r.train_loss for r in reports]
    assert abs(losses[0] - math.log(10)) < 0.5  # an untrained 10-class classifier
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])  # Adam at 1e-2 learns within 15 steps
    assert all(r.layer_grad_norms.shape == (41,) and bool((r.layer_grad_norms > 0).all()) for r in reports)


def test_batched_runs_equal_separate_runs(mnist):
    task = TaskConfig(hidden=64)
    seeds, lrs = [0, 1, 2, 3], [0.1, 0.05, 0.3, 0.0]
    batched = BatchedMLPRuns(task, seeds, mnist)
    separate = [TrainingRun(task, seed, mnist) for seed in seeds]
    for step in range(30):
        step_lrs = [lr * (1 - step / 30) for lr in lrs]  # a different LR per run and per step
        rb = batched.step(step_lrs, momentum_cosines=True)
        rs = [run.step(lr, momentum_cosines=True) for run, lr in zip(separate, step_lrs)]
        torch.testing.assert_close(rb.train_loss, torch.tensor([r.train_loss for r in rs]), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(rb.val_loss, torch.tensor([r.val_loss for r in rs]), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(rb.layer_grad_norms, torch.stack([r.layer_grad_norms for r in rs]), rtol=1e-4, atol=1e-5)
        # The gradient-momentum cosines (a policy with inputs="all+momentum" reads them): unknown at step 0, then the same.
        cosines = torch.stack([r.layer_momentum_cos for r in rs]).float()
        torch.testing.assert_close(rb.layer_momentum_cos, cosines, rtol=1e-3, atol=1e-4, equal_nan=True)
        assert bool(cosines.isnan().all()) if step == 0 else bool(((cosines > -1.0001) & (cosines < 1.0001)).all())
    assert float(cosines.abs().min()) > 0.01  # a real signal, not a zero placeholder
    test_loss, test_acc = batched.evaluate_test()
    for i, run in enumerate(separate):
        loss, acc = run.evaluate_test()
        assert abs(float(test_loss[i]) - loss) < 1e-4 and abs(float(test_acc[i]) - acc) < 1e-4
    # The run with LR 0 never moved; the others learned.
    assert test_acc[3] < 0.3 and bool((test_acc[:3] > 0.85).all())
    assert bool(batched.step([0.1] * 4).layer_momentum_cos.isnan().all())  # not asked for: not computed
    assert bool(separate[0].step(0.1).layer_momentum_cos.isnan().all())


def test_device_choice_is_validated_and_auto_runs_here(mnist):
    import pytest
    import torch

    from learned_lr.settings import ConfigError
    from learned_lr.tasks.batched import BatchedMLPRuns
    from learned_lr.tasks.config import TaskConfig

    with pytest.raises(ConfigError, match="--device"):
        TaskConfig(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device: cuda was asked for"):
            BatchedMLPRuns(TaskConfig(device="cuda"), [0], mnist)
    auto = BatchedMLPRuns(TaskConfig(device="auto", hidden=32), [0, 1], mnist)
    cpu = BatchedMLPRuns(TaskConfig(hidden=32), [0, 1], mnist)
    a, c = auto.step([0.1, 0.2]), cpu.step([0.1, 0.2])
    assert a.train_loss.device.type == "cpu"
    torch.testing.assert_close(a.train_loss, c.train_loss, rtol=1e-4, atol=1e-5)

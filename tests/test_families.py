"""Every task family trains, under torch's optimizers and the anchors extra's LR-free ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learned_lr.settings import ConfigError
from learned_lr.tasks.config import OPTIMIZER_NAMES, TASK_NAMES, TaskConfig
from learned_lr.tasks.datasets import load_task_data
from learned_lr.tasks.run import TrainingRun

# Each family at a size that steps in milliseconds.
TINY = {
    "mnist-mlp": dict(hidden=32, batch_size=32),
    "mnist-cnn": dict(width=4, batch_size=32),
    "mnist-resnet18": dict(width=2, batch_size=16, val_batch_size=16),
    "mnist1d": dict(width=8, batch_size=32),
    "char-lm": dict(width=16, lm_context=16, batch_size=8, val_batch_size=8),
    "digits": dict(hidden=16, batch_size=32),
    "diabetes": dict(hidden=16, batch_size=32, val_batch_size=32),
    "mnist1d-resnet": dict(width=4, batch_size=32),
}
LR = {"sgd": 0.05, "adam": 1e-2, "adamw": 1e-2, "sgd-schedulefree": 0.5, "adamw-schedulefree": 1e-2}


def test_every_family_has_a_tiny_config():
    assert set(TINY) | {"llm-lora"} == set(TASK_NAMES)  # llm-lora loads a 135M model: tests/test_llm_family.py


def test_family_data_shapes_and_losses(mnist):
    expected = {"mnist-mlp": ((55_000, 784), "ce"), "mnist1d": ((3_500, 40), "ce"), "digits": ((1_257, 64), "ce"), "diabetes": ((309, 10), "mse")}
    for task, (shape, loss) in expected.items():
        data = load_task_data(task, mnist)
        assert tuple(data.train_x.shape) == shape and data.loss == loss
        assert len(data.val_y) > 0 and len(data.test_y) > 0
    text = load_task_data("char-lm", context=32)
    assert text.train_x.shape[1] == 32 and text.train_x.dtype == torch.long
    # The target is the input shifted by one character.
    assert torch.equal(text.train_x[0, 1:], text.train_y[0, :-1])
    # Held-out text is not training text: no validation window occurs among the training windows.
    train_rows = {tuple(row.tolist()) for row in text.train_x[:5000]}
    assert not any(tuple(row.tolist()) in train_rows for row in text.val_x[:200])


@pytest.mark.parametrize("optimizer", OPTIMIZER_NAMES)
def test_every_family_trains_under_every_optimizer(optimizer, mnist):
    """30 steps of each family: finite losses, moving weights, held-out numbers; and real learning on two MLP tasks."""
    lr = LR.get(optimizer, 1.0)
    for task, sizes in TINY.items():
        run = TrainingRun(TaskConfig(task=task, optimizer=optimizer, **sizes), seed=0, data=mnist, total_steps=30)
        before = [p.detach().clone() for p in run.model.parameters()]
        losses = [run.step(lr).train_loss for _ in range(30)]
        assert all(math.isfinite(x) for x in losses), (task, losses)
        assert any(not torch.equal(a, p) for a, p in zip(before, run.model.parameters())), task
        test_loss, accuracy = run.evaluate_test()
        assert math.isfinite(test_loss)
        assert math.isnan(accuracy) if task == "diabetes" else 0.0 <= accuracy <= 1.0
    for task in ("mnist-mlp", "digits"):  # under a cosine schedule, as the benchmark runs most of them
        run = TrainingRun(TaskConfig(task=task, optimizer=optimizer, **TINY[task]), seed=0, data=mnist, total_steps=400)
        losses = [run.step(lr * 0.5 * (1 + math.cos(math.pi * t / 400))).train_loss for t in range(400)]
        assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:5]), (task, optimizer, losses[:5], losses[-10:])


def test_dog_is_evaluated_on_its_averaged_model(mnist):
    run = TrainingRun(TaskConfig(optimizer="dog", hidden=32, batch_size=32), seed=0, data=mnist, total_steps=50)
    for _ in range(50):
        run.step(1.0)
    averaged = run.trainee_optimizer.eval_model
    assert averaged is not run.model
    with torch.no_grad():
        x, y = mnist_test(run)
        expected = float(torch.nn.functional.cross_entropy(averaged(x), y))
        current = float(torch.nn.functional.cross_entropy(run.model(x), y))
    assert run.evaluate_test()[0] == pytest.approx(expected, rel=1e-5)
    assert abs(current - expected) > 1e-4


def test_schedule_free_evaluates_at_its_averaged_point_and_resumes_training(mnist):
    run = TrainingRun(TaskConfig(optimizer="sgd-schedulefree", hidden=32, batch_size=32), seed=0, data=mnist, total_steps=50)
    for _ in range(50):
        run.step(0.5)
    x, y = mnist_test(run)
    with torch.no_grad():
        at_y = float(torch.nn.functional.cross_entropy(run.model(x), y))  # the training point
    evaluated = run.evaluate_test()[0]
    with torch.no_grad():
        again = float(torch.nn.functional.cross_entropy(run.model(x), y))
    assert abs(evaluated - at_y) > 1e-4  # evaluation is at x, not at the training point y
    assert again == pytest.approx(at_y, rel=1e-6)  # and training resumes at y


def mnist_test(run: TrainingRun) -> tuple[torch.Tensor, torch.Tensor]:
    return run.data.test_x, run.data.test_y


def test_a_batch_larger_than_a_small_split_is_a_clear_error():
    with pytest.raises(ConfigError, match="--val-batch-size: must be at most 66"):
        TrainingRun(TaskConfig(task="diabetes", val_batch_size=128), seed=0)


def test_no_default_lr_for_a_new_family_is_a_clear_error():
    with pytest.raises(ConfigError, match="no default LR for char-lm"):
        TaskConfig(task="char-lm").tuned_peak_lr
    assert TaskConfig(task="char-lm", optimizer="prodigy").tuned_peak_lr == 1.0


def test_init_scale_multiplies_the_initial_weight_matrices_only():
    from learned_lr.tasks.models import build_model

    for task in ("digits", "mnist-cnn", "mnist1d"):
        plain = dict(build_model(TaskConfig(task=task, width=4, hidden=8), seed=3).named_parameters())
        scaled = dict(build_model(TaskConfig(task=task, width=4, hidden=8, init_scale=0.5), seed=3).named_parameters())
        for name, p in plain.items():
            expected = p * 0.5 if p.dim() >= 2 else p
            assert torch.equal(scaled[name], expected), (task, name)


def test_mlp_depth_adds_hidden_layers_and_keeps_the_one_layer_mlp_as_it_was(mnist):
    from learned_lr.tasks.functional import FuncBatchedRuns
    from learned_lr.tasks.models import build_model

    one = TaskConfig(task="mnist-mlp", hidden=16)
    assert TaskConfig(task="mnist-mlp", hidden=16, mlp_layers=1).setting() == one.setting()  # cached results stay valid
    shallow = build_model(one, seed=3)
    assert [n for n, _ in shallow.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    deep = build_model(TaskConfig(task="digits", hidden=16, mlp_layers=3), seed=3)
    assert [tuple(m.weight.shape) for m in deep.children()] == [(16, 64), (16, 16), (16, 16), (10, 16)]
    assert torch.equal(deep.fc1.weight, build_model(TaskConfig(task="digits", hidden=16), seed=3).fc1.weight)  # created first, same draw
    with pytest.raises(ConfigError, match="--mlp-layers: only the MLP tasks"):
        TaskConfig(task="mnist-cnn", mlp_layers=2)
    with pytest.raises(ConfigError, match="--mlp-layers: must be in 1..16"):
        TaskConfig(task="digits", mlp_layers=0)
    # A 2-hidden-layer MNIST MLP with SGD runs as torch.func runs (the stacked runner has one hidden layer) and
    # reports what TrainingRun does; it learns.
    task = TaskConfig(task="mnist-mlp", hidden=16, mlp_layers=2, batch_size=32, val_batch_size=32)
    train_losses, _ = _group_run_like_single_runs(task, mnist, FuncBatchedRuns, steps=30, layers=3, tolerance=1e-4)
    assert np.mean(train_losses[-5:]) < 0.8 * np.mean(train_losses[:5])


def _group_run_like_single_runs(task: TaskConfig, mnist, runner: type, steps: int, layers: int, tolerance: float):
    """Step ``make_run_group(task)``'s two runs and a lone ``TrainingRun`` of the second seed at LR 0.1; check the group
    is a ``runner``, reports the lone run's training loss and ``layers`` gradient norms; return its mean losses per step."""
    from learned_lr.tasks.groups import make_run_group

    group = make_run_group(task, [0, 1], mnist)
    assert isinstance(group, runner)
    single = TrainingRun(task, seed=1, data=mnist)
    train_losses, val_losses = [], []
    for _ in range(steps):
        report, alone = group.step([0.1, 0.1]), single.step(0.1)
        assert abs(float(report.train_loss[1]) - alone.train_loss) < tolerance and report.layer_grad_norms.shape == (2, layers)
        train_losses.append(float(report.train_loss.mean()))
        val_losses.append(float(report.val_loss.mean()))
    return train_losses, val_losses


def test_batch_norm_adds_a_norm_after_each_hidden_layer_and_runs_one_by_one(mnist):
    from learned_lr.layers import module_layers
    from learned_lr.tasks.batched import SequentialRuns
    from learned_lr.tasks.models import build_model

    plain = TaskConfig(task="digits", hidden=16, mlp_layers=2)
    normed = TaskConfig(task="digits", hidden=16, mlp_layers=2, batch_norm=True)
    assert TaskConfig(task="digits", hidden=16, mlp_layers=2, batch_norm=False).setting() == plain.setting()  # caches stay valid
    assert normed.setting()["batch_norm"] is True
    model = build_model(normed, seed=3)
    assert [name for name, _ in module_layers(model)] == ["fc1", "bn1", "fc2", "bn2", "fc3"]
    assert torch.equal(model.fc2.weight, build_model(plain, seed=3).fc2.weight)  # batch norm draws nothing at creation
    for task, norms in (("mnist-cnn", ["bn1", "bn2"]), ("mnist1d", ["bn1", "bn2", "bn3"])):
        layers = [name for name, _ in module_layers(build_model(TaskConfig(task=task, width=4, batch_norm=True), seed=0))]
        assert [n for n in layers if n.startswith("bn")] == norms, task
        assert not any(n.startswith("bn") for n, _ in module_layers(build_model(TaskConfig(task=task, width=4), seed=0)))
    with pytest.raises(ConfigError, match="--batch-norm: only"):
        TaskConfig(task="char-lm", batch_norm=True)
    with pytest.raises(ConfigError, match="--batch-size: batch norm needs batches of 2"):
        TaskConfig(task="digits", batch_norm=True, batch_size=1)
    # The stacked and torch.func runners have no batch norm: the group runs one by one, reports what TrainingRun
    # does (batch statistics in training, running ones for validation), and learns.
    task = TaskConfig(task="mnist-mlp", hidden=16, batch_size=32, val_batch_size=32, batch_norm=True)
    _, val_losses = _group_run_like_single_runs(task, mnist, SequentialRuns, steps=40, layers=3, tolerance=1e-5)
    assert np.mean(val_losses[-5:]) < 0.7 * np.mean(val_losses[:5])


def test_train_fraction_trains_on_the_first_examples_in_every_runner(mnist):
    from learned_lr.tasks.batched import BatchedMLPRuns
    from learned_lr.tasks.datasets import trainee_data
    from learned_lr.tasks.functional import FuncBatchedRuns

    full = load_task_data("digits")
    task = TaskConfig(task="digits", hidden=8, batch_size=16, val_batch_size=16, train_fraction=0.1)
    cut = trainee_data(task)
    n = round(0.1 * len(full.train_y))
    assert len(cut.train_y) == n and torch.equal(cut.train_x, full.train_x[:n]) and torch.equal(cut.val_x, full.val_x)
    assert len(TrainingRun(task, seed=0).data.train_y) == n and len(FuncBatchedRuns(task, [0, 1]).data.train_y) == n
    # At least one batch, whatever the fraction; the MNIST MLP's stacked runner too.
    tiny = TaskConfig(task="mnist-mlp", hidden=8, batch_size=64, val_batch_size=64, train_fraction=1e-5)
    assert len(trainee_data(tiny, mnist).train_y) == 64 and len(BatchedMLPRuns(tiny, [0], mnist).data.train_y) == 64
    # A run on a fifth of the data sees other batches than one on all of it.
    def first_loss(fraction: float) -> float:
        return TrainingRun(TaskConfig(task="digits", hidden=8, batch_size=16, val_batch_size=16, train_fraction=fraction), seed=0).step(0.1).train_loss

    assert first_loss(1.0) == first_loss(1.0) != first_loss(0.2)


@pytest.mark.parametrize("fields, message", [
    ({"init_scale": 0.0}, "--init-scale: must be finite and > 0"),
    ({"init_scale": math.inf}, "--init-scale: must be finite and > 0"),
    ({"train_fraction": 0.0}, "--train-fraction: must be in (0, 1]"),
    ({"train_fraction": 1.5}, "--train-fraction: must be in (0, 1]"),
    ({"task": "char-lm", "train_fraction": 0.5}, "char-lm trains on a text stream"),
])
def test_bad_scale_or_fraction_is_a_clear_error(fields, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        TaskConfig(**fields)


def test_cached_settings_of_tasks_without_the_later_fields_stay_valid():
    """Results cached before init_scale / train_fraction existed keyed the task without them: a task at
    their defaults must give the same setting, one off them a different one."""
    from learned_lr.settings import config_setting
    from learned_lr.training.config import PPOConfig

    before = {"task", "hidden", "width", "lm_layers", "lm_context", "lora_rank", "optimizer", "momentum", "weight_decay",
              "clip_grad_norm", "batch_size", "val_batch_size", "test_examples", "device"}
    assert set(TaskConfig().setting()) == before
    assert TaskConfig(init_scale=2.0).setting()["init_scale"] == 2.0 and TaskConfig(train_fraction=0.3).setting()["train_fraction"] == 0.3
    assert set(config_setting(PPOConfig())["task"]) == before


def test_the_held_out_1d_resnet_has_batch_norm_and_residual_blocks_runs_one_by_one_and_learns():
    from learned_lr.tasks.batched import SequentialRuns
    from learned_lr.tasks.groups import make_run_group
    from learned_lr.tasks.models import build_model
    from learned_lr.training.distribution import HELD_OUT_FAMILIES, TRAINING_FAMILIES

    assert "mnist1d-resnet" in HELD_OUT_FAMILIES and "mnist1d-resnet" not in TRAINING_FAMILIES
    task = TaskConfig(task="mnist1d-resnet", width=8, batch_size=64, val_batch_size=64)
    model = build_model(task, seed=0)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(norms) == 1 + 3 * 2 + 2  # the stem, two per block, and the projections of the two strided blocks
    assert model(torch.zeros(5, 40)).shape == (5, 10)
    assert isinstance(make_run_group(task, [0, 1]), SequentialRuns)  # batch norm: not torch.func's stacked runs
    with pytest.raises(ConfigError, match="batch norm on request"):
        TaskConfig(task="mnist1d-resnet", batch_norm=True)
    run = TrainingRun(task, seed=0, total_steps=300)
    losses = [run.step(0.1 * 0.5 * (1 + math.cos(math.pi * t / 300))).train_loss for t in range(300)]
    test_loss, accuracy = run.evaluate_test()
    assert np.mean(losses[-20:]) < 0.75 * np.mean(losses[:5]) and accuracy > 0.3, (losses[:5], losses[-20:], accuracy)


def test_resnet18_keeps_its_initial_weights_since_basic_block_took_1d():
    """The benchmark caches ResNet-18 cells by setting: its init must stay the same draws (the sum below was
    measured with tasks/models.py as of 687e2f4, before `BasicBlock` learned `dims`)."""
    from learned_lr.tasks.models import build_model

    model = build_model(TaskConfig(task="mnist-resnet18", width=2), seed=0)
    with torch.no_grad():
        total = sum(float(p.double().abs().sum()) for p in model.parameters())
    assert len(list(model.parameters())) == 62 and total == pytest.approx(751.2895203408789, rel=1e-9)


def test_a_zero_head_starts_the_output_layer_at_zero_and_no_gradient_reaches_the_layers_before_it_at_first(mnist):
    """`TaskConfig.zero_head` (validate --zero-head): the last linear layer at zero, every other weight as without it; the
    first step's gradient is zero in every layer but the head, the second is not; the head has no distance from its start."""
    from learned_lr.tasks.config import ZERO_HEAD_TASKS
    from learned_lr.tasks.models import build_model

    for family in ZERO_HEAD_TASKS:
        task = TaskConfig(task=family, zero_head=True, **TINY[family])
        plain = dict(build_model(TaskConfig(task=family, **TINY[family]), seed=3).named_parameters())
        zeroed = dict(build_model(task, seed=3).named_parameters())
        changed = [name for name in plain if not torch.equal(plain[name], zeroed[name])]
        assert len(changed) == 2 and all(not zeroed[name].any() for name in changed), (family, changed)
        run = TrainingRun(task, seed=3, data=mnist if family.startswith("mnist") else None, total_steps=3)
        first, second = run.step(0.05, init_distances=True), run.step(0.05, init_distances=True)
        assert first.layer_grad_norms[:-1].abs().max() == 0 < first.layer_grad_norms[-1], family
        assert (second.layer_grad_norms > 0).all(), family
        assert math.isnan(first.layer_init_distance[-1]) and (first.layer_init_distance[:-1] == 0).all(), family  # only the head moved
        assert math.isnan(second.layer_init_distance[-1]) and (second.layer_init_distance[:-1] > 0).all(), family
    assert "zero_head" not in TaskConfig().setting() and TaskConfig(zero_head=True).setting()["zero_head"] is True
    with pytest.raises(ConfigError, match="--zero-head"):
        TaskConfig(task="char-lm", zero_head=True)

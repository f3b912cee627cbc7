import math

import numpy as np
import pytest

from learned_lr.experiments.evaluate import train_loss_auc, train_loss_roughness
from learned_lr.experiments.stats import mean_ci


def test_mean_ci_matches_the_t_interval():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    stat = mean_ci(values)
    # t(0.975, 4) = 2.7764; std (ddof=1) = 1.5811; half-width = 2.7764 * 1.5811 / sqrt(5)
    assert stat["mean"] == 3.0 and stat["n"] == 5
    assert stat["ci"] == pytest.approx(2.7764451 * 1.5811388 / math.sqrt(5), rel=1e-6)
    assert mean_ci([2.0, float("nan"), None])["n"] == 1 and math.isnan(mean_ci([2.0])["ci"])
    assert mean_ci([])["n"] == 0


def test_auc_and_roughness():
    loss = np.array([2.0, 1.0, 1.5, 0.5])
    assert train_loss_auc(loss) == pytest.approx(np.mean([1.0, 0.5, 0.75, 0.25]))
    assert train_loss_roughness(loss) == pytest.approx(0.25)  # the one rise, 1.0 -> 1.5, normalized by 2.0
    assert train_loss_roughness(np.array([3.0, 2.0, 1.0])) == 0.0


def test_test_examples_scores_the_first_test_images_in_every_kind_of_run_group():
    import torch

    from learned_lr.settings import ConfigError
    from learned_lr.tasks import load_mnist
    from learned_lr.tasks.batched import BatchedMLPRuns
    from learned_lr.tasks.config import TaskConfig
    from learned_lr.tasks.datasets import load_task_data
    from learned_lr.tasks.functional import FuncBatchedRuns
    from learned_lr.tasks.run import TrainingRun

    torch.manual_seed(0)
    mnist = load_mnist()
    full, subset = TaskConfig(), TaskConfig(test_examples=500)
    run = TrainingRun(subset, 3, mnist, 10)
    # By hand: the untrained model's mean cross-entropy and accuracy over the first 500 test images.
    data = load_task_data("mnist-mlp", mnist)
    with torch.no_grad():
        logits = run.model(data.test_x[:500])
    by_hand = (float(torch.nn.functional.cross_entropy(logits, data.test_y[:500])), float((logits.argmax(1) == data.test_y[:500]).float().mean()))
    assert run.evaluate_test() == pytest.approx(by_hand, rel=1e-5)
    assert TrainingRun(full, 3, mnist, 10).evaluate_test()[0] != pytest.approx(by_hand[0], rel=1e-4)  # the whole split differs
    for group in (BatchedMLPRuns(subset, [3], mnist), FuncBatchedRuns(subset, [3], mnist)):
        loss, accuracy = group.evaluate_test()
        assert (float(loss[0]), float(accuracy[0])) == pytest.approx(by_hand, rel=1e-5)
    with pytest.raises(ConfigError, match="--test-examples: must be >= 0"):
        TaskConfig(test_examples=-1)


def test_evaluate_schedulers_scores_runs_it_is_given_as_if_it_had_made_them():
    from learned_lr.experiments.evaluate import SchedulerSpec, evaluate_schedulers
    from learned_lr.settings import ControlConfig
    from learned_lr.tasks import load_mnist
    from learned_lr.tasks.config import TaskConfig
    from learned_lr.tasks.groups import make_run_group
    from learned_lr.tasks.seeds import EVAL_SEED_START
    from learned_lr.training.experts import expert_schedule
    from learned_lr.training.rollout import rollout_exact_schedule

    mnist, task, steps, base_lr, seeds = load_mnist(), TaskConfig(), 40, 0.1, 2
    spec = [SchedulerSpec("cosine", expert="cosine")]
    rows, curves = evaluate_schedulers(spec, task, steps, base_lr, seeds, mnist, progress=False)
    group = make_run_group(task, list(range(EVAL_SEED_START, EVAL_SEED_START + seeds)), mnist)
    episodes = rollout_exact_schedule(group, expert_schedule("cosine"), steps, [base_lr] * seeds, ControlConfig())
    reused_rows, reused_curves = evaluate_schedulers(spec, task, steps, base_lr, seeds, mnist, progress=False, done={"cosine": episodes})
    assert reused_rows == rows and 0 < rows[0]["test_loss"]["mean"] < 2.3
    np.testing.assert_array_equal(reused_curves["cosine"]["train_loss"], curves["cosine"]["train_loss"])
    with pytest.raises(ValueError, match="not this evaluation's"):  # runs of another length are refused
        evaluate_schedulers(spec, task, steps + 1, base_lr, seeds, mnist, progress=False, done={"cosine": episodes})

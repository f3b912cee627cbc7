"""benchmarks/descent_ratio_signal.py: the loss's fall against its first-order prediction, on real small runs."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from learned_lr.tasks.config import TaskConfig

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def signal_module():
    sys.path.insert(0, str(BENCHMARKS))  # it imports its sibling lr_scale_signals as a script would
    try:
        spec = importlib.util.spec_from_file_location("descent_ratio_signal", BENCHMARKS / "descent_ratio_signal.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_ratio_falls_from_one_as_the_lr_rises_and_turns_negative_where_the_loss_blows_up(signal_module):
    task = TaskConfig(task="digits", hidden=32, optimizer="sgd", batch_size=64)
    windows = [(0, 10), (10, 30)]
    runs = {lr: signal_module.windows_of_run(task, seed=0, steps=30, lr=lr, windows=windows) for lr in (1e-3, 0.1, 1.0, 10.0)}
    assert set(runs[1e-3]) == {(0, 10), (10, 30)}
    assert runs[1e-3][(0, 10)]["descent_ratio"] == pytest.approx(1.0, abs=0.01)  # linear regime: the first-order prediction holds
    late = [runs[lr][(10, 30)]["descent_ratio"] for lr in (1e-3, 0.1, 1.0)]
    assert late[0] > late[1] + 0.05 > late[2] + 0.5  # (measured: 0.999, 0.900, 0.287)
    assert runs[10.0][(0, 10)]["descent_ratio"] < 0  # the loss rose where the gradient said it would fall
    assert (10, 30) not in runs[10.0]  # the run blew up: no later window
    distances = [runs[lr][(10, 30)]["init_distance"] for lr in (1e-3, 0.1, 1.0)]
    assert distances == sorted(distances) and distances[0] < -1.0  # log10: a small LR has hardly moved the weights
    straightness = [runs[lr][w]["path_straightness"] for lr in (1e-3, 0.1, 1.0) for w in windows]
    assert all(math.isfinite(v) and v <= 1e-9 for v in straightness)  # the displacement is at most the path (triangle inequality)


def test_the_ratio_of_sums_clips_and_a_zero_prediction_says_nothing(signal_module):
    assert signal_module.descent_ratio([-0.2, -0.1], [-0.1, -0.2]) == pytest.approx(1.0)
    assert signal_module.descent_ratio([5.0], [-0.1]) == -10.0
    assert math.isnan(signal_module.descent_ratio([0.1], [0.0]))
    assert signal_module.separation([0.0, 0.1], [0.5, 0.6]) == 1.0 and math.isnan(signal_module.separation([], [1.0]))


def test_the_path_straightness_is_displacement_over_path_length_and_skips_layers_that_did_not_move(signal_module):
    import numpy as np

    assert signal_module.path_straightness(np.array([1.0, 0.1, 0.0]), np.array([1.0, 1.0, 0.0])) == pytest.approx(-0.5)
    assert math.isnan(signal_module.path_straightness(np.zeros(2), np.zeros(2)))

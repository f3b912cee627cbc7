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

import math

import numpy as np
import pytest
import torch

from learned_lr.settings import ConfigError
from learned_lr.training.config import ScheduleConfig
from learned_lr.training.experts import expert_schedule


@pytest.mark.parametrize("total", [1, 7, 100, 1000])
def test_cosine_matches_closed_form(total):
    shape = ScheduleConfig(final_factor=0.05)
    expected = [0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / total)) for s in range(total)]
    np.testing.assert_allclose(expert_schedule("cosine", shape).factors(total), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("total", [10, 100, 1000])
@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_polynomial_matches_closed_form(total, power):
    expected = [(1 - s / total) ** power for s in range(total)]
    np.testing.assert_allclose(expert_schedule("polynomial", ScheduleConfig(poly_power=power)).factors(total), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("total", [10, 100, 999])
def test_linear_warmup_matches_closed_form(total):
    shape = ScheduleConfig(warmup_fraction=0.1, warmup_start_factor=0.01, final_factor=0.0)
    warm = round(0.1 * total)
    expected = []
    for s in range(total):
        if s < warm:
            expected.append(0.01 + 0.99 * s / warm)
        else:
            expected.append(1 - (s - warm) / (total - warm))
    np.testing.assert_allclose(expert_schedule("linear-warmup", shape).factors(total), expected, rtol=1e-9, atol=1e-12)


def test_factors_equal_what_torch_scheduler_sets_on_a_real_optimizer():
    schedule = expert_schedule("linear-warmup")
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    scheduler = schedule.torch_scheduler(optimizer, 50)
    seen = []
    for _ in range(50):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(seen, schedule.lrs(50, 0.3), rtol=1e-12)


def test_unknown_schedule_and_bad_shape_are_rejected():
    with pytest.raises(ValueError, match="unknown schedule"):
        expert_schedule("step")
    with pytest.raises(ConfigError, match="--warmup-fraction"):
        ScheduleConfig(warmup_fraction=1.5)

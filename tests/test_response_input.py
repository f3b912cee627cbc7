"""inputs="all+distance+response": how the loss and gradient norm answered the LR's own changes, made from recorded columns."""

from __future__ import annotations

import math

import numpy as np
import torch
from conftest import mse_steps, save_small_policy

from learned_lr.features import (FEATURE_CLIP, FEATURE_NAMES, RESPONSE_RIDGE, input_feature_names, num_inputs, recorded_feature_names,
                                 response_slopes, window_from_features)
from learned_lr.observation import RunHistory
from learned_lr.policy import load_policy
from learned_lr.scheduler import LearnedLR

ZIGZAG = np.repeat(np.tile([0.0, 0.4], 8), 8)  # the log LR up and down by 0.4 every 8 steps, 128 steps


def test_the_slope_reads_how_strongly_and_which_way_a_value_followed_the_lr():
    trend = -0.01 * np.arange(len(ZIGZAG))  # a loss falling steadily whatever the LR does: not the LR's part
    rises = response_slopes(ZIGZAG, trend + 0.3 * ZIGZAG)
    falls = response_slopes(ZIGZAG, trend - 0.3 * ZIGZAG)
    x = ZIGZAG[8:] - ZIGZAG[:-8]
    expected = 0.3 * x.var() / (x.var() + RESPONSE_RIDGE)  # the ridge shrinks it a little
    assert rises[-1] == np.float32(rises[-1]) and abs(rises[-1] - expected) < 1e-4 and abs(falls[-1] + expected) < 1e-4
    assert 0.28 < expected < 0.3
    assert (response_slopes(np.zeros(128), trend) == 0).all()  # the LR held still: no reading, not noise
    assert (response_slopes(ZIGZAG[:8], ZIGZAG[:8]) == 0).all()  # no change over 8 steps yet
    wild = response_slopes(ZIGZAG, np.where(np.arange(128) > 100, np.inf, 1e6 * ZIGZAG))  # a blow-up reads bounded, never NaN
    assert np.isfinite(wild).all() and np.abs(wild).max() <= FEATURE_CLIP


def _recorded(steps: int, inputs: str, keep: int | None = None) -> RunHistory:
    history = RunHistory(total_steps=400, base_lr=0.1, window=64, inputs=inputs, keep=keep)
    for t in range(steps):
        lr = 0.1 * math.exp(ZIGZAG[t % 128])
        history.record(lr, 2.0 * math.exp(0.5 * ZIGZAG[t % 128]) / (t + 1), 2.1 / (t + 1), (10.0 * lr, 2.0 * lr),
                       layer_init_distance=(0.01 * (t + 1), 0.02 * (t + 1)))
    return history


def test_the_two_columns_are_added_to_what_all_distance_records_and_read_the_same_in_deployment():
    assert num_inputs("all+distance+response") == num_inputs("all+distance") + 2 == 13
    assert recorded_feature_names("all+distance+response") == input_feature_names("all+distance")
    plain, full = _recorded(200, "all+distance"), _recorded(200, "all+distance+response")
    np.testing.assert_array_equal(plain.features, full.features)  # demonstrations recorded for "all+distance" hold it all
    window, mask, context = full.observation()
    np.testing.assert_array_equal(window[:, :11], plain.observation()[0])
    rows = full.features[-64:]
    loss, grad = FEATURE_NAMES.index("log_train_loss"), FEATURE_NAMES.index("log_grad_norm")
    np.testing.assert_array_equal(window[:, 11], response_slopes(rows[:, 1], rows[:, loss]))
    np.testing.assert_array_equal(window[:, 12], response_slopes(rows[:, 1], rows[:, grad]))
    assert window[-1, 11] > 0.4 and window[-1, 12] > 0.8  # the loss followed at 0.5, the gradient norm at 1 (per log LR)
    # LearnedLR keeps only the window's steps: the same observation as training's full history.
    kept = _recorded(200, "all+distance+response", keep=64)
    for a, b in zip(kept.observation(), (window, mask, context)):
        np.testing.assert_array_equal(a, b)
    early = window_from_features(full.features, 20, 64, 400, "all+distance+response")[0]
    assert (early[:44] == 0).all() and (early[44:52, 11:] == 0).all()  # padding, then 8 rows with no change to read yet


def test_learned_lr_with_the_response_columns_keeps_lrs_in_bounds(tmp_path):
    policy = load_policy(save_small_policy(tmp_path / "r.safetensors", window=32, decision_interval=4, inputs="all+distance+response"))
    torch.manual_seed(0)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = LearnedLR(optimizer, total_steps=60, policy=policy, model=model)
    lrs = [row[0] for row in mse_steps(model, optimizer, scheduler, x, y, 60)]
    assert all(math.isfinite(lr) and 0.05 * 1e-3 <= lr <= 0.05 * 4.0 + 1e-12 for lr in lrs)
    assert set(scheduler.decisions()[-1]["seen"]) == set(input_feature_names("all+distance"))
    window = scheduler.history.observation()[0]
    assert window.shape == (32, 13) and np.abs(window[-1, 11:]).sum() > 0  # the LR moved, so the columns read something

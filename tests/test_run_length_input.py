"""inputs="all+distance+length": the run's length, log(T / 1000), beside what "all+distance" reads."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from conftest import mse_steps, save_small_policy

from learned_lr.features import FEATURE_CLIP, input_feature_names, num_inputs, reads_distance, recorded_feature_names, window_from_features
from learned_lr.observation import RunHistory
from learned_lr.policy import load_policy
from learned_lr.scheduler import LearnedLR


def _recorded(total_steps: int, steps: int, inputs: str) -> RunHistory:
    history = RunHistory(total_steps=total_steps, base_lr=0.1, window=8, inputs=inputs)
    for t in range(steps):
        history.record(0.1, 2.0 / (t + 1), 2.1 / (t + 1), (1.0 + t, 2.0), layer_init_distance=(0.01 * (t + 1), 0.02 * (t + 1)))
    return history


def test_the_length_column_is_added_when_the_window_is_read_and_the_rest_is_all_distance():
    assert num_inputs("all+distance+length") == num_inputs("all+distance") + 1 == 12
    assert recorded_feature_names("all+distance+length") == input_feature_names("all+distance")
    assert reads_distance("all+distance+length") and not reads_distance("all+momentum")
    plain, with_length = _recorded(300, 5, "all+distance"), _recorded(300, 5, "all+distance+length")
    np.testing.assert_array_equal(plain.features, with_length.features)  # the same rows recorded (11 columns)
    window, mask, context = with_length.observation()
    old_window, old_mask, old_context = plain.observation()
    assert window.shape == (8, 12) and mask.tolist() == old_mask.tolist() == [0, 0, 0] + [1] * 5
    np.testing.assert_array_equal(window[:, :11], old_window)
    np.testing.assert_allclose(window[3:, 11], math.log(0.3), rtol=1e-6)
    assert (window[:3] == 0).all()  # padding stays zero
    np.testing.assert_array_equal(context, old_context)
    # The same recorded rows read for a longer run: only the length column (and the context's time left) change.
    long_window, _, long_context = window_from_features(with_length.features, 5, 8, 3000, "all+distance+length")
    np.testing.assert_allclose(long_window[3:, 11], math.log(3.0), rtol=1e-6)
    np.testing.assert_array_equal(long_window[:, :11], window[:, :11])
    assert long_context[0] > context[0]
    # Clipped like every feature; rows recorded for "all" are too few for it.
    assert window_from_features(with_length.features, 5, 8, 10**9, "all+distance+length")[0][-1, 11] == FEATURE_CLIP  # log(10**6) = 13.8
    with pytest.raises(ValueError, match="reads 11 recorded features per step; these runs recorded 8"):
        window_from_features(_recorded(300, 5, "all").features, 5, 8, 300, "all+distance+length")


def test_learned_lr_reads_the_length_keeps_the_initial_weights_and_resumes_the_same(tmp_path):
    """The actor's decision moves with the length column alone; LearnedLR with such a policy keeps LRs in bounds,
    reports the recorded features it read by name, and resumes with the same LRs."""
    policy = load_policy(save_small_policy(tmp_path / "l.safetensors", window=32, decision_interval=4, inputs="all+distance+length"))

    torch.manual_seed(0)
    x, y = torch.randn(16, 3), torch.randn(16, 1)

    def problem(weights: dict | None = None, optimizer_state: dict | None = None):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        if weights is not None:
            model.load_state_dict(weights)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        return model, optimizer, LearnedLR(optimizer, total_steps=40, policy=policy, model=model)

    model, optimizer, scheduler = problem()
    lrs = [row[0] for row in mse_steps(model, optimizer, scheduler, x, y, 12)]
    assert all(math.isfinite(lr) and 0.05 * 1e-3 <= lr <= 0.05 * 4.0 + 1e-12 for lr in lrs)
    assert set(scheduler.decisions()[-1]["seen"]) == set(input_feature_names("all+distance"))
    assert len(scheduler.state_dict()["initial_weights"]) == 4
    # The same rows and context, read for a 40- and a 4,000-step run: only the length column differs, and the action with it.
    window, mask, context = scheduler.history.observation()
    longer = window_from_features(scheduler.history.features, 12, 32, 4000, "all+distance+length")[0]
    assert (window[:, :11] == longer[:, :11]).all() and not (window[:, 11] == longer[:, 11]).all()
    with torch.no_grad():
        means = [policy.actor(torch.from_numpy(w)[None], torch.from_numpy(mask)[None], torch.from_numpy(context)[None])[0].item()
                 for w in (window, longer)]
    assert abs(means[0] - means[1]) > 1e-3, means

    state, weights, optimizer_state = (copy.deepcopy(s) for s in (scheduler.state_dict(), model.state_dict(), optimizer.state_dict()))
    expected = mse_steps(model, optimizer, scheduler, x, y, 18)
    model, optimizer, resumed = problem(weights, optimizer_state)  # built from the step-12 weights...
    resumed.load_state_dict(state)  # ...and measuring from the run's initial weights again
    assert mse_steps(model, optimizer, resumed, x, y, 18) == expected

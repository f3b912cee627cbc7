"""Depth groups (``ControlConfig.layer_groups``): the min and max over layers of a deep model over K blocks of its layers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import mse_steps

from learned_lr.features import FEATURE_NAMES, input_feature_names
from learned_lr.layer_summary import depth_pooled
from learned_lr.observation import RunHistory
from learned_lr.settings import ConfigError, ControlConfig


def _features(layers: int, groups: int, inputs: str = "all+distance", skip: bool = True, seed: int = 0) -> np.ndarray:
    """40 recorded steps of random per-layer values (a blow-up, a NaN norm and zero-start layers among them)."""
    rng = np.random.default_rng(seed)
    history = RunHistory(total_steps=40, base_lr=0.1, window=16, inputs=inputs, skip_zero_start=skip, layer_groups=groups)
    for step in range(40):
        norms = rng.uniform(0.1, 5.0, size=layers)
        distances = rng.uniform(1e-4, 2.0, size=layers)
        distances[layers - 1] = math.nan  # a layer that started at zero
        cosines = rng.uniform(-1, 1, size=layers)
        if step == 20:
            norms[0], distances[0] = math.nan, math.inf  # a blow-up in one layer
        history.record(0.1 * (1 + step / 40), 2.0 - step / 40, 2.1 - step / 40, tuple(norms),
                       layer_momentum_cos=cosines if "momentum" in inputs else None,
                       layer_init_distance=distances if "distance" in inputs else None)
    return history.features


@pytest.mark.parametrize("layers", [1, 2, 3, 4])
@pytest.mark.parametrize("inputs,skip", [("all+distance", True), ("all+distance", False), ("all+momentum", False), ("all", False)])
def test_a_model_of_k_layers_or_fewer_is_read_exactly_as_without_groups(layers, inputs, skip):
    np.testing.assert_array_equal(_features(layers, 4, inputs, skip), _features(layers, 0, inputs, skip))


def test_a_deeper_model_reads_its_min_and_max_over_the_means_of_k_blocks_of_consecutive_layers():
    rng = np.random.default_rng(1)
    norms = rng.uniform(0.1, 5.0, size=(30, 9))
    history = RunHistory(total_steps=30, base_lr=0.1, window=16, inputs="all", layer_groups=4)
    plain = RunHistory(total_steps=30, base_lr=0.1, window=16, inputs="all")
    for row in norms:
        history.record(0.1, 1.0, 1.0, tuple(row))
        plain.record(0.1, 1.0, 1.0, tuple(row))
    logs = np.log(norms / norms[0])
    blocks = np.stack([logs[:, 0:2].mean(1), logs[:, 2:4].mean(1), logs[:, 4:6].mean(1), logs[:, 6:9].mean(1)], axis=1)  # 9 layers in 4
    got = dict(zip(FEATURE_NAMES, history.features.T))
    np.testing.assert_allclose(got["layer_grad_min"], blocks.min(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["layer_grad_max"], blocks.max(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got["layer_grad_mean"], dict(zip(FEATURE_NAMES, plain.features.T))["layer_grad_mean"])
    # the blocks' extremes lie inside the layers': the spread a 9-layer model shows is narrower read in groups
    assert (got["layer_grad_max"][1:] < np.log(norms / norms[0]).max(1)[1:]).all()
    assert (got["layer_grad_min"][1:] > np.log(norms / norms[0]).min(1)[1:]).all()


def test_a_block_whose_layers_all_lack_a_value_is_left_out_and_a_row_with_none_reads_as_a_blow_up():
    values = np.array([[np.nan, np.nan, 1.0, 3.0, 5.0, np.nan], [np.nan] * 6])
    np.testing.assert_array_equal(depth_pooled(values, 3), [[np.nan, 2.0, 5.0], [np.nan] * 3])
    history = RunHistory(total_steps=3, base_lr=0.1, window=4, inputs="all+distance", skip_zero_start=True, layer_groups=3)
    for row in (values[0], values[0], values[1]):
        history.record(0.1, 1.0, 1.0, (1.0,) * 6, layer_init_distance=tuple(np.exp(row)))
    distance = history.features[:, [input_feature_names("all+distance").index(f"init_distance_{s}") for s in ("mean", "min", "max")]]
    np.testing.assert_allclose(distance[1], [3.0, 2.0, 5.0], rtol=1e-6)  # mean over the layers, min/max over the blocks with one
    np.testing.assert_array_equal(distance[2], [10.0, 10.0, 10.0])


def test_layer_groups_is_checked_and_left_out_of_the_policy_hash_while_off(tmp_path, capsys):
    from learned_lr.bundled import resolve_policy
    from learned_lr.cli import main
    from learned_lr.policy import load_policy, policy_sha256
    from learned_lr.scheduler import LearnedLR

    with pytest.raises(ConfigError, match="--layer-groups"):
        ControlConfig(layer_groups=-1)
    out = tmp_path / "groups.safetensors"
    assert main(["bundle", "--policy", "default", "--layer-groups", "0", "--destination", str(out)]) == 0
    default_sha = policy_sha256(load_policy(resolve_policy("default")))
    assert policy_sha256(load_policy(out)) == default_sha  # off: every policy keeps its hash
    assert main(["bundle", "--policy", "default", "--layer-groups", "4", "--destination", str(out)]) == 0
    assert load_policy(out).control_config.layer_groups == 4 and policy_sha256(load_policy(out)) != default_sha
    capsys.readouterr()
    assert main(["bundle", "--policy", "default", "--layer-groups", "-2", "--destination", str(out)]) == 2
    assert "--layer-groups" in capsys.readouterr().err

    # The drop-in reads a 9-layer MLP in 4 blocks: the decision at step 17 saw step 16's blocks' extremes.
    torch.manual_seed(0)
    widths = [6] + [8] * 8 + [1]
    model = torch.nn.Sequential(*[m for a, b in zip(widths, widths[1:]) for m in (torch.nn.Linear(a, b), torch.nn.Tanh())][:-1])
    x, y = torch.randn(64, 6), torch.randn(64, 1)
    scheduler = LearnedLR(torch.optim.SGD(model.parameters(), lr=0.05), total_steps=100, policy=str(out), model=model)
    mse_steps(model, scheduler.optimizer, scheduler, x, y, 18)
    norms = scheduler.history.layer_grad_norms
    logs = np.log(norms[16] / norms[0])
    blocks = [logs[0:2].mean(), logs[2:4].mean(), logs[4:6].mean(), logs[6:9].mean()]
    seen = next(d["seen"] for d in scheduler.decisions() if d["step"] == 17)
    assert norms.shape[1] == 9
    assert seen["layer_grad_min"] == pytest.approx(min(blocks), rel=1e-4) and seen["layer_grad_max"] == pytest.approx(max(blocks), rel=1e-4)
    assert seen["layer_grad_mean"] == pytest.approx(logs.mean(), rel=1e-4)


import numpy as np
import pytest
import torch
from conftest import save_small_policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from learned_lr.checkpoint import CheckpointError
from learned_lr.control import clip_action
from learned_lr.features import NUM_CONTEXT, NUM_FEATURES
from learned_lr.policy import Actor, Critic, load_policy, save_policy
from learned_lr.settings import ControlConfig, PolicyConfig

CONTROL = ControlConfig(window=64)
POLICY = PolicyConfig(patch=8, d_model=32, layers=2)
torch.manual_seed(0)
ACTOR = Actor(POLICY, CONTROL).eval()
CRITIC = Critic(POLICY, CONTROL).eval()

wild_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, 1e30, -1e30, float("nan"), float("inf"), -float("inf")]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    window=hnp.arrays(np.float32, (2, 64, NUM_FEATURES), elements=wild_floats),
    mask=hnp.arrays(np.float32, (2, 64), elements=st.one_of(st.sampled_from([0.0, 1.0]), wild_floats)),
    context=hnp.arrays(np.float32, (2, NUM_CONTEXT), elements=wild_floats),
)
def test_actor_never_emits_nan_or_out_of_bounds(window, mask, context):
    with torch.no_grad():
        mean, std = ACTOR(torch.from_numpy(window), torch.from_numpy(mask), torch.from_numpy(context))
        value = CRITIC(torch.from_numpy(window), torch.from_numpy(mask), torch.from_numpy(context))
    lo, hi = CONTROL.log_bounds
    assert torch.isfinite(mean).all() and torch.isfinite(std).all() and torch.isfinite(value).all()
    assert bool(((mean >= lo) & (mean <= hi)).all())
    assert bool((std >= POLICY.min_std - 1e-6).all())
    sample = (mean + std * torch.randn_like(std)).tolist()
    assert all(lo <= clip_action(a, (lo, hi)) <= hi for a in sample)


def test_empty_history_gives_a_defined_action():
    window, mask, context = torch.zeros(1, 64, NUM_FEATURES), torch.zeros(1, 64), torch.tensor([[1.0, 0.0, 0.0]])
    with torch.no_grad():
        mean, _ = ACTOR(window, mask, context)
    assert torch.isfinite(mean).all()


def test_masked_steps_do_not_change_the_output():
    torch.manual_seed(1)
    window = torch.randn(1, 64, NUM_FEATURES)
    mask = torch.zeros(1, 64)
    mask[:, -20:] = 1
    other = window.clone()
    other[:, :40] = torch.randn(1, 40, NUM_FEATURES) * 100  # garbage where the mask is 0
    context = torch.tensor([[0.5, -0.69, 20 / 64]])
    with torch.no_grad():
        torch.testing.assert_close(ACTOR(window, mask, context)[0], ACTOR(other, mask, context)[0])


def test_policy_round_trips_and_bad_files_fail_clearly(tmp_path):
    path = tmp_path / "policy.safetensors"
    save_policy(path, ACTOR, CRITIC, {"note": "test"})
    loaded = load_policy(path)
    assert loaded.meta["note"] == "test" and loaded.control_config == CONTROL
    x = (torch.randn(3, 64, NUM_FEATURES), torch.ones(3, 64), torch.rand(3, NUM_CONTEXT))
    with torch.no_grad():
        torch.testing.assert_close(loaded.actor(*x)[0], ACTOR(*x)[0])

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors"):
        load_policy(truncated)

    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a learned-lr checkpoint"):
        load_policy(foreign)

    pickled = tmp_path / "pickled.safetensors"
    torch.save(ACTOR.state_dict(), pickled)
    with pytest.raises(CheckpointError, match="pickled.safetensors"):
        load_policy(pickled)

    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(tmp_path / "missing.safetensors")


def test_single_decision_fn_matches_the_eager_actor(tmp_path):
    from conftest import save_small_policy

    from learned_lr.policy import load_policy, single_decision_fn

    actor = load_policy(save_small_policy(tmp_path / "p.safetensors", window=64)).actor
    decide = single_decision_fn(actor)
    assert decide.__name__ == "fast"  # the traced path, not the eager fallback
    generator = torch.Generator().manual_seed(1)
    for filled in (0, 5, 33, 64):
        window = torch.randn(1, 64, 8, generator=generator) * 3
        window[0, -1, 2] = float("nan")
        mask = torch.zeros(1, 64)
        mask[:, 64 - filled:] = 1.0
        context = torch.rand(1, 3, generator=generator)
        with torch.no_grad():
            expected = actor(window, mask, context)[0]
        torch.testing.assert_close(decide(window, mask, context), expected, atol=1e-5, rtol=1e-5)


def test_single_decision_fn_keeps_the_weights_it_was_built_with(tmp_path):
    from conftest import save_small_policy

    from learned_lr.policy import load_policy, single_decision_fn

    actor = load_policy(save_small_policy(tmp_path / "p.safetensors", window=64)).actor
    decide = single_decision_fn(actor)
    window, mask, context = torch.randn(1, 64, 8), torch.ones(1, 64), torch.rand(1, 3)
    before = decide(window, mask, context).clone()
    with torch.no_grad():
        actor.mean_head.bias.add_(5.0)  # e.g. the caller goes on training its actor
    actor.train()
    torch.testing.assert_close(decide(window, mask, context), before)
    assert not torch.allclose(actor.eval()(window, mask, context)[0], before)


@pytest.mark.parametrize("change, message", [
    (lambda meta: meta["control_config"].update(min_lr_factor=1e-300), "min-lr-factor: must be >= 1e-08"),
    (lambda meta: meta["control_config"].update(max_lr_factor=1e300), "max-lr-factor: must be <= 100"),
    (lambda meta: meta["control_config"].update(window=10**9), "window"),
    (lambda meta: meta["policy_config"].update(d_model=4096, heads=2), "embed.weight"),
    (lambda meta: meta["policy_config"].update(layers=3), "layers"),
], ids=["tiny min factor", "huge max factor", "huge window", "other width", "other depth"])
def test_policy_metadata_that_breaks_the_bounds_or_the_weights_is_refused(tmp_path, change, message):
    from learned_lr.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    tensors, meta = load_checkpoint(save_small_policy(tmp_path / "policy.safetensors"), kind="policy")
    change(meta)
    save_checkpoint(tmp_path / "hostile.safetensors", tensors, {k: v for k, v in meta.items() if k not in ("format", "version", "kind")}, kind="policy")
    with pytest.raises(CheckpointError, match=message):
        load_policy(tmp_path / "hostile.safetensors")


def test_policy_metadata_that_is_not_an_object_is_refused(tmp_path):
    from safetensors.torch import save_file

    from learned_lr.checkpoint import CheckpointError

    save_file({"actor.x": torch.zeros(1)}, str(tmp_path / "list.safetensors"), metadata={"learned_lr": "[1, 2]"})
    with pytest.raises(CheckpointError, match="JSON list"):
        load_policy(tmp_path / "list.safetensors")

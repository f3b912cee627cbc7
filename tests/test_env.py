import dataclasses
import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from learned_lr.control import LRRamp, clip_action
from learned_lr.features import FEATURE_CLIP
from learned_lr.observation import RunHistory
from learned_lr.reward import block_reward
from learned_lr.settings import ConfigError, ControlConfig, RewardConfig
from learned_lr.training.config import EnvConfig
from learned_lr.training.gym_env import LRScheduleEnv


def small_env_config(**changes) -> EnvConfig:
    return EnvConfig(control=ControlConfig(window=32, decision_interval=4), min_total_steps=20, max_total_steps=30, **changes)


def test_env_passes_gymnasium_check(mnist):
    env = LRScheduleEnv(small_env_config())
    check_env(env, skip_render_check=True)


def test_episode_runs_to_the_end_and_lrs_stay_in_bounds(mnist):
    env = LRScheduleEnv(small_env_config())
    obs, info = env.reset(seed=3)
    lo, hi = env.config.control.log_bounds
    terminated, decisions, rewards = False, 0, []
    actions = [np.array([v], dtype=np.float32) for v in (100.0, -100.0, np.nan, 0.0)]
    while not terminated:
        obs, reward, terminated, truncated, step_info = env.step(actions[decisions % len(actions)])
        decisions += 1
        rewards.append(reward)
        assert math.isfinite(reward) and obs["mask"].sum() > 0
        factor = step_info["lr"] / info["base_lr"]
        assert math.exp(lo) * 0.999 <= factor <= math.exp(hi) * 1.001
    assert decisions == len(LRRamp(info["total_steps"], 4, (lo, hi)).decision_steps())
    assert obs["context"][0] == 0.0  # nothing left


def test_env_diverging_run_ends_with_penalty(mnist):
    env = LRScheduleEnv(small_env_config(min_peak_lr=50.0, max_peak_lr=50.0))
    env.reset(seed=0)
    terminated, reward, info = False, 0.0, {}
    while not terminated:
        _, reward, terminated, _, info = env.step(np.array([math.log(4.0)], dtype=np.float32))
    assert info["diverged"] and reward == -RewardConfig().divergence_penalty


def test_reward_matches_the_proposal_formula():
    cfg = RewardConfig(stability_weight=2.0, train_loss_weight=1.0, val_loss_weight=0.5)
    train, val = np.array([0.5, 0.7, 0.6]), np.array([0.4, 0.4, 0.5])
    # increases: max(0, 0.5-0.6)=0, 0.2, 0 -> per-step 2*inc + train + 0.5*val
    expected = -np.mean([0 + 0.5 + 0.2, 0.4 + 0.7 + 0.2, 0 + 0.6 + 0.25])
    assert block_reward(train, val, previous_train=0.6, config=cfg) == pytest.approx(expected)
    assert block_reward(np.array([0.5, np.nan]), val[:2], 0.5, cfg) == -cfg.divergence_penalty


def test_history_features_are_finite_and_normalized():
    history = RunHistory(total_steps=10, base_lr=0.1, window=8)
    history.record(0.1, 2.0, 2.1, [1.0, 2.0])
    history.record(0.05, 1.0, np.inf, [2.0, np.nan])
    history.record(np.nan, np.nan, np.nan, [np.inf, 0.0])
    assert np.isfinite(history.features[:3]).all()
    assert np.abs(history.features).max() <= FEATURE_CLIP
    np.testing.assert_allclose(history.features[1, :3], [0.8, math.log(0.5), math.log(0.5)], rtol=1e-6)
    window, mask, context = history.observation()
    assert mask.tolist() == [0] * 5 + [1] * 3 and context.tolist() == pytest.approx([0.7, math.log(0.7), 3 / 8])
    np.testing.assert_array_equal(window[-3:], history.features[:3])


def _reference_features(total_steps: int, base_lr: float, steps: list[tuple]) -> np.ndarray:
    """The feature table of observation.py computed the slow, obvious way: one step at a time."""
    big = np.finfo(np.float64).max

    def finite(v: float) -> float:  # as numpy's nan_to_num(nan=inf): NaN -> inf, +-inf -> +-largest float
        return math.inf if math.isnan(v) else (big if v == math.inf else (-big if v == -math.inf else v))

    def log_ratio(value: float, reference: float) -> float:
        if not (math.isfinite(reference) and reference > 0) or not math.isfinite(value):
            return FEATURE_CLIP
        return min(max(math.log(max(value, 1e-12) / max(reference, 1e-12)), -FEATURE_CLIP), FEATURE_CLIP)

    def total(norms: list[float]) -> float:
        with np.errstate(over="ignore"):
            return float(np.sqrt(np.sum(np.square([finite(v) for v in norms])))) if norms else math.nan

    _, first_train, _, first_norms = steps[0]
    first_train = first_train if math.isfinite(first_train) and first_train > 0 else 1.0
    first_total = total(first_norms) if math.isfinite(total(first_norms)) and total(first_norms) > 0 else 1.0
    first_layers = [finite(v) if finite(v) > 0 and math.isfinite(finite(v)) else 1.0 for v in first_norms]
    rows = []
    for t, (lr, train, val, norms) in enumerate(steps):
        row = [(total_steps - t - 1) / total_steps, log_ratio(lr / base_lr if math.isfinite(lr) else math.nan, 1.0),
               log_ratio(train, first_train), log_ratio(val, first_train), log_ratio(total(norms), first_total)]
        if norms and len(norms) == len(first_norms):
            ratios = [min(max(math.log(max(finite(v), 1e-12) / f), -FEATURE_CLIP), FEATURE_CLIP) for v, f in zip(norms, first_layers)]
            row += [sum(ratios) / len(ratios), min(ratios), max(ratios)]
        else:
            row += [0.0, 0.0, 0.0]
        rows.append(row)
    return np.array(rows, dtype=np.float32)


_value = st.one_of(st.floats(1e-4, 1e4), st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0]))


@settings(max_examples=60, deadline=None)
@given(layers=st.integers(0, 3), data=st.data())
def test_history_features_match_a_step_by_step_reference(layers, data):
    """Steps are stored raw and turned into features in batches when read; whenever they are
    read, the table must equal the one-step-at-a-time definition, bad values included."""
    total_steps = data.draw(st.integers(1, 40))
    base_lr = data.draw(st.sampled_from([0.1, 1.0, 3e-4]))
    history = RunHistory(total_steps, base_lr=base_lr, window=16)
    steps = []
    for _ in range(total_steps):
        width = layers if data.draw(st.booleans()) or layers == 0 else data.draw(st.integers(0, 3))
        step = (data.draw(_value), data.draw(_value), data.draw(_value), [data.draw(_value) for _ in range(width)])
        history.record(*step)
        steps.append(step)
        if data.draw(st.integers(0, 4)) == 0:  # read in between, as a decision does
            history.observation()
    expected = _reference_features(total_steps, base_lr, steps)
    np.testing.assert_allclose(history.features[:total_steps], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(history.train_loss, np.array([s[1] for s in steps], dtype=np.float64))


def test_ramp_reaches_each_decision_and_clips():
    ramp = LRRamp(total_steps=10, decision_interval=4, log_bounds=(-2.0, 1.0))
    assert ramp.decision_steps() == [0, 1, 5, 9]
    np.testing.assert_allclose(np.log(ramp.apply(0, -1.0)), [-1.0])
    np.testing.assert_allclose(np.log(ramp.apply(1, 0.0)), [-0.75, -0.5, -0.25, 0.0])
    np.testing.assert_allclose(np.log(ramp.apply(5, 50.0)), [0.25, 0.5, 0.75, 1.0])
    assert clip_action(float("nan"), (-2.0, 1.0)) == -2.0


def test_a_rise_limit_caps_how_far_one_decision_raises_the_lr_and_never_a_cut():
    ramp = LRRamp(total_steps=11, decision_interval=4, log_bounds=(-6.0, 3.0), max_rise=4.0)
    np.testing.assert_allclose(np.log(ramp.apply(0, -3.0)), [-3.0])  # the first decision has nothing to rise from
    rise = math.log(4.0)
    np.testing.assert_allclose(np.log(ramp.apply(1, 3.0)), -3.0 + rise * np.arange(1, 5) / 4)  # asked 20x: gets 4x
    np.testing.assert_allclose(np.log(ramp.apply(5, -6.0)), -3.0 + rise + (-6.0 - (-3.0 + rise)) * np.arange(1, 5) / 4)  # a cut: all of it
    np.testing.assert_allclose(np.log(ramp.apply(9, 3.0)), -6.0 + rise * 2 / 4 * np.arange(1, 3) / 2)  # a 2-step last block: 4^(2/4)
    assert ramp.previous_action == pytest.approx(-6.0 + rise / 2)
    unlimited = LRRamp(total_steps=11, decision_interval=4, log_bounds=(-6.0, 3.0))
    unlimited.apply(0, -3.0)
    assert np.log(unlimited.apply(1, 3.0))[-1] == pytest.approx(3.0)


def test_a_rise_span_fraction_lets_a_short_run_rise_faster_and_leaves_a_long_one_as_it_was():
    """With rise_span_fraction f a T-step run shorter than K / f rises r-fold per f*T steps; a longer one per K, as without f."""
    control = ControlConfig(decision_interval=32, max_lr_rise=4.0, start_decision_interval=16, start_steps=128)
    short = LRRamp.of(100, dataclasses.replace(control, rise_span_fraction=0.125))
    assert short.rise_span == 12.5
    short.apply(0, -3.0)
    np.testing.assert_allclose(np.log(short.apply(1, 3.0)), -3.0 + math.log(4.0) * 16 / 12.5 * np.arange(1, 17) / 16)  # 4^(16/12.5)
    same = LRRamp.of(100, control)
    same.apply(0, -3.0)
    np.testing.assert_allclose(np.log(same.apply(1, 3.0))[-1], -3.0 + math.log(4.0) / 2)  # per 32 steps: 2x over 16
    for total in (256, 300, 3000):  # f*T >= K: the run's limit is the one without f, block for block
        spanned, plain = LRRamp.of(total, dataclasses.replace(control, rise_span_fraction=0.125)), LRRamp.of(total, control)
        for step, action in zip(plain.decision_steps(), [-3.0, 3.0, 3.0, -1.0, 3.0, 3.0, 3.0]):
            np.testing.assert_array_equal(spanned.apply(step, action), plain.apply(step, action))
    assert LRRamp.of(4, dataclasses.replace(control, rise_span_fraction=0.125)).rise_span == 1.0  # at least one step


def test_with_rise_span_while_falling_a_short_run_rises_faster_only_after_a_block_whose_loss_fell():
    from learned_lr.loop import DecisionLoop

    control = ControlConfig(decision_interval=32, max_lr_rise=4.0, start_decision_interval=16, start_steps=128,
                            rise_span_fraction=0.25, rise_span_while_falling=True)

    def block_rises(losses) -> list[float]:
        """Log-LR rise per step of each block (from step 17 on) when every decision asks for the highest LR."""
        loop, rises = DecisionLoop(total_steps=100, base_lr=0.1, control=control), []
        for step in range(100):
            if loop.needs_decision():
                before = math.log(loop.lr_factor()) if step else None
                factors = loop.decide(-6.0 if step == 0 else 3.0)  # from 0.0025x: the climb stays under the bounds
                if step >= 17:
                    rises.append((math.log(factors[-1]) - before) / len(factors))
            loop.record(train_loss=losses(step), val_loss=1.0, layer_grad_norms=(1.0,))
        return rises

    short, per_k = math.log(4.0) / 25, math.log(4.0) / 32   # 0.25 x 100 steps, and K
    np.testing.assert_allclose(block_rises(lambda step: 2.0 - 0.01 * step), short)   # falling: the short span
    np.testing.assert_allclose(block_rises(lambda step: 1.0 + 0.01 * step), per_k)   # rising: per K
    np.testing.assert_allclose(block_rises(lambda step: float("nan")), per_k)        # no losses: per K
    np.testing.assert_allclose(block_rises(lambda step: -1.0 - 0.01 * step), short)  # a negative loss falling: the short span
    # falling, then rising from step 40 on: the block of steps 49-64 is the first whose mean is above the one before
    np.testing.assert_allclose(block_rises(lambda step: 2.0 - 0.01 * step if step < 40 else 1.0 + 0.01 * step)[:4], [short] * 3 + [per_k])


def block_log_changes(control: ControlConfig, losses, total: int = 200, resume_at: int | None = None, layers: int = 1) -> list[float]:
    """Log-LR change over each block from step 17 on of a ``total``-step run of a model of ``layers`` layers whose
    training loss at each step is ``losses(step)``, when every decision asks for the highest LR; with ``resume_at`` the
    loop is rebuilt there from its saved state."""
    from learned_lr.loop import DecisionLoop

    loop, changes = DecisionLoop(total_steps=total, base_lr=0.1, control=control), []
    for step in range(total):
        if step == resume_at:
            state, loop = loop.state(), DecisionLoop(total_steps=total, base_lr=0.1, control=control)
            loop.load_state(state)
        if loop.needs_decision():
            before = math.log(loop.lr_factor()) if step else None
            factors = loop.decide(-6.0 if step == 0 else 3.0)
            if step >= 17:
                changes.append(math.log(factors[-1]) - before)
        loop.record(train_loss=losses(step), val_loss=1.0, layer_grad_norms=(1.0,) * layers)
    return changes


# The brake tests' controls (the default's cadence and rise limit), the rise limit's log-change per block there (blocks
# of 16 steps to step 129, then 32), and a loss that falls to 0.8 at step 80, then climbs back: block means 0.91 (steps
# 65-80, the lowest), 1.06, 1.54 (97-112), 2.02, 2.74.
BRAKE_CONTROL = ControlConfig(decision_interval=32, max_lr_rise=4.0, start_decision_interval=16, start_steps=128)
RISE_LIMIT_BLOCKS = [math.log(4.0) * n / 32 for n in (16,) * 7 + (32,)]


def loss_back_up(step: int) -> float:
    return 2.0 - 0.015 * step if step < 80 else 0.8 + 0.03 * (step - 80)


def test_after_a_block_whose_loss_rose_a_decision_holds_or_cuts_the_lr_whatever_the_policy_asks():
    plain = BRAKE_CONTROL

    def block_changes(after_loss_rise: float, losses, total: int = 200) -> list[float]:
        return block_log_changes(dataclasses.replace(plain, after_loss_rise=after_loss_rise), losses, total)

    limit = RISE_LIMIT_BLOCKS
    falling = lambda step: 2.0 - 0.005 * step  # noqa: E731
    rising_from_40 = lambda step: 2.0 - 0.005 * step if step < 40 else 1.8 + 0.01 * (step - 40)  # noqa: E731
    np.testing.assert_allclose(block_changes(1.0, falling)[:8], limit)             # a falling loss: the rise limit alone
    np.testing.assert_allclose(block_changes(0.0, rising_from_40)[:8], limit)      # off: the same, whatever the loss does
    np.testing.assert_allclose(block_changes(1.0, lambda step: math.nan)[:8], limit)  # no losses: nothing read, nothing held
    # rising from step 40: the block of steps 49-64 is the first whose mean is above the one before; the decision at 65 reads it
    np.testing.assert_allclose(block_changes(1.0, rising_from_40)[:8], limit[:3] + [0.0] * 5)             # held
    np.testing.assert_allclose(block_changes(0.5, rising_from_40)[:8], limit[:3] + [math.log(0.5)] * 5)   # halved, block after block
    cuts = block_changes(0.5, lambda step: 1.0 + 0.01 * step, total=60)   # rising from the start: halved down to the lower bound
    level = -6.0 + math.log(4.0) / 2 + 2 * math.log(0.5)
    np.testing.assert_allclose(cuts, [math.log(0.5)] * 2 + [math.log(1e-3) - level])
    with pytest.raises(ConfigError, match="after-loss-rise"):
        ControlConfig(after_loss_rise=2.0)   # a rise is the rise limit's to allow


def test_while_the_loss_is_above_its_lowest_block_a_decision_holds_or_cuts_the_lr_and_a_resumed_loop_remembers_the_lowest():
    plain = BRAKE_CONTROL
    over = lambda r: dataclasses.replace(plain, loss_over_lowest=1.5, over_lowest_factor=r)  # noqa: E731
    limit = RISE_LIMIT_BLOCKS
    falling = lambda step: 2.0 - 0.005 * step  # noqa: E731
    noisy = lambda step: 1.0 + 0.6 * (step % 2)  # noqa: E731  a loss that jumps 60% step to step around a level: blocks at 1.3x the lowest
    np.testing.assert_allclose(block_log_changes(over(0.5), falling)[:8], limit)     # a falling loss: the rise limit alone
    np.testing.assert_allclose(block_log_changes(over(0.5), noisy)[:8], limit)       # noise near its level is not a climb
    np.testing.assert_allclose(block_log_changes(plain, loss_back_up)[:8], limit)         # off: the same, whatever the loss does
    np.testing.assert_allclose(block_log_changes(over(1.0), loss_back_up)[:8], limit[:6] + [0.0] * 2)                # held from the decision at 113
    np.testing.assert_allclose(block_log_changes(over(0.5), loss_back_up)[:8], limit[:6] + [math.log(0.5)] * 2)      # halved, block after block
    np.testing.assert_allclose(block_log_changes(over(0.5), loss_back_up, resume_at=100), block_log_changes(over(0.5), loss_back_up))  # the lowest survives a resume
    assert "loss_over_lowest" not in plain.identity() and "over_lowest_factor" not in plain.identity()  # every hash as before
    assert over(0.5).identity()["over_lowest_factor"] == 0.5
    with pytest.raises(ConfigError, match="loss-over-lowest"):
        ControlConfig(loss_over_lowest=1.0)   # at or below the lowest is every run
    with pytest.raises(ConfigError, match="over-lowest-factor"):
        ControlConfig(loss_over_lowest=1.5, over_lowest_factor=2.0)   # a rise is the rise limit's to allow


def test_the_loss_over_lowest_brake_below_a_layer_count_acts_on_shallower_models_only():
    plain = BRAKE_CONTROL
    below6 = dataclasses.replace(plain, loss_over_lowest=1.5, over_lowest_factor=0.5, over_lowest_below_layers=6)
    limit = RISE_LIMIT_BLOCKS
    halved = limit[:6] + [math.log(0.5)] * 2
    np.testing.assert_allclose(block_log_changes(below6, loss_back_up, layers=5)[:8], halved)     # 5 layers: braked
    np.testing.assert_allclose(block_log_changes(below6, loss_back_up, layers=6)[:8], limit)      # 6 layers: as without the brake
    np.testing.assert_allclose(block_log_changes(below6, loss_back_up, layers=5, resume_at=100), block_log_changes(below6, loss_back_up, layers=5))
    every = dataclasses.replace(below6, over_lowest_below_layers=0)
    np.testing.assert_allclose(block_log_changes(every, loss_back_up, layers=12)[:8], halved)     # 0: every model
    assert "over_lowest_below_layers" not in every.identity() and below6.identity()["over_lowest_below_layers"] == 6
    with pytest.raises(ConfigError, match="over-lowest-below-layers"):
        ControlConfig(over_lowest_below_layers=6)   # no brake to limit
    with pytest.raises(ConfigError, match="over-lowest-below-layers"):
        dataclasses.replace(below6, over_lowest_below_layers=1)


def test_with_rise_span_distance_a_short_run_rises_faster_only_while_its_weights_are_near_their_start():
    from learned_lr.loop import DecisionLoop

    control = ControlConfig(decision_interval=32, max_lr_rise=4.0, start_decision_interval=16, start_steps=128,
                            rise_span_fraction=0.25, rise_span_distance=0.05, inputs="all+distance")

    def block_rises(distance) -> list[float]:
        loop, rises = DecisionLoop(total_steps=100, base_lr=0.1, control=control), []
        for step in range(100):
            if loop.needs_decision():
                before = math.log(loop.lr_factor()) if step else None
                factors = loop.decide(-6.0 if step == 0 else 3.0)
                if step >= 1:
                    rises.append((math.log(factors[-1]) - before) / len(factors))
            d = distance(step)
            loop.record(train_loss=1.0, val_loss=1.0, layer_grad_norms=(1.0, 1.0), layer_init_distance=(d / 2, d * 2))  # geometric mean d
        return rises

    short, per_k = math.log(4.0) / 25, math.log(4.0) / 32
    np.testing.assert_allclose(block_rises(lambda step: 0.01), short)   # weights near their start: the short span
    np.testing.assert_allclose(block_rises(lambda step: 0.2), per_k)    # moved far: per K
    # moving: the decision at step 49 reads the distance after step 48, the first at or above 0.05
    np.testing.assert_allclose(block_rises(lambda step: 0.001 * (step + 1) + 0.001)[:4], [short] * 3 + [per_k])
    with pytest.raises(ConfigError, match="rise-span-distance"):
        ControlConfig(max_lr_rise=4.0, rise_span_fraction=0.25, rise_span_distance=0.05)   # inputs that do not read it
    # from step 17 on: the first block (decided at step 1, after one step) is per K whatever the distance
    control = dataclasses.replace(control, rise_span_from_step=17)
    np.testing.assert_allclose(block_rises(lambda step: 0.01), [per_k] + [short] * 6)
    with pytest.raises(ConfigError, match="rise-span-from-step"):
        ControlConfig(max_lr_rise=4.0, rise_span_from_step=17)   # nothing to apply it to


def test_a_cooldown_decays_a_short_runs_end_linearly_to_zero_and_leaves_a_long_run_as_it_was():
    from learned_lr.control import cooldown_steps

    plain = ControlConfig(decision_interval=32, max_lr_rise=4.0, start_decision_interval=16, start_steps=128)
    cooled = dataclasses.replace(plain, cooldown_fraction=0.2, cooldown_max_steps=300)
    assert (cooldown_steps(100, 0.2, 300), cooldown_steps(299, 0.2, 300), cooldown_steps(300, 0.2, 300), cooldown_steps(300, 0.2)) == (20, 60, 0, 60)

    def factors(control: ControlConfig, steps: int) -> np.ndarray:
        ramp, out = LRRamp.of(steps, control), []
        for index, step in enumerate(ramp.decision_steps()):
            out.extend(ramp.apply(step, [-2.3, -1.0, 1.0, 0.5, -0.5][index % 5]))   # climbs, then cuts: the policy's own level
        return np.array(out)

    base, cool = factors(plain, 100), factors(cooled, 100)
    np.testing.assert_array_equal(cool[:80], base[:80])                       # before its last 20 steps: untouched
    np.testing.assert_allclose(cool[80:], np.maximum(base[80:] * (100 - np.arange(80, 100)) / 20, 1e-3))  # then times (T - t) / 20
    assert cool[-1] == pytest.approx(max(base[-1] / 20, 1e-3)) and cool[-1] < base[-1] / 10
    for steps in (300, 1000):                                                 # 300 steps or more: exactly as before
        np.testing.assert_array_equal(factors(cooled, steps), factors(plain, steps))
    np.testing.assert_allclose(factors(dataclasses.replace(cooled, cooldown_max_steps=0), 1000)[-1], max(factors(plain, 1000)[-1] / 200, 1e-3))
    for bad, flag in (({"cooldown_fraction": 1.0}, "cooldown-fraction"), ({"cooldown_fraction": math.nan}, "cooldown-fraction"),
                      ({"cooldown_max_steps": 300}, "cooldown-max-steps")):   # a whole run, NaN, a length with nothing to apply
        with pytest.raises(ConfigError, match=flag):
            ControlConfig(**bad)


def test_a_dense_start_decides_more_often_over_the_first_steps_and_its_blocks_tile_the_run():
    ramp = LRRamp(total_steps=150, decision_interval=32, log_bounds=(-6.0, 3.0), max_rise=64.0, start_interval=16, start_steps=64)
    steps = ramp.decision_steps()
    assert steps == [0, 1, 17, 33, 49, 65, 97, 129]
    assert [s + ramp.block_length(s) for s in steps] == steps[1:] + [150]
    ramp.apply(0, -3.0)
    np.testing.assert_allclose(np.log(ramp.apply(1, 3.0)), -3.0 + math.log(64.0) / 2 * np.arange(1, 17) / 16)  # 64 per 32 steps: 8 per 16
    assert LRRamp.of(150, ControlConfig(decision_interval=32, start_decision_interval=16, start_steps=64)).decision_steps() == steps
    assert LRRamp.of(150, ControlConfig(decision_interval=32)).decision_steps() == [0, 1, 33, 65, 97, 129]


@settings(max_examples=200, deadline=None)
@given(actions=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-20, 20)), min_size=1, max_size=12),
       rise=st.sampled_from([0.0, 1.5, 4.0, 100.0]), cooldown=st.sampled_from([0, 1, 7, 60]))
def test_a_rise_limited_ramp_stays_finite_in_bounds_and_rises_at_most_the_limit(actions, rise, cooldown):
    lo, hi = math.log(1e-3), math.log(25.0)
    ramp = LRRamp(total_steps=60, decision_interval=5, log_bounds=(lo, hi), max_rise=rise, cooldown=cooldown)
    previous = None
    for step, action in zip(ramp.decision_steps(), actions):
        logs = np.log(ramp.apply(step, action))
        assert np.isfinite(logs).all() and (logs >= lo - 1e-9).all() and (logs <= hi + 1e-9).all()
        if previous is not None and rise:
            assert logs[-1] <= previous + math.log(rise) * len(logs) / 5 + 1e-9
        previous = logs[-1]


def test_a_history_that_keeps_only_its_window_reads_the_same_as_one_that_keeps_everything():
    """keep=W (what LearnedLR uses) drops old steps, so memory stays bounded; the policy's view must not change,
    through the arrays' compactions, a state round trip and another number of layers in some steps."""
    rng = np.random.default_rng(0)
    total, window = 3000, 64
    full = RunHistory(total, base_lr=0.1, window=window)
    bounded = RunHistory(total, base_lr=0.1, window=window, keep=window)
    for t in range(total):
        bad = rng.random() < 0.02
        row = (0.1 * math.exp(rng.normal()), math.inf if bad else float(rng.uniform(0.1, 3)), float(rng.uniform(0.1, 3)),
               rng.uniform(0.1, 2, size=2 if rng.random() < 0.03 else 3))
        full.record(*row)
        bounded.record(*row)
        if t == 1700:  # resume mid-run into a fresh bounded history
            again = RunHistory(total, base_lr=0.1, window=window, keep=window)
            again.load_state(bounded.state())
            bounded = again
        if rng.random() < 0.05 or t == total - 1:
            for mine, theirs in zip(bounded.observation(), full.observation()):
                np.testing.assert_array_equal(mine, theirs)
            assert bounded.steps - bounded.first_step <= max(256, 2 * window)  # the arrays start at 256 rows, then double
    assert bounded.first_step > total - 256 and len(bounded.lrs) == total - bounded.first_step
    np.testing.assert_array_equal(bounded.lrs, full.lrs[bounded.first_step:])
    np.testing.assert_array_equal(bounded.layer_grad_norms, full.layer_grad_norms[bounded.first_step:])
    assert sum(array.nbytes for array in bounded.state().values() if isinstance(array, np.ndarray)) < 20_000
    with pytest.raises(ValueError, match="no longer held"):
        bounded.normalized_losses(0, 10)
    with pytest.raises(ValueError, match="first one held"):
        bounded.observation(100)
    with pytest.raises(ValueError, match="keep must be"):
        RunHistory(total, base_lr=0.1, window=window, keep=window - 1)

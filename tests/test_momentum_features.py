"""The gradient-momentum cosine: per layer from the optimizer's own buffers, into the features of a policy that reads it."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from conftest import mse_steps, save_small_policy

from learned_lr.features import num_inputs, window_from_features
from learned_lr.layers import layer_momentum_cosines
from learned_lr.observation import RunHistory
from learned_lr.policy import load_policy
from learned_lr.scheduler import LearnedLR


def _mse_steps(model, optimizer, scheduler, x, y, steps: int) -> list[float]:
    """``steps`` full-batch MSE steps under ``scheduler`` (fed the loss); the LRs after the last one."""
    return mse_steps(model, optimizer, scheduler, x, y, steps)[-1]


def _two_layer_problem(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    return model, torch.randn(16, 3), torch.randn(16, 1)


@pytest.mark.parametrize("make_optimizer", [lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9), lambda p: torch.optim.Adam(p, lr=1e-3)])
def test_cosines_are_unknown_first_then_follow_the_gradient_against_the_buffer(make_optimizer):
    model, x, y = _two_layer_problem()
    optimizer = make_optimizer(model.parameters())
    params, layer_of = list(model.parameters()), [0, 0, 1, 1]
    seen = []
    for sign in (1.0, 1.0, -1.0):  # the last step's gradient is the negated one: it points against the momentum
        optimizer.zero_grad()
        (sign * torch.nn.functional.mse_loss(model(x), y)).backward()
        cosines = layer_momentum_cosines(optimizer, params, layer_of, 2)
        # the same number by hand: per layer, <g, m> / (|g| |m|) over its weight and bias
        if seen:
            for layer, members in ((0, params[:2]), (1, params[2:])):
                g = torch.cat([p.grad.reshape(-1) for p in members])
                buffers = [optimizer.state[p].get("momentum_buffer", optimizer.state[p].get("exp_avg")) for p in members]
                m = torch.cat([b.reshape(-1) for b in buffers])
                assert cosines[layer] == pytest.approx(float(g @ m / (g.norm() * m.norm())), abs=1e-5)
        seen.append(cosines)
        optimizer.step()
    assert all(math.isnan(c) for c in seen[0])
    assert all(c > 0.99 for c in seen[1])  # at a tiny LR the gradient barely changes: aligned
    assert all(c < -0.99 for c in seen[2])


def test_history_summarizes_cosines_over_layers_and_keeps_them_through_its_state():
    history = RunHistory(total_steps=6, base_lr=0.1, window=8, inputs="all+momentum")
    rows = [(math.nan, math.nan), (0.5, -0.5), (math.nan, 0.2), None, (2.0, -3.0)]
    for cosines in rows:
        history.record(0.1, 1.0, 1.0, (1.0, 2.0), cosines)
    features = history.features
    assert features.shape == (5, num_inputs("all+momentum")) == (5, 11)  # the recorded steps
    np.testing.assert_allclose(features[:5, 8:11], [[0, 0, 0], [0, -0.5, 0.5], [0.2, 0.2, 0.2], [0, 0, 0], [0, -1, 1]], atol=1e-6)
    again = RunHistory(total_steps=6, base_lr=0.1, window=8, inputs="all+momentum")
    again.load_state(history.state())
    np.testing.assert_array_equal(again.features, features)
    plain = RunHistory(total_steps=6, base_lr=0.1, window=8)
    plain.record(0.1, 1.0, 1.0, (1.0, 2.0), (0.5, 0.5))
    assert plain.features.shape == (1, 8)
    with pytest.raises(ValueError, match="reads 11 recorded features"):
        window_from_features(plain.features, 1, 8, 6, "all+momentum")


def test_learned_lr_reads_the_cosines_only_for_a_policy_that_uses_them(tmp_path):
    momentum_policy = load_policy(save_small_policy(tmp_path / "m.safetensors", window=32, decision_interval=4, inputs="all+momentum"))
    assert momentum_policy.actor.encoder.embed.in_features == 16 * 12
    for policy, width in ((momentum_policy, 11), ("mnist-bc", 8)):  # mnist-bc: a policy reading neither
        model, x, y = _two_layer_problem()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        scheduler = LearnedLR(optimizer, total_steps=12, policy=policy, model=model)
        for _ in range(10):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step(train_loss=loss.item())
        features = scheduler.history.features
        assert features.shape[1] == width
        lrs = [group["lr"] for group in optimizer.param_groups]
        assert all(np.isfinite(lrs))
    momentum = RunHistory(12, 1.0, 32, "all+momentum")
    momentum.load_state(scheduler.history.state())  # a plain history's state: no cosines, read as unknown
    assert not momentum.features[:, 8:].any()
    model, x, y = _two_layer_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scheduler = LearnedLR(optimizer, total_steps=12, policy=momentum_policy, model=model)
    for _ in range(6):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        scheduler.step()
    cos = scheduler.history.features[:6, 8:11]
    assert not cos[0].any() and bool((cos[1:] > 0.9).all())  # full-batch gradients at a small LR: aligned with the momentum
    assert list(scheduler.decisions()[-1]["seen"])[-3:] == ["momentum_cos_mean", "momentum_cos_min", "momentum_cos_max"]


def test_init_distances_by_hand_into_the_features_and_through_a_resume(tmp_path):
    """inputs="all+distance": |w - w0| / |w0| per layer, logged into mean/min/max; LearnedLR keeps the initial
    weights in its state, so a resumed run continues with the same LRs, and a state without them is refused."""
    from learned_lr.layers import InitialWeights, layer_init_distances

    model, x, y = _two_layer_problem()
    params = list(model.parameters())
    start = [p.detach().clone() for p in params]
    initial = InitialWeights.of(params)
    with torch.no_grad():
        params[0].mul_(1.5)  # layer 0's weight moved by half of itself; its bias stays
        params[2].zero_()
    moved = layer_init_distances(params, initial, [0, 0, 1, 1], 2)
    w0, b0, w1, b1 = start
    assert moved[0] == pytest.approx(float(0.5 * w0.norm() / torch.cat([w0.flatten(), b0]).norm()), rel=1e-6)
    assert moved[1] == pytest.approx(float(w1.norm() / torch.cat([w1.flatten(), b1]).norm()), rel=1e-6)
    history = RunHistory(total_steps=4, base_lr=0.1, window=8, inputs="all+distance")
    for distances in ((0.0, 0.0), (0.01, 0.1), (math.nan, 1.0)):
        history.record(0.1, 1.0, 1.0, (1.0, 2.0), layer_init_distance=distances)
    np.testing.assert_allclose(history.features[:, 8:11], [[-10, -10, -10], [math.log(0.01 * 0.1) / 2, math.log(0.01), math.log(0.1)],
                                                           [5, 0, 10]], atol=1e-5)

    policy = load_policy(save_small_policy(tmp_path / "d.safetensors", window=32, decision_interval=4, inputs="all+distance"))

    def train(model, optimizer, scheduler, steps):
        return _mse_steps(model, optimizer, scheduler, x, y, steps)

    model, x, y = _two_layer_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = LearnedLR(optimizer, total_steps=40, policy=policy, model=model)
    train(model, optimizer, scheduler, 13)
    state, weights, optimizer_state = (copy.deepcopy(s) for s in (scheduler.state_dict(), model.state_dict(), optimizer.state_dict()))
    assert len(state["initial_weights"]) == 4
    expected = [train(model, optimizer, scheduler, 1) for _ in range(20)]
    model.load_state_dict(weights)  # the resumed run's own scheduler is built from the step-13 weights...
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    optimizer.load_state_dict(optimizer_state)
    resumed = LearnedLR(optimizer, total_steps=40, policy=policy, model=model)
    resumed.load_state_dict(state)  # ...and measures from the run's initial weights again
    assert [train(model, optimizer, resumed, 1) for _ in range(20)] == expected
    state.pop("initial_weights")
    with pytest.raises(ValueError, match="initial weights"):
        LearnedLR(optimizer, total_steps=40, policy=policy, model=model).load_state_dict(state)


def test_init_distances_of_large_tensors_are_sampled_close_to_the_exact_ones_and_old_states_still_resume(mnist, tmp_path):
    """A tensor above DISTANCE_SAMPLE elements is measured on that many fixed elements: on a real MNIST MLP
    run (fc1: 200,704 weights) within 3% of the exact distance, smaller tensors exactly; the copy kept is
    the sample; a LearnedLR state that saved whole initial tensors (before sampling) resumes the same."""
    from learned_lr.layers import DISTANCE_SAMPLE, InitialWeights, distance_sample, layer_init_distances
    from learned_lr.tasks import TrainingRun
    from learned_lr.tasks.config import TaskConfig

    index = distance_sample(200_704)
    assert distance_sample(DISTANCE_SAMPLE) is None and len(index) == DISTANCE_SAMPLE and torch.equal(index, distance_sample(200_704))
    run = TrainingRun(TaskConfig(), seed=0, data=mnist)
    exact_start = [p.detach().clone() for p in run.params]
    initial = InitialWeights.of(run.params)
    assert [v.numel() for v in initial.values] == [DISTANCE_SAMPLE, 256, 2560, 10]
    for lr in (0.01,) * 20 + (0.3,) * 20:
        run.step(lr)
        sampled = layer_init_distances(run.params, initial, [0, 0, 1, 1], 2)
        exact = [float(torch.cat([(p.detach() - p0).reshape(-1) for p, p0 in pair]).norm() / torch.cat([p0.reshape(-1) for _, p0 in pair]).norm())
                 for pair in (list(zip(run.params, exact_start))[:2], list(zip(run.params, exact_start))[2:])]
        assert sampled[0] == pytest.approx(exact[0], rel=0.03) and sampled[1] == pytest.approx(exact[1], rel=1e-5)

    policy = load_policy(save_small_policy(tmp_path / "d.safetensors", window=32, decision_interval=4, inputs="all+distance"))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(200, 100), torch.nn.ReLU(), torch.nn.Linear(100, 1))  # 20,000 > DISTANCE_SAMPLE
    x, y = torch.randn(64, 200), torch.randn(64, 1)
    start = [p.detach().clone() for p in model.parameters()]

    def train(model, optimizer, scheduler, steps):
        return _mse_steps(model, optimizer, scheduler, x, y, steps)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = LearnedLR(optimizer, total_steps=40, policy=policy, model=model)
    train(model, optimizer, scheduler, 10)
    state, weights, optimizer_state = (copy.deepcopy(s) for s in (scheduler.state_dict(), model.state_dict(), optimizer.state_dict()))
    assert [w.numel() for w in state["initial_weights"]] == [DISTANCE_SAMPLE, 100, 100, 1]
    expected = [train(model, optimizer, scheduler, 1) for _ in range(12)]
    for initial_weights, resumes in ((start, True), ([w[:1] for w in start], False)):  # whole tensors, as saved before sampling
        model.load_state_dict(weights)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        resumed = LearnedLR(optimizer, total_steps=40, policy=policy, model=model)
        if resumes:
            resumed.load_state_dict({**state, "initial_weights": initial_weights})
            assert [train(model, optimizer, resumed, 1) for _ in range(12)] == expected
        else:
            with pytest.raises(ValueError, match="initial weights"):
                resumed.load_state_dict({**state, "initial_weights": initial_weights})


@pytest.mark.parametrize("optimizer, base_lr", [("sgd", 0.05), ("adam", 1e-3)])
def test_distances_measured_once_per_decision_read_close_to_per_step_ones_on_a_real_run(mnist, optimizer, base_lr):
    """What the policy reads when the distance is measured only where ``DecisionLoop.measures_distance``
    says (every step of the first K, then the last step of each block; the line between in between): on a
    real MNIST MLP run at K = 16 within 0.1 log-units of the per-step distance, exact where measured,
    the other features untouched; reading the history mid-block changes nothing once the block ends."""
    from learned_lr.loop import DecisionLoop
    from learned_lr.settings import ControlConfig
    from learned_lr.tasks import TrainingRun
    from learned_lr.tasks.config import TaskConfig

    steps, control = 120, ControlConfig(window=64, decision_interval=16, inputs="all+distance", max_lr_factor=4.0)
    run = TrainingRun(TaskConfig(optimizer=optimizer), seed=0, data=mnist)
    loop, peeked = DecisionLoop(steps, base_lr, control), DecisionLoop(steps, base_lr, control)
    exact = RunHistory(steps, base_lr, window=64, inputs="all+distance")
    measured = []
    for step in range(steps):
        if loop.needs_decision():
            action = -1.0 if step < 60 else 0.5  # a cut, then a raise: the weights move at two speeds
            loop.decide(action), peeked.decide(action)
        measured += [step] if loop.measures_distance() else []
        report = run.step(loop.lr(), init_distances=True)
        norms, distance = report.layer_grad_norms.numpy(), report.layer_init_distance.numpy()
        exact.record(loop.lr(), report.train_loss, report.val_loss, norms, layer_init_distance=distance)
        for each in (loop, peeked):
            each.record(report.train_loss, report.val_loss, norms, None, distance)  # (ignored where not measured)
        if step % 5 == 2:
            peeked.history.features  # noqa: B018 - a read mid-block
    assert measured == [*range(16), *range(16, steps, 16), steps - 1]
    ours, theirs = loop.history.features, exact.features
    np.testing.assert_array_equal(peeked.history.features, ours)
    np.testing.assert_array_equal(ours[:, :8], theirs[:, :8])
    error = np.abs(ours[:, 8:] - theirs[:, 8:])
    assert error[measured].max() == 0 and 1e-3 < error.max() < 0.1


def test_a_layer_that_started_at_zero_has_no_distance_and_reads_as_a_blow_up_unless_skipped():
    """LoRA's B matrices start at zero: relative to that their distance is undefined (NaN from
    ``layer_init_distances``; weights that blew up are inf). A history that does not skip them reads them as the top of
    the range on every step, measured or between two measurements, as every policy before
    ``ControlConfig.distance_skips_zero_start`` did; one that skips them summarizes the other layers; neither warns."""
    import warnings

    from learned_lr.layers import InitialWeights, layer_init_distances

    a, b = torch.nn.Parameter(torch.tensor([3.0, 4.0])), torch.nn.Parameter(torch.zeros(2))
    start = InitialWeights.of([a, b])
    assert math.isnan(layer_init_distances([a, b], start, [0, 1], 2)[1])          # not moved: still none
    with torch.no_grad():
        a += torch.tensor([0.3, 0.4])
        b += 1.0
    distances = layer_init_distances([a, b], start, [0, 1], 2)
    assert distances[0] == pytest.approx(0.1) and math.isnan(distances[1])       # moved: none
    with torch.no_grad():
        a[0] = math.nan
    assert layer_init_distances([a, b], start, [0, 1], 2)[0] == math.inf           # a blow-up: inf, not "none"

    def features(skip: bool) -> np.ndarray:
        history = RunHistory(total_steps=10, base_lr=0.1, window=16, inputs="all+distance", skip_zero_start=skip)
        given = {0: (0.1, math.nan), 1: (0.1, math.nan), 5: (0.3, math.nan)}  # steps 2-4: between two measurements
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for step in range(6):
                history.record(0.1, 1.0, 1.0, (1.0, 2.0), layer_init_distance=given.get(step))
            return history.features[:, 8:11]

    expected = np.log([0.1, 0.1, 0.15, 0.2, 0.25, 0.3])  # the other layer: measured, then on the line
    read_as_blow_up = features(skip=False)
    np.testing.assert_allclose(read_as_blow_up[:, 2], 10.0)  # max over layers: the zero-started layer, every step
    np.testing.assert_allclose(read_as_blow_up[:, 1], expected, rtol=1e-5)
    np.testing.assert_allclose(read_as_blow_up[:, 0], (expected + 10.0) / 2, rtol=1e-5)
    np.testing.assert_allclose(features(skip=True), np.stack([expected] * 3, axis=1), rtol=1e-5)   # the other layer alone


def test_skipping_zero_start_layers_changes_nothing_without_one_and_a_step_with_no_distance_reads_as_before():
    rng = np.random.default_rng(0)
    rows = [tuple(rng.uniform(1e-4, 3.0, size=3)) for _ in range(40)]
    rows[20] = (0.5, math.inf, 0.2)  # a blow-up in one layer: +10 either way

    def features(skip: bool, layers_at_step_30: int = 3) -> np.ndarray:
        history = RunHistory(total_steps=40, base_lr=0.1, window=16, inputs="all+distance", skip_zero_start=skip)
        for step, row in enumerate(rows):
            given = row if step != 30 else (row + (0.1,))[:layers_at_step_30]
            history.record(0.1, 1.0, 1.0, (1.0, 2.0, 3.0), layer_init_distance=given)
        return history.features

    np.testing.assert_array_equal(features(skip=True), features(skip=False))
    np.testing.assert_array_equal(features(skip=True, layers_at_step_30=4), features(skip=False, layers_at_step_30=4))
    rows[:] = [(math.nan,) * 3] * 40   # every layer started at zero: no distance anywhere, read as before
    np.testing.assert_array_equal(features(skip=True), features(skip=False))


def test_a_layer_whose_first_gradient_is_zero_reads_its_norms_from_its_first_non_zero_one_with_the_option():
    """LoRA's A matrices get no gradient while B is zero: relative to that first norm of zero their norms are undefined.
    Without ``norms_from_first_nonzero`` the reference is 1.0 (their features are absolute norms); with it, the first
    non-zero norm, through a resume before it arrived; a run whose layers all start with a gradient is unchanged."""
    second = [0.0, 0.0, 0.0, 0.5, 0.25, 0.125]

    def min_over_layers(option: bool, norms=second, resume_at: int | None = None) -> np.ndarray:
        history = RunHistory(total_steps=6, base_lr=0.1, window=16, norms_from_first_nonzero=option)
        for step, norm in enumerate(norms):
            if step == resume_at:
                resumed = RunHistory(total_steps=6, base_lr=0.1, window=16, norms_from_first_nonzero=option)
                resumed.load_state(history.state())
                history = resumed
            history.record(0.1, 1.0, 1.0, (2.0, norm))
        return history.features[:, 6]  # the min over layers of log(norm / reference)

    np.testing.assert_allclose(min_over_layers(False), [-10, -10, -10, math.log(0.5), math.log(0.25), math.log(0.125)], rtol=1e-6)
    expected = [-10, -10, -10, 0.0, math.log(0.5), math.log(0.25)]
    np.testing.assert_allclose(min_over_layers(True), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(min_over_layers(True, resume_at=2), expected, rtol=1e-6, atol=1e-7)   # saved before the reference
    np.testing.assert_allclose(min_over_layers(True, resume_at=5), expected, rtol=1e-6, atol=1e-7)   # ... and after
    every_layer = [1.0, 0.5, 2.0, 0.25, 0.5, 1.0]
    np.testing.assert_array_equal(min_over_layers(True, every_layer), min_over_layers(False, every_layer))


def test_a_layer_whose_first_gradient_is_zero_is_left_out_of_the_layer_gradient_inputs_with_the_skip():
    """``norms_skip_zero_start`` (``ControlConfig.grad_norms_skip_zero_start``): that layer is out of the layer-gradient
    mean, min and max for the whole run, through a resume; the total norm keeps it; a run without such a layer is unchanged."""
    from learned_lr.features import FEATURE_NAMES

    def features(option: bool, second=(0.0, 0.0, 0.5, 4.0, 0.25, 8.0), resume_at: int | None = None) -> dict:
        history = RunHistory(total_steps=6, base_lr=0.1, window=16, norms_skip_zero_start=option)
        for step, norm in enumerate(second):
            if step == resume_at:
                resumed = RunHistory(total_steps=6, base_lr=0.1, window=16, norms_skip_zero_start=option)
                resumed.load_state(history.state())
                history = resumed
            history.record(0.1, 1.0, 1.0, (2.0 * 2.0 ** -step, norm))
        return dict(zip(FEATURE_NAMES, history.features.T))

    first_layer = np.log(2.0 ** -np.arange(6))  # its norm halves every step, from its own first one
    for resume_at in (None, 1, 4):
        got = features(True, resume_at=resume_at)
        for name in ("layer_grad_mean", "layer_grad_min", "layer_grad_max"):
            np.testing.assert_allclose(got[name], first_layer, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(got["log_grad_norm"], features(False)["log_grad_norm"])  # the total keeps both layers
    assert features(False)["layer_grad_max"][3] == pytest.approx(math.log(4.0), rel=1e-6)  # reference 1.0 without it
    every_layer = (1.0, 0.5, 2.0, 0.25, 0.5, 1.0)
    np.testing.assert_array_equal(features(True, every_layer)["layer_grad_min"], features(False, every_layer)["layer_grad_min"])
    with pytest.raises(ValueError, match="not both"):
        RunHistory(total_steps=6, base_lr=0.1, window=16, norms_skip_zero_start=True, norms_from_first_nonzero=True)
    from learned_lr.settings import ConfigError, ControlConfig

    with pytest.raises(ConfigError, match="not both"):
        ControlConfig(inputs="all+distance", grad_norms_skip_zero_start=True, grad_norms_from_first_nonzero=True)

"""An ensemble of actors (`learned-lr bundle --ensemble-with`): the mean of the members' log-LRs, in bounds, refused when members differ."""

import math

import numpy as np
import pytest
import torch
from conftest import mse_steps, save_small_policy

from learned_lr.checkpoint import CheckpointError
from learned_lr.cli import main
from learned_lr.bundle import bundle_policy
from learned_lr.policy import Actor, EnsembleActor, load_policy, policy_sha256, save_policy
from learned_lr.scheduler import LearnedLR
from learned_lr.settings import ConfigError


def _members(tmp_path, count: int = 3, **kwargs) -> list:
    return [save_small_policy(tmp_path / f"member{seed}.safetensors", window=64, decision_interval=4, seed=seed, **kwargs) for seed in range(count)]


def _observations(window: int, batch: int = 6):
    generator = torch.Generator().manual_seed(1)
    mask = (torch.rand(batch, window, generator=generator) > 0.3).float()
    return torch.randn(batch, window, 8, generator=generator) * 3, mask, torch.rand(batch, 3, generator=generator)


def test_a_bundled_ensemble_decides_with_the_mean_of_its_members_log_lrs(tmp_path, capsys):
    members = _members(tmp_path)
    out = tmp_path / "ensemble.safetensors"
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", f"{members[1]},{members[2]}", "--destination", str(out)]) == 0
    assert "member0" in capsys.readouterr().out
    ensemble = load_policy(out)
    assert isinstance(ensemble.actor, EnsembleActor) and len(ensemble.actor.members) == 3
    assert ensemble.meta["ensemble_members"] == 3 and ensemble.meta["ensemble_of"] == [str(p) for p in members]
    window, mask, context = _observations(64)
    means = torch.stack([load_policy(p).actor(window, mask, context)[0] for p in members])
    mean, std = ensemble.actor(window, mask, context)
    assert torch.allclose(mean, means.mean(0), atol=1e-6)
    assert means.std(0).min() > 1e-3  # the members disagree, so the mean is not any one member's
    assert bool((std >= ensemble.policy_config.min_std).all())
    # Not a member's hash: a benchmark cell of one member is never reused for the ensemble.
    assert policy_sha256(ensemble) not in {policy_sha256(load_policy(p)) for p in members}


def test_a_member_listed_twice_runs_once_per_decision_with_the_same_numbers(tmp_path):
    """`--ensemble-with A,A` weighs A by listing it again (the default does so): loaded, the copies are one module, so A's
    forward runs once per decision; the state dict (and so the hash) keeps every copy, and the means, eager and traced,
    are bit for bit those of running each copy."""
    from learned_lr.policy import single_decision_fn

    members = _members(tmp_path, count=2)
    out = tmp_path / "weighted.safetensors"
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", f"{members[1]},{members[1]}", "--destination", str(out)]) == 0
    tied = load_policy(out).actor
    assert tied.members[1] is tied.members[2] and tied.members[0] is not tied.members[1]
    untied = EnsembleActor([load_policy(members[0]).actor, load_policy(members[1]).actor, load_policy(members[1]).actor])
    state, untied_state = tied.state_dict(), untied.state_dict()
    assert list(state) == list(untied_state) and all(torch.equal(v, untied_state[k]) for k, v in state.items())
    calls = []
    hooks = [member.register_forward_hook(lambda *_: calls.append(1)) for member in dict.fromkeys(tied.members)]
    window, mask, context = _observations(64)
    with torch.no_grad():
        mean = tied(window, mask, context)[0]
        assert len(calls) == 2 and torch.equal(mean, untied(window, mask, context)[0])
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        assert not torch.equal(mean, EnsembleActor([load_policy(p).actor for p in members])(window, mask, context)[0])
    fast_tied, fast_untied = single_decision_fn(tied), single_decision_fn(untied)
    assert fast_tied.__name__ == fast_untied.__name__ == "fast"  # traced, not the eager fallback
    one = tuple(t[:1] for t in (window, mask, context))
    assert torch.equal(fast_tied(*one), fast_untied(*one))


def test_an_ensemble_stays_in_bounds_and_finite_on_hostile_inputs(tmp_path):
    members = _members(tmp_path, count=2)
    out = tmp_path / "ensemble.safetensors"
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", str(members[1]), "--destination", str(out)]) == 0
    actor = load_policy(out).actor
    low, high = actor.control_config.log_bounds
    window = torch.full((3, 64, 8), float("nan"))
    window[1] = float("inf")
    window[2] = -1e30
    mean, std = actor(window, torch.ones(3, 64), torch.tensor([[float("nan"), 1.0, 0.0]] * 3))
    assert bool(torch.isfinite(mean).all() and torch.isfinite(std).all())
    assert bool(((mean >= low) & (mean <= high)).all())


def test_learned_lr_runs_an_ensemble_and_its_first_lr_is_the_geometric_mean_of_the_members(tmp_path):
    members = _members(tmp_path)
    out = tmp_path / "ensemble.safetensors"
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", f"{members[1]},{members[2]}", "--destination", str(out)]) == 0

    def first_factors(policy) -> list[float]:
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        scheduler = LearnedLR(torch.optim.SGD(model.parameters(), lr=0.1), total_steps=20, policy=str(policy), model=model)
        for _ in range(20):
            scheduler.optimizer.zero_grad()
            model(torch.ones(2, 3)).pow(2).sum().backward()
            scheduler.optimizer.step()
            scheduler.step(train_loss=1.0)
        return [d["lr_factor"] for d in scheduler.decisions()]

    # The first decision reads the same (empty) history in every run, so the ensemble's LR factor there is
    # the geometric mean of the members' (the bounds are the same for all, and each factor is inside them).
    member_first = [first_factors(p)[0] for p in members]
    ensemble_factors = first_factors(out)
    assert len(ensemble_factors) == 6  # before step 0, then every 4 steps from step 1 (1, 5, 9, 13, 17)
    assert math.isclose(ensemble_factors[0], math.exp(sum(map(math.log, member_first)) / 3), rel_tol=1e-4)
    assert max(member_first) / min(member_first) > 1.01  # the members differ, so this is not a tie


def test_members_that_differ_and_nested_ensembles_are_refused_clearly(tmp_path, capsys):
    members = _members(tmp_path, count=2)
    other_window = save_small_policy(tmp_path / "w32.safetensors", window=32, decision_interval=4, seed=5)
    out = tmp_path / "ensemble.safetensors"
    capsys.readouterr()
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", str(other_window), "--destination", str(out)]) == 1
    assert "other policy or control configs" in capsys.readouterr().err and not out.exists()
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", str(members[1]), "--destination", str(out)]) == 0
    nested = tmp_path / "nested.safetensors"
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", str(out), "--destination", str(nested)]) == 1
    assert "ensemble or length-gated already" in capsys.readouterr().err and not nested.exists()
    with pytest.raises(CheckpointError, match="at most 16 actors"):  # 2 and 15 more
        bundle_policy(out, nested, {}, ensemble_with=[members[0]] * 15)
    # An actor trained at another K may join: the ensemble decides at the bundle's cadence.
    other_k = save_small_policy(tmp_path / "k8.safetensors", window=64, decision_interval=8, seed=5)
    bundle_policy(members[0], nested, {}, ensemble_with=[other_k])
    assert load_policy(nested).control_config.decision_interval == 4
    with pytest.raises(ConfigError, match="2 or more actors"):
        EnsembleActor([load_policy(members[0]).actor])
    # PPO fine-tunes one actor: an ensemble as its start is refused before any run.
    from learned_lr.training.config import PPOConfig
    from learned_lr.training.ppo import _initial_networks

    with pytest.raises(ConfigError, match="ensemble of actors"):
        _initial_networks(PPOConfig(init=str(out), out=str(tmp_path / "ppo")))


def test_an_ensemble_saved_again_after_training_loads_as_the_same_ensemble(tmp_path):
    members = _members(tmp_path, count=2)
    out = tmp_path / "ensemble.safetensors"
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", str(members[1]), "--destination", str(out)]) == 0
    loaded = load_policy(out)
    with torch.no_grad():
        loaded.actor.members[1].mean_head.bias.add_(0.5)  # as a fine-tuning would change it
    again = tmp_path / "again.safetensors"
    save_policy(again, loaded.actor, loaded.critic, {"trained_by": "a test"})
    reloaded = load_policy(again)
    assert isinstance(reloaded.actor, EnsembleActor) and policy_sha256(reloaded) == policy_sha256(loaded)
    assert isinstance(load_policy(members[0]).actor, Actor)


def _small_problem():
    """A seeded small MSE problem: (model, x, y, SGD optimizer at LR 0.05), the same every call."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    return model, x, y, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def _run_lrs(policy, total_steps: int, steps: int = 24) -> list[float]:
    """The LRs LearnedLR sets over the first ``steps`` of a small MSE run of ``total_steps`` steps."""
    model, x, y, optimizer = _small_problem()
    scheduler = LearnedLR(optimizer, total_steps=total_steps, policy=policy, model=model)
    return [row[0] for row in mse_steps(model, optimizer, scheduler, x, y, steps)]


def test_a_length_gated_bundle_gives_short_runs_to_one_actor_and_the_rest_to_the_others_exactly(tmp_path, capsys):
    """`bundle --short-runs P --short-run-steps N`: a run of fewer than N steps gets P's decisions, LR for LR; a run
    of N or more the main ensemble's; a new hash; refused when nested, mismatched, half given, or fine-tuned by PPO."""
    from learned_lr.gates import LengthGatedActor, actor_for_run
    from learned_lr.training.rollout import PolicyController

    members = _members(tmp_path)
    ensemble, gated = tmp_path / "ensemble.safetensors", tmp_path / "gated.safetensors"
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", str(members[1]), "--destination", str(ensemble)]) == 0
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", str(members[1]), "--short-runs", str(members[2]),
                 "--short-run-steps", "100", "--destination", str(gated)]) == 0
    assert "runs shorter than 100 steps" in capsys.readouterr().out
    loaded = load_policy(gated)
    assert isinstance(loaded.actor, LengthGatedActor) and loaded.meta["short_run_steps"] == 100
    assert isinstance(actor_for_run(loaded.actor, 100), EnsembleActor) and isinstance(actor_for_run(loaded.actor, 99), Actor)
    assert _run_lrs(loaded, 99) == _run_lrs(load_policy(members[2]), 99)
    assert _run_lrs(loaded, 100) == _run_lrs(load_policy(ensemble), 100)
    assert _run_lrs(loaded, 99) != _run_lrs(load_policy(ensemble), 99)  # the members differ, so the gate matters
    assert policy_sha256(loaded) not in {policy_sha256(load_policy(p)) for p in (ensemble, members[2])}
    # Saved again (as a fine-tuning would), it loads as the same gated pair.
    again = tmp_path / "again.safetensors"
    save_policy(again, loaded.actor, loaded.critic, {"trained_by": "a test"})
    assert policy_sha256(load_policy(again)) == policy_sha256(loaded)
    # It never decides without knowing the run's length.
    window, mask, context = _observations(64)
    with pytest.raises(TypeError, match="actor_for_run"):
        loaded.actor(window, mask, context)
    from learned_lr.observation import RunHistory

    histories = [RunHistory(total_steps, 0.1, 64) for total_steps in (50, 150)]
    with pytest.raises(ValueError, match="one length at a time"):
        PolicyController(loaded.actor).decide(histories, 0, None)
    # Refused: half the flags, a gated source gated again, a short actor of other controls, PPO from it.
    assert main(["bundle", "--policy", str(members[0]), "--short-runs", str(members[2]), "--destination", str(tmp_path / "x.safetensors")]) == 2
    assert "together" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="length-gated already"):
        bundle_policy(members[0], tmp_path / "y.safetensors", {}, ensemble_with=[gated])
    # A gated source given a new short side keeps its long-run side and drops its old short one.
    regated = tmp_path / "regated.safetensors"
    assert main(["bundle", "--policy", str(gated), "--short-runs", str(members[0]), "--short-run-steps", "50", "--destination", str(regated)]) == 0
    again_gated = load_policy(regated)
    assert again_gated.actor.short_run_steps == 50 and "short_run_members" not in again_gated.meta and again_gated.meta["ensemble_members"] == 2
    assert _run_lrs(again_gated, 50) == _run_lrs(load_policy(ensemble), 50) and _run_lrs(again_gated, 49) == _run_lrs(load_policy(members[0]), 49)
    other_window = save_small_policy(tmp_path / "w32.safetensors", window=32, decision_interval=4, seed=5)
    with pytest.raises(CheckpointError, match="other policy or control configs"):
        bundle_policy(members[0], tmp_path / "z.safetensors", {}, short_runs=(other_window, 50))
    with pytest.raises(CheckpointError, match="is length-gated: the short-run policy"):
        bundle_policy(members[0], tmp_path / "z.safetensors", {}, short_runs=(gated, 50))
    # An ensemble as the short-run policy: short runs get its averaged decisions, long ones the main actor's.
    short_ensemble = tmp_path / "short-ensemble.safetensors"
    assert main(["bundle", "--policy", str(members[2]), "--short-runs", str(ensemble), "--short-run-steps", "100", "--destination", str(short_ensemble)]) == 0
    flipped = load_policy(short_ensemble)
    assert flipped.meta["short_run_members"] == 2 and isinstance(actor_for_run(flipped.actor, 99), EnsembleActor)
    assert _run_lrs(flipped, 99) == _run_lrs(load_policy(ensemble), 99) and _run_lrs(flipped, 100) == _run_lrs(load_policy(members[2]), 100)
    resaved = tmp_path / "resaved.safetensors"
    save_policy(resaved, flipped.actor, flipped.critic)
    assert policy_sha256(load_policy(resaved)) == policy_sha256(flipped) != policy_sha256(loaded)
    bundle_policy(short_ensemble, tmp_path / "one-short.safetensors", {}, short_runs=(members[0], 100))  # its ensemble short side replaced
    one_short = load_policy(tmp_path / "one-short.safetensors")
    assert "short_run_members" not in one_short.meta and _run_lrs(one_short, 99) == _run_lrs(load_policy(members[0]), 99)
    # From a bundled ensemble, and with a short actor trained at another K (it runs at the bundle's): the same gate.
    other_k = save_small_policy(tmp_path / "k8.safetensors", window=64, decision_interval=8, seed=2)
    from_bundle = tmp_path / "from-bundle.safetensors"
    assert main(["bundle", "--policy", str(ensemble), "--short-runs", str(other_k), "--short-run-steps", "100", "--destination", str(from_bundle)]) == 0
    assert _run_lrs(load_policy(from_bundle), 99) == _run_lrs(loaded, 99) and _run_lrs(load_policy(from_bundle), 100) == _run_lrs(loaded, 100)
    from learned_lr.training.config import PPOConfig
    from learned_lr.training.ppo import _initial_networks

    with pytest.raises(ConfigError, match="length-gated pair"):
        _initial_networks(PPOConfig(init=str(gated), out=str(tmp_path / "ppo")))


def test_a_gated_run_resumed_with_another_length_is_scheduled_by_the_actors_for_its_new_length(tmp_path):
    """A run saved under the short side of a gate and resumed past it (a run extended) takes the main actor's
    decisions from then on; resumed at its own length it keeps the short actor's. Same state, same model."""
    import copy

    members = _members(tmp_path)
    gated = tmp_path / "gated.safetensors"
    bundle_policy(members[0], gated, {}, short_runs=(members[1], 100))
    model, x, y, optimizer = _small_problem()
    scheduler = LearnedLR(optimizer, total_steps=80, policy=gated, model=model)
    mse_steps(model, optimizer, scheduler, x, y, 40)
    state, saved_model, saved_optimizer = scheduler.state_dict(), copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())

    def resumed(total_steps: int) -> list[float]:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(copy.deepcopy(saved_optimizer))  # (torch shares the momentum buffers it loads)
        again = LearnedLR(optimizer, total_steps=total_steps, policy=gated, model=model)
        again.load_state_dict(state)
        return [row[0] for row in mse_steps(model, optimizer, again, x, y, 20)]

    short, extended = resumed(80), resumed(160)
    assert all(math.isfinite(lr) and lr > 0 for lr in short + extended)
    assert short != extended  # the gate is crossed: another actor decides (and the remaining fraction differs)
    # Past the gate it decides as the main actor alone would from the same state (a policy file holding only it).
    main_only = tmp_path / "main-only.safetensors"
    bundle_policy(members[0], main_only, {}, short_runs=(members[0], 100))  # both sides the main actor: the same decisions
    gated_state_for = {**state, "policy_sha256": policy_sha256(load_policy(main_only))}
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(copy.deepcopy(saved_optimizer))
    alone = LearnedLR(optimizer, total_steps=160, policy=main_only, model=model)
    alone.load_state_dict(gated_state_for)
    assert [row[0] for row in mse_steps(model, optimizer, alone, x, y, 20)] == extended


def test_actors_added_to_a_bundled_policy_join_its_long_run_side_and_its_short_side_is_kept_bit_for_bit(tmp_path, capsys):
    """`bundle --policy BUNDLE --ensemble-with NEW`: a bundled ensemble (or a gated bundle's long-run side) gets NEW as
    a further member, the same policy as bundling all the actors at once; the short side and the cadence stay."""
    from learned_lr.gates import LengthGatedActor

    members = _members(tmp_path, count=4)
    pair, gated, extended = (tmp_path / f"{name}.safetensors" for name in ("pair", "gated", "extended"))
    cadence = ["--decision-interval", "8", "--start-decision-interval", "2", "--start-steps", "8"]
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", str(members[1]), "--destination", str(pair), *cadence]) == 0
    assert main(["bundle", "--policy", str(pair), "--short-runs", str(members[2]), "--short-run-steps", "100", "--destination", str(gated)]) == 0
    assert main(["bundle", "--policy", str(gated), "--ensemble-with", str(members[3]), "--destination", str(extended)]) == 0
    assert "member3" in capsys.readouterr().out
    grown, before = load_policy(extended), load_policy(gated)
    assert isinstance(grown.actor, LengthGatedActor) and len(grown.actor.main.members) == 3
    assert grown.meta["ensemble_members"] == 3 and grown.meta["ensemble_of"] == [str(members[0]), str(members[1]), str(members[3])]
    assert grown.meta["short_run_steps"] == 100 and grown.meta["short_run_policy"] == str(members[2])
    assert grown.control_config == before.control_config and grown.control_config.decision_interval == 8
    assert grown.meta["trained_decision_interval"] == 4
    # The kept actors are the same tensors, bit for bit, and the new one is member3's.
    for name, tensor in before.actor.short.state_dict().items():
        assert torch.equal(tensor, grown.actor.short.state_dict()[name])
    for index, actor in enumerate([before.actor.main.members[0], before.actor.main.members[1], load_policy(members[3]).actor]):
        assert all(torch.equal(v, grown.actor.main.members[index].state_dict()[k]) for k, v in actor.state_dict().items())
    # Short runs are scheduled as before, LR for LR; long ones as by the three actors bundled at once.
    at_once = tmp_path / "at-once.safetensors"
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", f"{members[1]},{members[3]}", "--destination", str(at_once), *cadence]) == 0
    assert _run_lrs(grown, 99) == _run_lrs(before, 99)
    assert _run_lrs(grown, 100) == _run_lrs(load_policy(at_once), 100) != _run_lrs(before, 100)
    # A plain bundled ensemble grown by one member is the three-actor bundle itself (same hash).
    grown_pair = tmp_path / "grown-pair.safetensors"
    assert main(["bundle", "--policy", str(pair), "--ensemble-with", str(members[3]), "--destination", str(grown_pair)]) == 0
    assert policy_sha256(load_policy(grown_pair)) == policy_sha256(load_policy(at_once))


def test_grad_skip_is_three_draws_under_a_rise_limit_of_4_and_three_draws_is_two_draws_with_a_third_long_run_actor(tmp_path):
    """"grad-skip", the default of the twenty-third to twenty-seventh sessions (docs/results.md section 7): "short-span", the twenty-first session's
    default, reading its distance features over the layers that started away from zero and leaving a layer whose first
    gradient is zero out of the gradient inputs ("zero-start": the first of the two alone; "first-nonzero", the
    twenty-second session's default: that layer's norms read from its first non-zero one instead); "short-span": "rise-limit-4" with the limit's short span added; "rise-limit-4": "three-draws", tensor for
    tensor, with one decision raising the LR at most 4x per 32 steps. "three-draws": "two-draws"' two long-run actors and
    the structure-copies actor decide together on runs of 300 steps or more; shorter runs get "two-draws"' three, LR for
    LR. Rebundled without the limit and the skip, "grad-skip" is "three-draws" hash for hash; "short-span" and
    "rise-limit-4" keep the hashes the defaults before had."""
    import dataclasses
    import json

    from learned_lr.bundled import BUNDLED_POLICIES
    from learned_lr.gates import LengthGatedActor
    from learned_lr.policy import policy_sha256

    from conftest import same_weights as same

    skip, first, zero, short, limit4, three, pair = (load_policy(BUNDLED_POLICIES[name]) for name in
                                                     ("grad-skip", "first-nonzero", "zero-start", "short-span", "rise-limit-4", "three-draws", "two-draws"))
    assert dataclasses.replace(skip.control_config, grad_norms_skip_zero_start=False) == zero.control_config
    assert dataclasses.replace(first.control_config, grad_norms_from_first_nonzero=False) == zero.control_config
    assert policy_sha256(first) == "c1849aea8a5d29cca2d0102581dc6cfd390a624d00b17b336f8197287d04065d" and same(first.actor, skip.actor)
    assert dataclasses.replace(zero.control_config, distance_skips_zero_start=False) == short.control_config
    assert skip.control_config.grad_norms_skip_zero_start and zero.control_config.distance_skips_zero_start
    assert same(skip.actor, short.actor) and same(zero.actor, short.actor)
    assert policy_sha256(zero) == "e7a094e391adc23fac22324d506d9fcab011a06f6cea3d3d4b024b5adcc78fff"
    assert policy_sha256(short) == "114973b9863a7c3be486dbacf483a198abebf7c015afe0952f3562ee6fb0c99a"  # the default's before
    assert limit4.control_config.max_lr_rise == 4 and three.control_config.max_lr_rise == pair.control_config.max_lr_rise == 0
    assert dataclasses.replace(limit4.control_config, max_lr_rise=0.0) == three.control_config == pair.control_config
    no_span = {"rise_span_fraction": 0.0, "rise_span_distance": 0.0, "rise_span_from_step": 0}
    assert dataclasses.replace(short.control_config, **no_span) == limit4.control_config
    assert policy_sha256(limit4) == "dbdd92dcae0e4e6fe535419d1367e75f22f94ebe1037fe8037d29295c3590a19"  # the default's before
    assert same(skip.actor, three.actor) and same(limit4.actor, three.actor) and skip.control_config.decision_interval == 32
    assert isinstance(three.actor, LengthGatedActor) and three.actor.short_run_steps == pair.actor.short_run_steps == 300
    assert len(three.actor.main.members) == 3 and same(three.actor.short, pair.actor.short)
    assert same(three.actor.main.members[0], pair.actor.main.members[0]) and same(three.actor.main.members[1], pair.actor.main.members[1])
    assert not same(three.actor.main.members[2], pair.actor.main.members[0])
    meta = json.loads(BUNDLED_POLICIES["three-draws"].with_suffix(".json").read_text())
    assert "--structure-copies" in meta["produced_by"] and "--ensemble-with" in meta["produced_by"] and meta["ensemble_members"] == 3
    assert meta["ensemble_of"][2] == "runs/general-copies/dagger/round-2/bc/policy.safetensors"
    assert "learned-lr bundle --name three-draws --policy default --max-lr-rise 0" in meta["produced_by"]
    assert _run_lrs("three-draws", 299, steps=40) == _run_lrs("two-draws", 299, steps=40)
    assert _run_lrs("three-draws", 300, steps=40) != _run_lrs("two-draws", 300, steps=40)
    # The limit and the two zero-start readings are the only differences: all lifted, "grad-skip" is "three-draws" (the hash LearnedLR's state keeps).
    lifted, pair_r4 = tmp_path / "lifted.safetensors", tmp_path / "two-draws-r4.safetensors"
    assert policy_sha256(skip) == "32281ebfe68d79a16c571756f69953ce1fd8aadb0e5d220608ec5cb4f6710990"  # the default's before
    assert main(["bundle", "--policy", "grad-skip", "--max-lr-rise", "0", "--distance-skips-zero-start", "0", "--grad-norms-skip-zero-start", "0",
                 "--destination", str(lifted)]) == 0
    assert policy_sha256(load_policy(lifted)) == policy_sha256(three) == "2aa078fa93c7c86fd3da700f93b8b89a3c125dcfe10a7e46a32772025b25dd41"
    assert main(["bundle", "--policy", "two-draws", "--max-lr-rise", "4", "--destination", str(pair_r4)]) == 0
    assert _run_lrs("grad-skip", 299, steps=40) == _run_lrs("rise-limit-4", 299, steps=40) == _run_lrs(load_policy(pair_r4), 299, steps=40)
    limited, free = (np.diff(np.log(_run_lrs(name, 300, steps=40))).max() for name in ("grad-skip", "three-draws"))
    assert limited <= math.log(4) / 32 + 1e-6 < free  # here the limit binds: unlimited, the LR rises faster


def test_decisions_show_what_the_rise_limit_held_back():
    """`decisions()` gives the factor each decision asked for beside the one it set: the default's limit holds some back
    on this run (the LR it set is lower), the same actors without it (`three-draws`) set exactly what they ask."""
    from learned_lr.control import held_back

    decided = {}
    for name in ("default", "three-draws"):
        model, x, y, optimizer = _small_problem()
        scheduler = LearnedLR(optimizer, total_steps=300, policy=name, model=model)
        mse_steps(model, optimizer, scheduler, x, y, 40)
        decided[name] = scheduler.decisions()
    limited, free = decided["default"], decided["three-draws"]
    assert len(limited) == len(free) == 4 and all(d["asked_factor"] >= d["lr_factor"] * (1 - 1e-9) for d in limited)
    assert any(map(held_back, limited)) and not any(map(held_back, free))
    assert all(math.isclose(d["asked_factor"], d["lr_factor"], rel_tol=1e-9) for d in free)
    assert not held_back(limited[0])  # the first decision has nothing to rise from


def test_cautious_x3_counts_the_cautious_actor_three_times_and_keeps_cautious_short_side():
    """"cautious-x3", the default of the twenty-ninth to thirty-second sessions (docs/results.md section 7), is the file
    judged as "cautious x3", hash for hash: "cautious"'s (the default before it) four long-run actors and its fourth, the
    cautious one, twice more, so it weighs 1/2 in the mean of their log-LRs; "cautious" is "grad-skip"'s three and that
    actor once. Both keep "grad-skip"'s control and short side: runs under 300 steps get the same LRs from all three;
    longer runs differ."""
    import json

    from learned_lr.bundled import BUNDLED_POLICIES
    from learned_lr.policy import policy_sha256

    from conftest import same_weights as same

    default, cautious, before = (load_policy(BUNDLED_POLICIES[name]) for name in ("cautious-x3", "cautious", "grad-skip"))
    assert policy_sha256(default) == "e2dfd791f32d8e5e2962d6973d6a66f73fb7784861fa3555bfe9c2d11057d86d"
    assert policy_sha256(cautious) == "f553d3e2402d729b953fd143c1a18077feb5a41b692575611fa2795e8f99f6b5"
    assert default.control_config == cautious.control_config == before.control_config
    members, four = default.actor.main.members, cautious.actor.main.members
    assert len(members) == 6 and len(four) == 4 and all(same(m, c) for m, c in zip(members, four))
    assert same(members[4], four[3]) and same(members[5], four[3]) and not any(same(four[3], c) for c in four[:3])
    assert all(same(c, b) for c, b in zip(four, before.actor.main.members))
    assert same(default.actor.short, cautious.actor.short) and same(cautious.actor.short, before.actor.short)
    meta = json.loads(BUNDLED_POLICIES["cautious-x3"].with_suffix(".json").read_text())
    hard_q = "runs/general-hard-q/dagger/round-2/bc/policy.safetensors"
    assert "--bc-quantile 0.25" in meta["produced_by"] and meta["ensemble_of"][-3:] == [hard_q] * 3
    assert f"learned-lr bundle --name default --policy cautious --ensemble-with {hard_q},{hard_q}" in meta["produced_by"]
    assert "learned-lr bundle --name cautious --policy grad-skip" in meta["produced_by"]
    assert _run_lrs("cautious-x3", 299, steps=40) == _run_lrs("cautious", 299, steps=40) == _run_lrs("grad-skip", 299, steps=40)
    assert _run_lrs("cautious-x3", 300, steps=40) != _run_lrs("cautious", 300, steps=40) != _run_lrs("grad-skip", 300, steps=40)


def test_the_default_is_cautious_x3_under_6_layers_and_counts_the_cautious_actor_12_times_from_6():
    """The default since the thirty-third session (docs/results.md section 7, the depth gate on fresh deep draws) is the
    file judged as "depth x12", hash for hash: on runs of 300 steps or more a model of under 6 layers gets
    "cautious-x3"'s six long-run members, one of 6 layers or more the same four actors with the cautious one counted 12
    times of 15; both keep "cautious-x3"'s short side and control. A 2-layer model gets "cautious-x3"'s LRs exactly."""
    import json

    from learned_lr.bundled import BUNDLED_POLICIES
    from learned_lr.gates import LengthGatedActor, StructureGatedActor, structure_gated
    from learned_lr.policy import policy_sha256

    from conftest import same_weights as same

    default, before = (load_policy(BUNDLED_POLICIES[name]) for name in ("default", "cautious-x3"))
    assert policy_sha256(default) == "8454a5dd4fbf0723bcd31da9c1d4a2771362ba235051c6a89f1b43f763bbbdf2"
    assert default.control_config == before.control_config
    gate = structure_gated(default.actor)
    assert isinstance(default.actor, LengthGatedActor) and isinstance(gate, StructureGatedActor)
    assert (gate.min_layers, gate.by_zero_start) == (6, False)
    plain, deep, six = gate.plain.members, gate.structural.members, before.actor.main.members
    assert len(plain) == 6 and all(same(m, b) for m, b in zip(plain, six)) and same(default.actor.short, before.actor.short)
    assert len(deep) == 15 and all(same(m, b) for m, b in zip(deep[:4], six[:4])) and all(same(m, six[3]) for m in deep[3:])
    meta = json.loads(BUNDLED_POLICIES["default"].with_suffix(".json").read_text())
    assert "--structural runs/weight2/cautious-x12.safetensors --structural-min-layers 6 --structural-zero-start 0" in meta["produced_by"]
    assert "--destination runs/weight2/cautious-x12.safetensors" in meta["produced_by"] and "seeds 120-122" in meta["scored"]
    # _run_lrs' model has 2 layers: the plain side, which is "cautious-x3", LR for LR, on long and short runs
    assert _run_lrs("default", 300, steps=40) == _run_lrs("cautious-x3", 300, steps=40)
    assert _run_lrs("default", 299, steps=40) == _run_lrs("cautious-x3", 299, steps=40)

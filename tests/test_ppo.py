import copy
import math

import numpy as np
import pytest
import torch
from conftest import save_small_policy

from learned_lr.checkpoint import load_checkpoint
from learned_lr.policy import Actor, Critic, load_policy
from learned_lr.settings import ConfigError, ControlConfig, PolicyConfig, RewardConfig
from learned_lr.tasks.config import TaskConfig
from learned_lr.training.config import PPOConfig
from learned_lr.training.ppo import Batch, gae, gaussian_kl, ppo_update, train_ppo


def toy_target(remaining: torch.Tensor) -> torch.Tensor:
    return -2.0 + 3.0 * remaining


def test_ppo_solves_a_1d_control_task_with_a_known_optimum():
    """A contextual 1-D control task: the context holds r in [0, 1]; the reward is -(a - a*(r))^2
    with a*(r) = -2 + 3r. From a random init, the same PPO update used on trainees must bring the
    actor's mean within 0.15 of the optimum everywhere."""
    torch.manual_seed(0)
    control = ControlConfig(window=16)
    policy = PolicyConfig(patch=16, d_model=16, layers=1, heads=2, init_std=1.0, min_std=0.05)
    actor, critic = Actor(policy, control), Critic(policy, control)
    bc_actor = copy.deepcopy(actor)
    config = PPOConfig(kl_coef=0.0, update_epochs=4, minibatch_size=32, actor_lr=3e-3, critic_lr=3e-3, max_grad_norm=1.0)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=config.actor_lr)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=config.critic_lr)
    generator = torch.Generator().manual_seed(0)

    def observe(r: torch.Tensor):
        context = torch.stack([r, torch.log(r.clamp(min=1e-4)), torch.zeros_like(r)], dim=1)
        return torch.zeros(len(r), 16, 8), torch.zeros(len(r), 16), context

    def mean_error() -> float:
        r = torch.linspace(0.02, 1.0, 50)
        with torch.no_grad():
            mean, _ = actor(*observe(r))
        return float((mean - toy_target(r)).abs().mean())

    before = mean_error()
    iterations = 40
    for it in range(iterations):
        for opt, lr in ((actor_opt, config.actor_lr), (critic_opt, config.critic_lr)):
            opt.param_groups[0]["lr"] = lr * (1 - it / iterations)  # linear annealing, as CleanRL's anneal_lr
        r = torch.rand(128, generator=generator)
        window, mask, context = observe(r)
        with torch.no_grad():
            dist = actor.distribution(window, mask, context)
            actions = dist.sample()
            logprobs = dist.log_prob(actions)
            values = critic(window, mask, context)
            bc_mean, bc_std = bc_actor(window, mask, context)
        rewards = -(actions - toy_target(r)).square()
        batch = Batch(window, mask, context, actions, logprobs, rewards - values, rewards, values, bc_mean, bc_std)
        ppo_update(actor, critic, actor_opt, critic_opt, batch, config, update_actor=True, generator=generator)
    after = mean_error()
    assert before > 1.0
    assert after < 0.1, f"mean |mean - optimum| = {after:.3f}"


def test_gae_and_kl_closed_forms():
    advantages, returns = gae(np.array([1.0, 1.0]), np.array([0.5, 0.5]), discount=0.9, lam=1.0)
    # lam=1: advantages are discounted returns minus values.
    np.testing.assert_allclose(returns, [1 + 0.9 * 1, 1.0])
    np.testing.assert_allclose(advantages, [1.9 - 0.5, 1.0 - 0.5])
    kl = gaussian_kl(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([2.0]))
    assert float(kl) == pytest.approx(math.log(2) + (1 + 1) / 8 - 0.5)


@pytest.fixture(scope="module")
def small_policy_path(tmp_path_factory):
    return save_small_policy(tmp_path_factory.mktemp("init") / "policy.safetensors", meta={"trained_by": "test"})


def small_ppo_config(init, out, **changes) -> PPOConfig:
    return PPOConfig(task=TaskConfig(hidden=32), init=str(init), iterations=3, runs_per_iteration=3, total_steps="40,56",
                     critic_warmup_iterations=1, update_epochs=2, minibatch_size=16, out=str(out), **changes)


def test_ppo_resume_ends_with_the_same_weights(small_policy_path, tmp_path, mnist):
    straight = train_ppo(small_ppo_config(small_policy_path, tmp_path / "straight"), progress=False)
    assert train_ppo(small_ppo_config(small_policy_path, tmp_path / "resumed"), progress=False, max_iterations_this_call=2) is None
    resumed = train_ppo(small_ppo_config(small_policy_path, tmp_path / "resumed"), progress=False)
    a, meta = load_checkpoint(straight)
    b, _ = load_checkpoint(resumed)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert meta["trained_by"] == "ppo"
    log = (tmp_path / "resumed" / "ppo_log.csv").read_text().splitlines()
    assert len(log) == 4 and log[1].split(",")[6] == "0" and log[3].split(",")[6] == "1"  # critic warm-up first
    # A kill after the last state save but before its log write: the rerun restores the row from the state.
    (tmp_path / "resumed" / "ppo_log.csv").write_text("\n".join(log[:-1]) + "\n")
    train_ppo(small_ppo_config(small_policy_path, tmp_path / "resumed"), progress=False)
    assert (tmp_path / "resumed" / "ppo_log.csv").read_text().splitlines() == log


def test_ppo_from_random_init_with_subramanian_reward_runs(tmp_path, mnist):
    config = small_ppo_config("random", tmp_path / "random", control=ControlConfig(window=16, inputs="subramanian"), policy=PolicyConfig(patch=16),
                              reward=RewardConfig(kind="subramanian"))
    path = train_ppo(config, progress=False)
    _, meta = load_checkpoint(path)
    assert meta["init"] == "random" and meta["control_config"]["inputs"] == "subramanian"
    # The reward PPO was given is Subramanian et al.'s: g * (best val loss so far - this block's), recomputed by hand
    from learned_lr.policy import load_policy
    from learned_lr.tasks.groups import make_run_group
    from learned_lr.training.rollout import PolicyController, rollout

    policy = load_policy(path)
    (episode,) = rollout(make_run_group(TaskConfig(hidden=32), [3], mnist), PolicyController(policy.actor), 60, [0.1],
                         policy.control_config, RewardConfig(kind="subramanian", subramanian_gain=2.0), evaluate_test=False)
    history, best, expected = episode.history, math.nan, []
    for start, end in zip(episode.decision_steps, [*episode.decision_steps[1:], 60]):
        current = float(np.mean(history.val_loss[start:end] / history.train_loss[0]))
        expected.append(2.0 * ((current if math.isnan(best) else best) - current))
        best = current if math.isnan(best) else min(best, current)
    np.testing.assert_allclose(episode.rewards, expected, rtol=1e-9)
    assert expected[0] == 0.0 and max(expected) > 0.05  # the first block sets the best; later ones improve on it


def test_the_final_loss_reward_pays_once_at_the_end_minus_log_the_last_blocks_val_loss(small_policy_path, mnist):
    from learned_lr.tasks.groups import make_run_group
    from learned_lr.training.rollout import PolicyController, rollout

    policy = load_policy(small_policy_path)
    (episode,) = rollout(make_run_group(TaskConfig(hidden=32), [3], mnist), PolicyController(policy.actor), 50, [0.1],
                         policy.control_config, RewardConfig(kind="final", discount=1.0), evaluate_test=False)
    history, last_start = episode.history, episode.decision_steps[-1]
    assert len(episode.rewards) == len(episode.decision_steps) >= 3 and last_start < 50
    expected = -math.log(float(np.mean(history.val_loss[last_start:50] / history.train_loss[0])))
    assert episode.rewards[:-1] == [0.0] * (len(episode.rewards) - 1) and episode.rewards[-1] == pytest.approx(expected, rel=1e-9)
    assert expected > 0.1  # the run learned: its final val loss is below its first train loss
    with pytest.raises(ConfigError, match="kind"):
        RewardConfig(kind="final-ish")


def test_iteration_settings_draw_widths_lengths_and_lrs_reproducibly():
    from learned_lr.training.ppo_runs import iteration_setting

    config = PPOConfig(hidden_sizes="64,128,256", total_steps="100,200", runs_per_iteration=4, min_peak_lr=0.01, max_peak_lr=0.5)
    settings = [iteration_setting(config, i) for i in range(30)]
    assert {s[0].hidden for s in settings} == {64, 128, 256} and {s[1] for s in settings} == {100, 200}
    assert all(0.01 <= lr <= 0.5 for s in settings for lr in s[2])
    assert all(50_000 <= seed < 100_000 for s in settings for seed in s[3])  # never BC's or evaluation's seeds
    again = iteration_setting(config, 7)
    assert again[0] == settings[7][0] and again[1] == settings[7][1] and np.array_equal(again[2], settings[7][2])


def test_ppo_over_general_train_variants_draws_a_variant_and_its_tuned_lr_range(tmp_path):
    import dataclasses
    import json

    from learned_lr.checkpoint import CheckpointError
    from learned_lr.training.ppo_runs import iteration_setting, load_variants

    variants = [{"name": "digits-0", "task": dataclasses.asdict(TaskConfig(task="digits", hidden=32, optimizer="adam")), "steps": 150,
                 "oracle_shape": "cosine", "oracle_lr": 0.003},
                {"name": "mnist1d-0", "task": dataclasses.asdict(TaskConfig(task="mnist1d", width=16)), "steps": 300,
                 "oracle_shape": "linear-warmup", "oracle_lr": 0.2}]
    path = tmp_path / "variants.json"
    path.write_text(json.dumps(variants))
    config = PPOConfig(variants=str(path), runs_per_iteration=4, min_multiplier=0.1, max_multiplier=10.0)
    settings = [iteration_setting(config, i, load_variants(path)) for i in range(20)]
    assert {s[0].task for s in settings} == {"digits", "mnist1d"}
    for task, steps, lrs, _ in settings:
        tuned = 0.003 if task.task == "digits" else 0.2
        assert steps == (150 if task.task == "digits" else 300) and np.all((lrs >= 0.1 * tuned) & (lrs <= 10 * tuned))
    # The held-out discipline: a variants file with a held-out family is refused before any run.
    variants[1]["task"] = dataclasses.asdict(TaskConfig(task="mnist-resnet18", width=4))
    path.write_text(json.dumps(variants))
    with pytest.raises(CheckpointError, match="held-out"):
        load_variants(path)
    path.write_text("not json")
    with pytest.raises(CheckpointError, match="not a readable variants file"):
        load_variants(path)
    with pytest.raises(ConfigError, match="variants"):
        PPOConfig(variants=str(tmp_path / "missing.json"))


def test_policy_rollout_continues_after_one_run_diverges(small_policy_path, mnist):
    from learned_lr.policy import load_policy
    from learned_lr.settings import RewardConfig
    from learned_lr.tasks.config import TaskConfig
    from learned_lr.tasks.groups import make_run_group
    from learned_lr.training.rollout import PolicyController, rollout

    policy = load_policy(small_policy_path)
    group = make_run_group(TaskConfig(hidden=32), [1, 2], mnist)
    episodes = rollout(group, PolicyController(policy.actor, deterministic=False, seed=0), 40, [0.05, 200.0],
                       policy.control_config, RewardConfig(), evaluate_test=False)
    assert episodes[1].diverged and episodes[1].history.steps < 40
    assert not episodes[0].diverged and episodes[0].history.steps == 40


def test_ppo_does_not_resume_from_a_starting_policy_changed_in_place(tmp_path, mnist):
    from learned_lr.checkpoint import CheckpointError

    init = save_small_policy(tmp_path / "bc" / "policy.safetensors", meta={"trained_by": "test"})
    config = small_ppo_config(init, tmp_path / "ppo")
    assert train_ppo(config, progress=False, max_iterations_this_call=1) is None
    save_small_policy(init, seed=1, meta={"trained_by": "test"})  # e.g. BC retrained into the same folder
    with pytest.raises(CheckpointError, match="another starting policy"):
        train_ppo(config, progress=False)


def _two_variants_file(tmp_path):
    import dataclasses
    import json

    variants = [{"name": "digits-0", "task": dataclasses.asdict(TaskConfig(task="digits", hidden=8, optimizer="adam", batch_size=16, val_batch_size=16)),
                 "steps": 24, "oracle_shape": "cosine", "oracle_lr": 0.003},
                {"name": "diabetes-0", "task": dataclasses.asdict(TaskConfig(task="diabetes", hidden=8, optimizer="adam", batch_size=16, val_batch_size=16)),
                 "steps": 40, "oracle_shape": "linear-warmup", "oracle_lr": 0.01},
                {"name": "digits-1", "task": dataclasses.asdict(TaskConfig(task="digits", hidden=16, optimizer="sgd", batch_size=16, val_batch_size=16)),
                 "steps": 32, "oracle_shape": "cosine", "oracle_lr": 0.05}]
    path = tmp_path / "variants.json"
    path.write_text(json.dumps(variants))
    return path


def test_iterations_over_several_variants_share_runs_and_seeds_evenly(tmp_path):
    import dataclasses

    from learned_lr.training.ppo_runs import iteration_chunks, load_variants

    path = _two_variants_file(tmp_path)
    variants = load_variants(path)
    config = PPOConfig(variants=str(path), runs_per_iteration=6, variants_per_iteration=2, min_multiplier=0.1, max_multiplier=10.0)
    seen = set()
    for iteration in range(12):
        chunks = iteration_chunks(config, iteration, variants)
        names = [c[0] for c in chunks]
        assert len(chunks) == 2 and len(set(names)) == 2 and [len(c[4]) for c in chunks] == [3, 3]
        seeds = chunks[0][4] + chunks[1][4]
        assert seeds == list(range(seeds[0], seeds[0] + 6)) and all(50_000 <= s < 90_000 for s in seeds)
        for name, task, steps, lrs, _ in chunks:
            tuned = next(v["oracle_lr"] for v in variants if v["name"] == name)
            assert TaskConfig(**next(v["task"] for v in variants if v["name"] == name)) == task
            assert np.all((lrs >= 0.1 * tuned) & (lrs <= 10 * tuned)) and len(lrs) == 3
        seen.update(names)
    assert seen == {"digits-0", "diabetes-0", "digits-1"}
    again = iteration_chunks(config, 5, variants)
    assert [c[0] for c in again] == [c[0] for c in iteration_chunks(config, 5, variants)]
    # One variant per iteration draws what it always drew (older runs resume unchanged).
    from learned_lr.training.ppo_runs import iteration_setting

    single = dataclasses.replace(config, variants_per_iteration=1)
    (name, task, steps, lrs, seeds), = iteration_chunks(single, 3, variants)
    expected = iteration_setting(single, 3, variants)
    assert task == expected[0] and steps == expected[1] and np.array_equal(lrs, expected[2]) and seeds == expected[3]
    with pytest.raises(ConfigError, match="variants-per-iteration"):
        PPOConfig(variants=str(path), runs_per_iteration=2, variants_per_iteration=3)
    with pytest.raises(ConfigError, match="need --variants"):
        PPOConfig(validate_every=2)


def test_run_length_scale_lengthens_every_rollout_and_nothing_else(tmp_path):
    import dataclasses

    from learned_lr.training.ppo_runs import iteration_chunks, load_variants

    path = _two_variants_file(tmp_path)
    variants = load_variants(path)
    for per_iteration in (1, 2):
        base = PPOConfig(variants=str(path), runs_per_iteration=6, variants_per_iteration=per_iteration)
        longer = dataclasses.replace(base, run_length_scale=2.5)
        for iteration in range(6):
            plain, scaled = iteration_chunks(base, iteration, variants), iteration_chunks(longer, iteration, variants)
            assert [c[0] for c in scaled] == [c[0] for c in plain]  # same variants, LRs and seeds: only the length differs
            for (name, task, steps, lrs, seeds), (_, task2, steps2, lrs2, seeds2) in zip(plain, scaled):
                assert steps == next(v["steps"] for v in variants if v["name"] == name)
                assert steps2 == round(2.5 * steps) and task2 == task and np.array_equal(lrs2, lrs) and seeds2 == seeds
    with pytest.raises(ConfigError, match="run-length-scale|run_length_scale"):
        PPOConfig(variants=str(path), run_length_scale=0.0)
    with pytest.raises(ConfigError, match="need --variants"):
        PPOConfig(run_length_scale=2.0)


def test_per_decision_scale_and_per_variant_advantages():
    from learned_lr.observation import RunHistory
    from learned_lr.training.ppo import _standardize_per_group, scaled_rewards
    from learned_lr.training.rollout import Episode

    control = ControlConfig(decision_interval=32)
    episode = Episode(0, 0.1, RunHistory(100, 0.1, 16, "all"), rewards=[-1.0, -0.5, -10.0])  # a run of 100 steps: 4 planned decisions
    np.testing.assert_allclose(scaled_rewards(episode, control, "per-decision"), [-0.25, -0.125, -2.5])
    np.testing.assert_allclose(scaled_rewards(episode, control, "none"), [-1.0, -0.5, -10.0])
    advantages = [np.array([1.0, 2.0]), np.array([100.0, 300.0]), np.array([3.0])]
    out = _standardize_per_group(advantages, ["a", "b", "a"])
    np.testing.assert_allclose(np.concatenate([out[0], out[2]]), [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    np.testing.assert_allclose(out[1], [-1.0, 1.0], rtol=1e-6)


def test_ppo_across_variants_validates_snapshots_keeps_the_best_and_resumes(tmp_path):
    import csv

    from learned_lr.policy import load_policy
    from learned_lr.training.ppo_runs import load_variants
    from learned_lr.training.validation import VALIDATION_MULTIPLIERS, validation_scores, validation_variants

    path = _two_variants_file(tmp_path)
    init = save_small_policy(tmp_path / "bc" / "policy.safetensors", decision_interval=8, meta={"trained_by": "test"})

    def config(out):
        return PPOConfig(init=str(init), variants=str(path), runs_per_iteration=4, variants_per_iteration=2, return_scale="per-decision",
                         validate_every=2, iterations=4, critic_warmup_iterations=1, minibatch_size=8, actor_lr=3e-3, kl_coef=0.0, out=str(out))

    straight = train_ppo(config(tmp_path / "straight"), progress=False)
    assert train_ppo(config(tmp_path / "resumed"), progress=False, max_iterations_this_call=3) is None
    resumed = train_ppo(config(tmp_path / "resumed"), progress=False)
    a, _ = load_checkpoint(straight)
    b, _ = load_checkpoint(resumed)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    rows = list(csv.DictReader((tmp_path / "resumed" / "validation.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [0, 2, 4] and float(rows[0]["change_vs_start"]) == 0.0
    assert rows == list(csv.DictReader((tmp_path / "straight" / "validation.csv").open()))
    # The snapshot at 0 is the start; its score is what validation_scores gives it (two of three variants: every other).
    start_scores = validation_scores(load_policy(init).actor, validation_variants(load_variants(path)))
    assert start_scores.shape == (2 * len(VALIDATION_MULTIPLIERS),) and np.isfinite(start_scores).all()
    assert float(rows[0]["score"]) == pytest.approx(float(start_scores.mean()), abs=1e-9)
    best = min(rows, key=lambda r: float(r["score"]))
    chosen = load_policy(tmp_path / "straight" / "best_policy.safetensors")
    snapshot = load_policy(tmp_path / "straight" / "snapshots" / f"iteration-{int(best['iteration']):04d}.safetensors")
    for key, value in snapshot.actor.state_dict().items():
        torch.testing.assert_close(chosen.actor.state_dict()[key], value, rtol=0, atol=0)
    assert chosen.meta["validation_score"] == pytest.approx(float(best["score"]))
    log = list(csv.DictReader((tmp_path / "straight" / "ppo_log.csv").open()))
    assert all(len(r["variants"].split("+")) == 2 for r in log)


def test_validation_runs_trainees_that_step_one_by_one(tmp_path):
    """The CNN steps through SequentialRuns (loss.backward), which needs autograd: validation must not switch it off."""
    import dataclasses

    from learned_lr.tasks.groups import SEQUENTIAL_ON_CPU
    from learned_lr.training.validation import run_score, validation_scores

    assert "mnist-cnn" in SEQUENTIAL_ON_CPU
    task = TaskConfig(task="mnist-cnn", width=4, batch_size=16, val_batch_size=16, optimizer="sgd")
    variants = [{"name": "cnn-0", "task": dataclasses.asdict(task), "steps": 12, "oracle_shape": "cosine", "oracle_lr": 0.05}]
    actor = load_policy(save_small_policy(tmp_path / "p.safetensors", decision_interval=4, meta={"trained_by": "test"})).actor
    scores = validation_scores(actor, variants)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert np.array_equal(scores, validation_scores(actor, variants))  # deterministic actor, fixed seeds
    assert len(set(scores.tolist())) == 3  # x0.1, x1, x10 end apart
    assert run_score(np.array([2.0, 1.0]), 1, 2, diverged=False) == pytest.approx(np.log(2.0))  # stopped early: no progress

"""Loss-driven baselines, the tuned-LR oracle, and the robustness command on a tiny setting."""

import json
import math

import numpy as np
import pytest
import torch

from learned_lr.experiments.baselines import baseline_control, make_baseline
from learned_lr.experiments.config import RobustnessConfig
from learned_lr.experiments.robustness import CHANCE_LOSS, Contender, markdown_report, run_or_load, summarize
from learned_lr.observation import RunHistory
from learned_lr.settings import ConfigError, ControlConfig, RewardConfig
from learned_lr.tasks.config import TaskConfig
from learned_lr.training.experts import expert_schedule
from learned_lr.training.rollout import ScheduleController


def _history_with(train: list[float], val: list[float]) -> RunHistory:
    history = RunHistory(len(train) + 1, base_lr=0.1, window=16)
    for t, (a, b) in enumerate(zip(train, val)):
        history.record(0.1, a, b, [1.0])
    return history


def test_plateau_halves_the_lr_when_the_val_loss_stalls():
    control = baseline_control(ControlConfig())
    assert control.decision_interval == 1
    controller = make_baseline("plateau", control)
    steps = 600
    flat = [1.0] * steps  # no improvement after the first interval
    history = _history_with(flat, flat)
    factors = [math.exp(controller.decide([history], step, np.ones(1, bool))[0]) for step in range(steps)]
    assert factors[0] == 1.0 and factors[99] == 1.0
    # evaluations at 100 (best), 200, 300, 400 (3 bad > patience 2) -> halved at step 400
    assert factors[399] == 1.0 and factors[400] == pytest.approx(0.5)


def test_greedy_raises_the_lr_while_the_loss_keeps_falling_and_stays_in_bounds():
    pytest.importorskip("transformers.optimization", exc_type=ImportError)
    control = baseline_control(ControlConfig(max_lr_factor=4.0))
    controller = make_baseline("greedy", control)
    steps = 400
    falling = list(np.linspace(2.0, 0.1, steps))
    history = _history_with(falling, falling)
    factors = np.exp([controller.decide([history], step, np.ones(1, bool))[0] for step in range(steps)])
    assert factors[-1] > 1.5 and factors.max() <= 4.0 + 1e-9


def test_oracle_labels_correct_a_mistuned_base_lr_and_execution_mixes():
    control = ControlConfig(decision_interval=8)
    schedule = expert_schedule("cosine")
    oracle = ScheduleController(schedule, control, target_peak_lr=0.1, seed=0)
    plain = ScheduleController(schedule, control)
    # base 0.025: the oracle wants 4x the schedule (the bound); base 0.4: a quarter of it
    assert oracle.clean_action(100, 1, base_lr=0.025) == pytest.approx(plain.clean_action(100, 1) + math.log(4.0))
    assert oracle.clean_action(100, 1, base_lr=0.4) == pytest.approx(plain.clean_action(100, 1) + math.log(0.25))
    histories = [RunHistory(100, base_lr=b, window=16) for b in (0.025, 0.4)]
    executed = oracle.decide(histories, 0, np.ones(2, bool))
    for h, a in zip(histories, executed):
        lo, hi = sorted([plain.clean_action(100, 0), oracle.clean_action(100, 0, h.base_lr)])
        assert lo - 1e-9 <= a <= hi + 1e-9
    with pytest.raises(ValueError, match="base LR"):
        oracle.clean_action(100, 1)


def test_robustness_config_rejects_bad_input():
    with pytest.raises(ConfigError, match="--core-lrs"):
        RobustnessConfig(lrs="0.1,0.2", core_lrs="0.05")
    with pytest.raises(ConfigError, match="--baselines"):
        RobustnessConfig(baselines="cosine")
    with pytest.raises(ConfigError, match="--lrs"):
        RobustnessConfig(lrs="0.1,-1")


def test_robustness_runs_scores_divergence_and_resumes(tmp_path, mnist, monkeypatch):
    task = TaskConfig()
    lrs = [0.05, 50.0]  # 50 diverges
    cosine = run_or_load(Contender("cosine", "schedule", "cosine"), task, 40, lrs, 2, tmp_path, mnist, progress=False)
    plateau = run_or_load(Contender("plateau", "baseline", "plateau"), task, 40, lrs, 2, tmp_path, mnist, progress=False)
    runs = {r["base_lr"]: r for r in cosine["runs"]}
    assert not runs[0.05]["diverged"] and runs[0.05]["test_loss"] < 1.0
    assert runs[50.0]["diverged"] and runs[50.0]["test_loss"] == CHANCE_LOSS
    assert len(cosine["curves"]["0.05"]["lr"]) == 40

    # a rerun with the same setting loads the saved result instead of training
    import learned_lr.experiments.robustness as robustness

    monkeypatch.setattr(robustness, "run_scheduler", lambda *a, **k: pytest.fail("should have been loaded"))
    again = run_or_load(Contender("cosine", "schedule", "cosine"), task, 40, lrs, 2, tmp_path, mnist, progress=False)
    assert again["runs"] == json.loads(json.dumps(cosine["runs"]))

    summary = summarize([cosine, plateau], core_lrs=lrs)
    rows = {r["label"]: r for r in summary["rows"]}
    assert rows["cosine"]["worst_core_lr"] == 50.0 and rows["cosine"]["per_lr"]["50"]["diverged"] == 2
    report = markdown_report(summary, "tiny")
    assert "| cosine |" in report and "(2d)" in report and "plateau: worst case" in report


def test_robust_train_pipeline_end_to_end_tiny(tmp_path):
    from learned_lr.experiments.config import RobustTrainConfig
    from learned_lr.experiments.pipeline import run_robust_training
    from learned_lr.policy import load_policy
    from learned_lr.training.bc import Demonstrations

    config = RobustTrainConfig(expert="cosine", demo_total_steps="40", demo_runs=2, bc_epochs=1, dagger_rounds=0, ppo_iterations=1,
                               ppo_runs=2, ppo_total_steps="40", work=str(tmp_path))
    paths = run_robust_training(config)
    assert load_policy(paths["bc-oracle"]).control_config.decision_interval == 16
    assert load_policy(paths["ppo"]).meta["trained_by"] == "ppo"
    demos = Demonstrations.load(tmp_path / "demos")
    for index, run in enumerate(demos.runs):  # labels: cosine at peak 0.1, whatever the base LR
        first_label = float(demos.labels[demos.decision_run == index][0])
        assert first_label == pytest.approx(min(math.log(0.1 / run["peak_lr"]), math.log(4.0)), abs=1e-5)


def test_robust_train_dagger_labels_the_policys_own_states(tmp_path):
    import torch

    from learned_lr.experiments.config import RobustTrainConfig
    from learned_lr.experiments.pipeline import run_robust_training
    from learned_lr.features import window_from_features
    from learned_lr.policy import load_policy
    from learned_lr.training.bc import Demonstrations

    config = RobustTrainConfig(expert="cosine", demo_total_steps="40", demo_runs=2, bc_epochs=1, dagger_rounds=2, dagger_runs=3,
                               ppo_iterations=0, work=str(tmp_path))
    paths = run_robust_training(config)
    assert set(paths) == {"bc-oracle", "dagger-1", "dagger-2"}
    assert load_policy(paths["dagger-2"]).meta["demonstrations"]["runs"] == 2 + 3 + 3  # oracle runs + two rounds
    states = Demonstrations.load(tmp_path / "dagger" / "round-1" / "states")
    assert len(states.runs) == 3 and all(10_000 <= run["seed"] < 50_000 for run in states.runs)
    actor = load_policy(paths["bc-oracle"]).actor
    for index, run in enumerate(states.runs):
        # labelled by the oracle (cosine at peak 0.1, whatever the base LR) ...
        first_label = float(states.labels[states.decision_run == index][0])
        assert first_label == pytest.approx(min(math.log(0.1 / run["peak_lr"]), math.log(4.0)), abs=1e-5)
        # ... but run by the round's policy: the first executed log factor is its action plus noise (std 0.2)
        window, mask, context = (torch.from_numpy(a)[None] for a in window_from_features(states.features[index], 0, states.control.window, 40))
        with torch.no_grad():
            mean, _ = actor(window, mask, context)
        assert abs(float(states.features[index][0, 1]) - float(mean[0])) < 0.8
    # a rerun finds every round done and retrains nothing
    before = paths["dagger-2"].stat().st_mtime_ns
    assert run_robust_training(config)["dagger-2"].stat().st_mtime_ns == before
    # another recipe in the same folder is refused before it mixes demonstrations
    import dataclasses

    with pytest.raises(ConfigError, match="expert: 'cosine' -> 'linear-warmup'"):
        run_robust_training(dataclasses.replace(config, expert="linear-warmup"))


def test_merge_demonstrations_concatenates_and_refuses_mismatched_control(tmp_path):
    import dataclasses

    import torch

    from learned_lr.checkpoint import save_checkpoint
    from learned_lr.training.bc import Demonstrations
    from learned_lr.training.dagger import merge_demonstrations

    def write(folder, control, runs):
        tensors = {}
        for i in range(runs):
            tensors.update({f"{i}.features": torch.zeros(20, 8), f"{i}.decision_steps": torch.tensor([0, 1]),
                            f"{i}.labels": torch.full((2,), float(i)), f"{i}.returns": torch.zeros(2)})
        meta = {"control": dataclasses.asdict(control), "runs": [{"seed": i, "peak_lr": 0.1, "expert": "cosine", "total_steps": 20} for i in range(runs)]}
        save_checkpoint(tmp_path / folder / "demos.safetensors", tensors, meta, kind="demonstrations")

    write("a", ControlConfig(), 2)
    write("b", ControlConfig(), 3)
    write("c", ControlConfig(decision_interval=16), 1)
    merge_demonstrations([tmp_path / "a", tmp_path / "b"], tmp_path / "ab" / "demos.safetensors")
    merged = Demonstrations.load(tmp_path / "ab")
    assert len(merged.runs) == 5 and merged.labels.tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="control settings"):
        merge_demonstrations([tmp_path / "a", tmp_path / "c"], tmp_path / "ac" / "demos.safetensors")
    with pytest.raises(ValueError, match="nothing to merge"):
        merge_demonstrations([], tmp_path / "none" / "demos.safetensors")


def test_robustness_reruns_a_policy_retrained_in_place_and_other_seeds_not_a_rewritten_file(tmp_path, mnist, monkeypatch):
    import shutil

    import learned_lr.experiments.robustness as robustness
    from learned_lr.bundled import BUNDLED_POLICY

    policy = tmp_path / "policy.safetensors"
    shutil.copy(BUNDLED_POLICY, policy)
    contender = Contender("mine", "policy", str(policy))
    calls = []
    real = robustness.run_scheduler

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(robustness, "run_scheduler", counting)
    first = run_or_load(contender, TaskConfig(), 20, [0.1], 1, tmp_path, mnist, progress=False)
    run_or_load(contender, TaskConfig(), 20, [0.1], 1, tmp_path, mnist, progress=False)
    assert len(calls) == 1 and first["runs"][0]["seed"] == 100_000
    validation = run_or_load(contender, TaskConfig(), 20, [0.1], 1, tmp_path, mnist, progress=False, first_seed=90_000)
    assert len(calls) == 2 and validation["runs"][0]["seed"] == 90_000
    policy.write_bytes(policy.read_bytes())  # same bytes: still cached
    run_or_load(contender, TaskConfig(), 20, [0.1], 1, tmp_path, mnist, progress=False, first_seed=90_000)
    assert len(calls) == 2
    from learned_lr.policy import load_policy, save_policy

    loaded = load_policy(policy)
    before = policy.read_bytes()
    save_policy(policy, loaded.actor, loaded.critic, {**loaded.meta, "produced_by": "rewritten"})  # other bytes, same decisions
    assert policy.read_bytes() != before
    run_or_load(contender, TaskConfig(), 20, [0.1], 1, tmp_path, mnist, progress=False, first_seed=90_000)
    assert len(calls) == 2
    with torch.no_grad():
        next(loaded.actor.parameters()).add_(0.01)  # "retrained": other weights at the same path
    save_policy(policy, loaded.actor, loaded.critic, loaded.meta)
    run_or_load(contender, TaskConfig(), 20, [0.1], 1, tmp_path, mnist, progress=False, first_seed=90_000)
    assert len(calls) == 3


def test_a_policy_rollout_goes_on_when_its_first_run_diverges(mnist):
    """Run 0 blows up at a huge LR while run 1 trains on: the rollout's clock follows a live run (it crashed before)."""
    from learned_lr.bundled import BUNDLED_POLICY
    from learned_lr.policy import load_policy
    from learned_lr.tasks.batched import SequentialRuns
    from learned_lr.training.rollout import PolicyController, rollout

    policy = load_policy(BUNDLED_POLICY)
    group = SequentialRuns(TaskConfig(hidden=32, batch_size=32), [0, 1], mnist)
    first, second = rollout(group, PolicyController(policy.actor), 120, [500.0, 0.05], policy.control_config, RewardConfig())
    assert first.diverged and first.history.steps < 120
    assert not second.diverged and second.history.steps == 120 and second.test_loss < 1.0

"""The structure gate (`learned-lr bundle --structural P --structural-min-layers N`): deep models and models with a layer
whose first gradient is zero get P's long-run actor(s), others the bundle's own, exactly; read at the first step."""

import math

import numpy as np
import pytest
import torch
from conftest import mse_steps, save_small_policy

from learned_lr.bundle import bundle_policy
from learned_lr.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from learned_lr.cli import main
from learned_lr.control import clip_action
from learned_lr.gates import LengthGatedActor, StructureGatedActor, actor_for_run
from learned_lr.observation import RunHistory
from learned_lr.policy import load_policy, policy_sha256, save_policy
from learned_lr.scheduler import LearnedLR
from learned_lr.settings import ConfigError


def _policies(tmp_path) -> tuple:
    """(plain, structural, short, gated): three small random actors (they decide differently) and the gate of the first
    two at 4 layers, with the third on runs under 100 steps."""
    plain, structural, short = (save_small_policy(tmp_path / f"p{seed}.safetensors", window=64, decision_interval=4, seed=seed) for seed in range(3))
    gated = tmp_path / "gated.safetensors"
    assert main(["bundle", "--policy", str(plain), "--short-runs", str(short), "--short-run-steps", "100", "--structural", str(structural),
                 "--structural-min-layers", "4", "--destination", str(gated)]) == 0
    return plain, structural, short, gated


def _model(hidden_layers: int, zero_head: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    layers = []
    for index in range(hidden_layers):
        layers += [torch.nn.Linear(3 if index == 0 else 6, 6), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(6, 1))
    if zero_head:
        torch.nn.init.zeros_(model[-1].weight), torch.nn.init.zeros_(model[-1].bias)
    return model


def _run(policy, hidden_layers: int, zero_head: bool = False, total_steps: int = 200, steps: int = 24) -> LearnedLR:
    model = _model(hidden_layers, zero_head)
    x, y = torch.randn(16, 3, generator=torch.Generator().manual_seed(1)), torch.randn(16, 1, generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = LearnedLR(optimizer, total_steps=total_steps, policy=policy, model=model)
    mse_steps(model, optimizer, scheduler, x, y, steps)
    return scheduler


def _asked(scheduler: LearnedLR) -> list[float]:
    return [d["asked_factor"] for d in scheduler.decisions()]


def test_a_model_that_is_neither_deep_nor_zero_started_gets_the_plain_side_lr_for_lr(tmp_path):
    plain, structural, _, gated = _policies(tmp_path)
    scheduler = _run(gated, hidden_layers=2)  # 3 layers < 4
    assert scheduler.history.structure == (3, 0)
    assert _asked(scheduler) == _asked(_run(plain, hidden_layers=2))
    assert _asked(scheduler) != _asked(_run(structural, hidden_layers=2))  # the sides differ, so the gate matters


@pytest.mark.parametrize("hidden_layers, zero_head, structure", [(3, False, (4, 0)), (1, True, (2, 1))])
def test_a_deep_or_zero_started_model_gets_the_structural_side_from_its_first_step(tmp_path, hidden_layers, zero_head, structure):
    """Each decision after the first is the structural actor's on what it read; the one before any step is the plain one's."""
    plain, structural, _, gated = _policies(tmp_path)
    scheduler = _run(gated, hidden_layers, zero_head)
    assert scheduler.history.structure == structure
    asked = _asked(scheduler)
    assert asked[0] == _asked(_run(plain, hidden_layers, zero_head))[0]
    bounds = scheduler.policy.control_config.log_bounds
    sides = {name: load_policy(path).actor for name, path in (("plain", plain), ("structural", structural))}
    for decision, factor in zip(scheduler.decisions()[1:], asked[1:]):
        window, mask, context = (torch.from_numpy(a)[None] for a in scheduler.history.observation(decision["step"]))
        with torch.no_grad():
            chosen, other = (math.exp(clip_action(float(sides[s](window, mask, context)[0]), bounds)) for s in ("structural", "plain"))
        assert factor == pytest.approx(chosen, rel=1e-4) and abs(math.log(chosen / other)) > 1e-3


def test_short_runs_keep_the_short_side_whatever_the_model(tmp_path):
    _, _, short, gated = _policies(tmp_path)
    assert _asked(_run(gated, hidden_layers=3, total_steps=99)) == _asked(_run(short, hidden_layers=3, total_steps=99))


def test_a_rollout_batch_of_mixed_models_gives_each_run_its_sides_decision(tmp_path):
    from learned_lr.training.rollout import PolicyController

    plain, structural, _, gated = _policies(tmp_path)
    histories = []
    for norms in ((1.0, 2.0, 3.0), (0.0, 1.0), (1.0,) * 5):  # plain, zero-start, deep
        history = RunHistory(200, 0.1, 64)
        for step in range(8):
            history.record(0.1, 1.0 / (step + 1), 1.0 / (step + 1), [n * (1 + step) for n in norms])
        histories.append(history)
    decided = PolicyController(load_policy(gated).actor).decide(histories, 8, np.ones(3, dtype=bool))
    window, mask, context = (torch.from_numpy(np.stack(a)) for a in zip(*(h.observation(8) for h in histories)))
    with torch.no_grad():
        plain_mean, structural_mean = (load_policy(p).actor(window, mask, context)[0].double().numpy() for p in (plain, structural))
    assert decided[0] == plain_mean[0] and decided[1] == structural_mean[1] and decided[2] == structural_mean[2]
    assert RunHistory(200, 0.1, 64).structure is None


def test_the_structure_survives_a_saved_history_and_an_older_state_reads_it_from_its_layers():
    history = RunHistory(100, 0.1, 64)
    history.record(0.1, 1.0, 1.0, [0.0, 0.5, 0.0])
    state = history.state()
    again = RunHistory(100, 0.1, 64)
    again.load_state(state)
    assert history.structure == again.structure == (3, 2)
    older = RunHistory(100, 0.1, 64)
    older.load_state({k: v for k, v in state.items() if k != "structure"})
    assert older.structure == (3, 0)


def test_a_gated_bundle_saves_loads_hashes_and_refuses_what_it_cannot_do(tmp_path, capsys):
    plain, structural, short, gated = _policies(tmp_path)
    assert "models of 4 layers or more" in capsys.readouterr().out
    loaded = load_policy(gated)
    assert isinstance(loaded.actor, LengthGatedActor) and isinstance(loaded.actor.main, StructureGatedActor)
    assert loaded.meta["structure_min_layers"] == 4 and loaded.meta["structural_policy"] == str(structural)
    assert actor_for_run(loaded.actor, 200, (4, 0)) is loaded.actor.main.structural and actor_for_run(loaded.actor, 200) is loaded.actor.main.plain
    resaved = tmp_path / "resaved.safetensors"
    save_policy(resaved, loaded.actor, loaded.critic)
    assert policy_sha256(load_policy(resaved)) == policy_sha256(loaded)
    ungated = tmp_path / "ungated.safetensors"
    bundle_policy(plain, ungated, {}, short_runs=(short, 100))
    assert policy_sha256(load_policy(ungated)) != policy_sha256(loaded)  # a benchmark cell is never reused across them
    other_threshold = tmp_path / "five.safetensors"
    bundle_policy(gated, other_threshold, {}, structural=(structural, 5))  # a new structural side replaces the old one
    assert policy_sha256(load_policy(other_threshold)) != policy_sha256(loaded) and load_policy(other_threshold).actor.main.min_layers == 5
    with pytest.raises(TypeError, match="actor_for_run"):
        loaded.actor.main(*(torch.zeros(1, 64, 8), torch.zeros(1, 64), torch.zeros(1, 3)))
    with pytest.raises(CheckpointError, match="structure-gated"):
        bundle_policy(gated, tmp_path / "x.safetensors", {}, ensemble_with=[plain])
    with pytest.raises(CheckpointError, match="structure-gated"):
        bundle_policy(plain, tmp_path / "x.safetensors", {}, structural=(gated, 4))
    with pytest.raises(ValueError, match=">= 2"):
        bundle_policy(plain, tmp_path / "x.safetensors", {}, structural=(structural, 1))
    assert main(["bundle", "--policy", str(plain), "--structural", str(structural), "--destination", str(tmp_path / "y.safetensors")]) == 2
    assert "together" in capsys.readouterr().err
    tensors, meta = load_checkpoint(gated, kind="policy")
    save_checkpoint(tmp_path / "bad.safetensors", tensors, {**meta, "structure_min_layers": "many"}, kind="policy")
    with pytest.raises(CheckpointError, match="structure_min_layers"):
        load_policy(tmp_path / "bad.safetensors")
    from learned_lr.training.config import PPOConfig
    from learned_lr.training.ppo import _initial_networks

    with pytest.raises(ConfigError, match="structure gate"):
        _initial_networks(PPOConfig(init=str(gated), out=str(tmp_path / "ppo")))


def test_explain_says_which_side_of_the_structure_gate_decides(tmp_path):
    from learned_lr.experiments.explain import deciders

    actor = load_policy(_policies(tmp_path)[3]).actor
    assert deciders(actor, 200, (5, 0)) == "one actor (the policy's part for runs of or over 100 steps) (its side for models of 4 layers or more, or with a layer whose first gradient is zero)"
    assert deciders(actor, 200, (2, 0)).endswith("(its side for models under 4 layers whose first gradients are all non-zero)")
    assert deciders(actor, 50, (5, 0)) == "one actor (the policy's part for runs under 100 steps)"


def test_a_gate_by_the_layer_count_alone_leaves_a_shallow_zero_started_model_to_the_plain_side(tmp_path, capsys):
    plain, structural, short, gated = _policies(tmp_path)
    capsys.readouterr()
    depth_only = tmp_path / "depth-only.safetensors"
    assert main(["bundle", "--policy", str(plain), "--short-runs", str(short), "--short-run-steps", "100", "--structural", str(structural),
                 "--structural-min-layers", "4", "--structural-zero-start", "0", "--destination", str(depth_only)]) == 0
    assert "starting with a zero gradient" not in capsys.readouterr().out
    loaded = load_policy(depth_only)
    assert loaded.meta["structure_by_zero_start"] is False and policy_sha256(loaded) != policy_sha256(load_policy(gated))
    assert _asked(_run(depth_only, hidden_layers=1, zero_head=True)) == _asked(_run(plain, hidden_layers=1, zero_head=True))
    assert _asked(_run(depth_only, hidden_layers=3))[1:] == _asked(_run(gated, hidden_layers=3))[1:]  # (4 layers: both gates' structural side)
    from learned_lr.experiments.explain import deciders

    assert deciders(loaded.actor, 200, (2, 1)).endswith("(its side for models under 4 layers)")
    tensors, meta = load_checkpoint(depth_only, kind="policy")
    save_checkpoint(tmp_path / "bad.safetensors", tensors, {**meta, "structure_by_zero_start": "no"}, kind="policy")
    with pytest.raises(CheckpointError, match="structure_by_zero_start"):
        load_policy(tmp_path / "bad.safetensors")


def test_adapt_llm_takes_the_defaults_short_side_and_refuses_a_run_length_the_structure_gate_decides(tmp_path, monkeypatch):
    """`learned-lr adapt-llm` fine-tunes the actor of its runs' length: from the default (structure-gated on runs of 300
    steps or more since the thirty-third session) its 80-step LoRA runs' short side is adaptable; runs of 300 steps would
    be decided by the gate, whose two sides cannot be adapted as one actor: refused before any LoRA run."""
    from learned_lr.bundled import BUNDLED_POLICY
    from learned_lr.experiments.llm.adapt import adapt_policy
    from learned_lr.experiments.llm.config import AdaptLLMConfig, LoRASettings
    from learned_lr.gates import structure_gated

    default = load_policy(BUNDLED_POLICY).actor
    assert structure_gated(default) is structure_gated(default, 300) is not None and structure_gated(default, 299) is None
    assert actor_for_run(default, 80) is default.short
    config = AdaptLLMConfig(settings=LoRASettings(steps=300), teacher="linear", out=str(tmp_path / "adapt"))
    with pytest.raises(ConfigError, match="runs of 300 steps are scheduled by a structure gate"):
        adapt_policy(config, progress=False)
    assert not (tmp_path / "adapt").exists()  # refused before any teacher run
    from learned_lr.experiments.llm import adapt

    class TeacherRunsReached(Exception):
        pass

    def teacher_runs(*args, **kwargs):
        raise TeacherRunsReached

    monkeypatch.setattr(adapt, "teacher_runs", teacher_runs)
    with pytest.raises(TeacherRunsReached):  # 80 steps: past the check, on to the LoRA runs (not made here)
        adapt_policy(AdaptLLMConfig(settings=LoRASettings(steps=80), teacher="linear", out=str(tmp_path / "adapt")), progress=False)

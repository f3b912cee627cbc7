"""`learned-lr distill`: stored states relabelled with a teacher's actions, and one actor cloned from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import save_small_policy

from learned_lr.bundle import bundle_policy
from learned_lr.cli import main
from learned_lr.policy import load_policy
from learned_lr.settings import ConfigError, ControlConfig
from learned_lr.tasks.config import TaskConfig
from learned_lr.training.bc import Demonstrations, collect_demonstrations
from learned_lr.training.config import CollectConfig
from learned_lr.training.distill import relabel_with_teacher

CONTROL = ControlConfig(window=32, decision_interval=4)


@pytest.fixture(scope="module")
def demos(tmp_path_factory, mnist):
    out = tmp_path_factory.mktemp("demos")
    collect_demonstrations(CollectConfig(task=TaskConfig(hidden=32), control=CONTROL, experts="cosine,linear-warmup", total_steps="40,64",
                                         runs_per_setting=2, out=str(out)), progress=False)
    return out


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    members = [save_small_policy(folder / f"m{seed}.safetensors", window=32, decision_interval=4, seed=seed) for seed in range(2)]
    assert main(["bundle", "--policy", str(members[0]), "--ensemble-with", str(members[1]), "--destination", str(folder / "e.safetensors")]) == 0
    return folder / "e.safetensors"


def _student_mean(policy, demos: Demonstrations) -> np.ndarray:
    window, mask, context = demos.batch(np.arange(len(demos.labels)))[:3]
    with torch.no_grad():
        return policy.actor(window, mask, context)[0].numpy()


def test_relabelled_states_carry_the_teachers_actions_and_nothing_else_changes(demos, teacher, tmp_path):
    ensemble = load_policy(teacher)
    target = relabel_with_teacher(ensemble, demos, tmp_path / "data")
    before, after = Demonstrations.load(demos), Demonstrations.load(tmp_path / "data")
    assert np.allclose(after.labels, _student_mean(ensemble, before), atol=1e-6)
    assert not np.allclose(after.labels, before.labels, atol=1e-2)  # the oracle's labels are gone
    assert all(np.array_equal(a, b) for a, b in zip(after.features, before.features))
    assert np.array_equal(after.returns, before.returns) and np.array_equal(after.decision_step, before.decision_step)
    stamp = target.stat().st_mtime_ns
    assert relabel_with_teacher(ensemble, demos, tmp_path / "data") == target and target.stat().st_mtime_ns == stamp  # reused
    other = load_policy(save_small_policy(tmp_path / "other.safetensors", window=32, decision_interval=4, seed=7))
    relabel_with_teacher(other, demos, tmp_path / "data")  # another teacher: written again, with its labels
    assert np.allclose(Demonstrations.load(tmp_path / "data").labels, _student_mean(other, before), atol=1e-6)


def test_a_length_gated_teacher_labels_each_state_with_the_actor_for_its_runs_length(demos, teacher, tmp_path):
    """The demonstrations hold runs of 40 and 64 steps; gated at 50, the first get the short actor's labels, the rest the ensemble's."""
    short = save_small_policy(tmp_path / "short.safetensors", window=32, decision_interval=4, seed=9)
    gated_path = tmp_path / "gated.safetensors"
    members = [str(teacher.parent / f"m{seed}.safetensors") for seed in range(2)]
    assert main(["bundle", "--policy", members[0], "--ensemble-with", members[1], "--short-runs", str(short), "--short-run-steps", "50",
                 "--destination", str(gated_path)]) == 0
    relabel_with_teacher(load_policy(gated_path), demos, tmp_path / "data")
    before, after = Demonstrations.load(demos), Demonstrations.load(tmp_path / "data")
    in_short_run = np.array([before.runs[r]["total_steps"] < 50 for r in before.decision_run])
    assert in_short_run.any() and not in_short_run.all()
    expected = np.where(in_short_run, _student_mean(load_policy(short), before), _student_mean(load_policy(teacher), before))
    assert np.allclose(after.labels, expected, atol=1e-6)


def test_the_distilled_actor_learns_the_teachers_decisions_not_the_oracles(demos, teacher, tmp_path, capsys):
    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(teacher), "--demos", str(demos), "--epochs", "40", "--out", str(out)]) == 0
    student = load_policy(out / "policy.safetensors")
    assert student.policy_config == load_policy(teacher).policy_config and "cloned from" in capsys.readouterr().out
    oracle, taught = Demonstrations.load(demos), Demonstrations.load(out / "data")
    predicted = _student_mean(student, oracle)
    error_to_teacher = np.abs(predicted - taught.labels).mean()
    assert error_to_teacher < 0.25 * np.abs(predicted - oracle.labels).mean()


def test_a_teacher_that_reads_other_inputs_is_refused(demos, tmp_path, capsys):
    wide = load_policy(save_small_policy(tmp_path / "wide.safetensors", window=64, decision_interval=4))
    with pytest.raises(ConfigError, match="window"):
        relabel_with_teacher(wide, demos, tmp_path / "data")
    assert main(["distill", "--teacher", "", "--out", str(tmp_path / "o")]) == 2 and "teacher" in capsys.readouterr().err


def test_a_structure_gated_teacher_is_refused_the_states_do_not_record_the_models_layers(demos, teacher, tmp_path):
    other = save_small_policy(tmp_path / "other.safetensors", window=32, decision_interval=4, seed=8)
    gated = tmp_path / "gated.safetensors"
    bundle_policy(teacher, gated, {}, structural=(other, 6))
    with pytest.raises(ConfigError, match="structure-gated teacher"):
        relabel_with_teacher(load_policy(gated), demos, tmp_path / "data")

import dataclasses
import json

import numpy as np
import pytest
import torch

from learned_lr.checkpoint import load_checkpoint
from learned_lr.cli import main
from learned_lr.experiments.bc_report import log_lr_error
from learned_lr.policy import load_policy
from learned_lr.settings import ControlConfig, PolicyConfig, RewardConfig
from learned_lr.tasks.batched import BatchedMLPRuns, SequentialRuns
from learned_lr.tasks.config import TaskConfig
from learned_lr.training.bc import Demonstrations, collect_demonstrations, discounted_returns, train_bc
from learned_lr.training.config import BCConfig, CollectConfig
from learned_lr.training.experts import expert_schedule
from learned_lr.training.rollout import ScheduleController, rollout, rollout_exact_schedule

CONTROL = ControlConfig(window=32, decision_interval=4)
SMALL_POLICY = PolicyConfig(patch=8, d_model=16, layers=1, heads=2)


@pytest.fixture(scope="module")
def demos(tmp_path_factory, mnist):
    out = tmp_path_factory.mktemp("demos")
    config = CollectConfig(task=TaskConfig(hidden=32), control=CONTROL, experts="cosine,linear-warmup", total_steps="40,64", runs_per_setting=2, out=str(out))
    collect_demonstrations(config, progress=False)
    return out


def test_demonstrations_hold_clean_expert_labels_and_returns(demos):
    loaded = Demonstrations.load(demos, ["cosine"])
    assert len(loaded.runs) == 4 and all(run["expert"] == "cosine" for run in loaded.runs)
    controller = ScheduleController(expert_schedule("cosine"), CONTROL)
    for i in range(len(loaded.labels)):
        run = loaded.runs[loaded.decision_run[i]]
        assert loaded.labels[i] == pytest.approx(controller.clean_action(run["total_steps"], int(loaded.decision_step[i])), abs=1e-6)
    window, mask, context, label, ret = loaded.batch(np.arange(5))
    assert window.shape == (5, 32, 8) and mask[0].sum() == 0 and context[0, 0] == 1.0
    assert torch.isfinite(ret).all() and bool((ret < 0).all())


def test_discounted_returns():
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 2.0, 4.0]), 0.5), [1 + 1 + 1, 2 + 2, 4])


def test_bc_resume_gives_the_same_weights_as_one_run(demos, tmp_path):
    base = dict(policy=SMALL_POLICY, demos=str(demos), experts="cosine", batch_size=16, seed=3)
    straight = train_bc(BCConfig(**base, epochs=3, out=str(tmp_path / "straight")), progress=False)
    assert train_bc(BCConfig(**base, epochs=3, out=str(tmp_path / "resumed")), progress=False, max_epochs_this_call=1) is None  # stopped after 1
    resumed = train_bc(BCConfig(**base, epochs=3, out=str(tmp_path / "resumed")), progress=False)
    a, _ = load_checkpoint(straight)
    b, _ = load_checkpoint(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    log = (tmp_path / "resumed" / "bc_log.csv").read_text().splitlines()
    assert len(log) == 4  # header + 3 epochs
    # A state of a 2-epoch run is not the start of a 3-epoch one (its cosine decays over 2): a rerun
    # with --epochs 3 trains from the start, ending as the straight 3-epoch run, labelled 3 epochs.
    assert train_bc(BCConfig(**base, epochs=2, out=str(tmp_path / "other")), progress=False, max_epochs_this_call=1) is None
    other = train_bc(BCConfig(**base, epochs=3, out=str(tmp_path / "other")), progress=False)
    c, meta = load_checkpoint(other)
    for key in a:
        torch.testing.assert_close(a[key], c[key], rtol=0, atol=0)
    assert meta["bc_config"]["epochs"] == 3
    assert len((tmp_path / "other" / "bc_log.csv").read_text().splitlines()) == 4


def test_bc_learns_the_expert_action(demos, tmp_path):
    path = train_bc(BCConfig(policy=SMALL_POLICY, demos=str(demos), experts="cosine", epochs=25, batch_size=16, learning_rate=3e-3, val_fraction=0.0, out=str(tmp_path / "bc")), progress=False)
    policy = load_policy(path)
    data = Demonstrations.load(demos, ["cosine"])
    window, mask, context, label, _ = data.batch(np.arange(len(data.labels)))
    with torch.no_grad():
        mean, std = policy.actor(window, mask, context)
    spread_of_labels = float((label - label.mean()).abs().mean())
    assert float((mean - label).abs().mean()) < 0.35 * spread_of_labels
    assert float(std.min()) >= SMALL_POLICY.min_std - 1e-6
    assert policy.meta["experts"] == ["cosine"]


def test_ramped_expert_follows_the_exact_schedule_and_batched_equals_sequential(mnist):
    task = TaskConfig(hidden=32)
    control = ControlConfig(window=64, decision_interval=8)
    controller = ScheduleController(expert_schedule("polynomial"), control)
    batched = rollout(BatchedMLPRuns(task, [5, 6], mnist), controller, 200, [0.1, 0.05], control, RewardConfig())
    sequential = rollout(SequentialRuns(task, [5, 6], mnist), controller, 200, [0.1, 0.05], control, RewardConfig())
    exact = rollout_exact_schedule(BatchedMLPRuns(task, [5, 6], mnist), expert_schedule("polynomial"), 200, [0.1, 0.05], control)
    factors = expert_schedule("polynomial").factors(200)
    for b, s, e in zip(batched, sequential, exact):
        assert log_lr_error(b.lr_factors, factors, control.log_bounds) < 0.02
        np.testing.assert_allclose(b.lr_factors, s.lr_factors)
        np.testing.assert_allclose(b.rewards, s.rewards, rtol=1e-3, atol=1e-4)
        assert abs(b.test_loss - e.test_loss) / e.test_loss < 0.1
        assert len(b.rewards) == len(b.decision_steps) == 26  # step 0, then every 8 steps from step 1


def test_imitate_command_writes_figure_and_tables(tmp_path, mnist):
    argv = ["imitate", "--runs-per-setting", "1", "--total-steps", "40", "--epochs", "1", "--mlp-seeds", "1", "--mlp-steps", "40",
            "--resnet-steps", "0", "--patch", "16", "--d-model", "16", "--layers", "1", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "out" / "bc_table.json").read_text())
    policies = {row["policy"] for row in rows}
    assert {"BC cosine", "BC linear-warmup", "BC polynomial", "BC all, on its own"} <= policies
    assert (tmp_path / "out" / "bc_policy_vs_scheduler.png").stat().st_size > 20_000
    assert "| mnist-mlp | BC cosine | cosine |" in (tmp_path / "out" / "bc_table.md").read_text()


def test_collect_reuses_a_part_only_for_the_same_setting(tmp_path, mnist, monkeypatch):
    from learned_lr.checkpoint import load_checkpoint
    from learned_lr.training import bc

    config = CollectConfig(task=TaskConfig(hidden=32), control=CONTROL, experts="cosine", total_steps="40", runs_per_setting=2, out=str(tmp_path))
    collect_demonstrations(config, progress=False)
    part = tmp_path / "parts" / "cosine-40.safetensors"
    first_labels = load_checkpoint(part, kind="demo-part")[0]["0.labels"]

    calls = []
    real_rollout = bc.rollout
    monkeypatch.setattr(bc, "rollout", lambda *a, **k: calls.append(1) or real_rollout(*a, **k))
    collect_demonstrations(config, progress=False)  # the same setting: nothing runs again
    assert calls == []
    noisier = dataclasses.replace(config, action_noise=0.5, target_peak_lr=0.05)
    collect_demonstrations(noisier, progress=False)  # another setting into the same folder: collected again
    assert calls == [1]
    tensors, meta = load_checkpoint(part, kind="demo-part")
    assert meta["setting"]["action_noise"] == 0.5 and not torch.equal(tensors["0.labels"], first_labels)
    _, merged = load_checkpoint(tmp_path / "demos.safetensors")
    assert merged["action_noise"] == 0.5 and merged["target_peak_lr"] == 0.05


def test_a_bc_policy_is_reused_only_for_its_own_settings_and_demonstrations(demos, tmp_path):
    from learned_lr.training.bc import bc_policy_is_current

    config = BCConfig(policy=SMALL_POLICY, demos=str(demos), experts="cosine", epochs=2, out=str(tmp_path / "bc"))
    assert not bc_policy_is_current(config)
    train_bc(config, progress=False)
    assert bc_policy_is_current(config) and bc_policy_is_current(dataclasses.replace(config, resume=False))
    assert not bc_policy_is_current(dataclasses.replace(config, epochs=3))
    assert not bc_policy_is_current(dataclasses.replace(config, seed=1))
    assert not bc_policy_is_current(dataclasses.replace(config, policy=dataclasses.replace(SMALL_POLICY, d_model=32)))


def test_bc_does_not_continue_a_state_trained_on_other_demonstrations(tmp_path, mnist):
    """Issue 21: a BC state is continued only on the demonstrations it was trained on (by SHA-256); on others it starts over."""
    import shutil

    folder = tmp_path / "demos"
    collect = dict(task=TaskConfig(hidden=16), control=CONTROL, experts="cosine", total_steps="24", runs_per_setting=2)
    collect_demonstrations(CollectConfig(**collect, out=str(folder)), progress=False)
    config = BCConfig(policy=SMALL_POLICY, demos=str(folder), experts="cosine", batch_size=16, epochs=3, out=str(tmp_path / "bc"))
    assert train_bc(config, progress=False, max_epochs_this_call=1) is None
    shutil.rmtree(folder)
    collect_demonstrations(CollectConfig(**collect, seed=5, out=str(folder)), progress=False)  # new demonstrations, same folder
    resumed, _ = load_checkpoint(train_bc(config, progress=False))  # trains from the start, as on a fresh folder
    fresh, _ = load_checkpoint(train_bc(dataclasses.replace(config, out=str(tmp_path / "fresh")), progress=False))
    for key in fresh:
        torch.testing.assert_close(resumed[key], fresh[key], rtol=0, atol=0)
    assert len((tmp_path / "bc" / "bc_log.csv").read_text().splitlines()) == 4  # header + 3 epochs, none from the old state


def test_bc_quantile_clones_a_lower_action_where_one_state_was_labelled_several_ways(demos):
    """One state labelled with actions spread over [-1, 1]: the NLL fit goes to their mean (0), the
    pinball fit at q = 0.25 to their lower quartile (-0.5), and its spread to their distance from it."""
    from learned_lr.policy import Actor
    from learned_lr.training.bc import clone_epoch

    window, mask, context, _, _ = Demonstrations.load(demos, ["cosine"]).batch(np.arange(1))
    labels = torch.linspace(-1.0, 1.0, 257)
    state = [t.expand(len(labels), *t.shape[1:]) for t in (window, mask, context)]
    fitted = {}
    for quantile in (0.0, 0.25):
        torch.manual_seed(0)
        actor = Actor(SMALL_POLICY, CONTROL)
        optimizer = torch.optim.Adam(actor.parameters(), lr=3e-3)
        for _ in range(600):  # the spread starts at 0.3 and moves about 3e-3 in log per step
            clone_epoch(actor, optimizer, [(*state, labels)], quantile=quantile)
        with torch.no_grad():
            mean, std = actor(*[t[:1] for t in state])
        fitted[quantile] = (float(mean), float(std))
    assert fitted[0.0][0] == pytest.approx(0.0, abs=0.05)
    assert fitted[0.25][0] == pytest.approx(-0.5, abs=0.05)
    # The spread is fitted around the quantile: the labels' RMS distance from -0.5 (0.76) vs from 0 (0.58).
    assert fitted[0.25][1] == pytest.approx(float((labels + 0.5).square().mean().sqrt()), abs=0.05)
    assert fitted[0.0][1] == pytest.approx(float(labels.square().mean().sqrt()), abs=0.05)


def test_a_policy_saved_before_the_quantile_setting_is_current_only_for_the_nll(demos, tmp_path):
    from learned_lr.checkpoint import save_checkpoint
    from learned_lr.training.bc import bc_policy_is_current

    config = BCConfig(policy=SMALL_POLICY, demos=str(demos), experts="cosine", epochs=1, out=str(tmp_path / "bc"))
    path = train_bc(config, progress=False)
    tensors, meta = load_checkpoint(path)
    del meta["bc_config"]["quantile"]  # as every policy trained before the setting existed
    save_checkpoint(path, tensors, meta, kind="policy")
    assert bc_policy_is_current(config)
    assert not bc_policy_is_current(dataclasses.replace(config, quantile=0.3))
    with pytest.raises(ValueError, match="quantile"):
        BCConfig(quantile=1.0)

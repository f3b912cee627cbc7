"""PPO rollouts on Ray actors: same trajectories as in-process, and a killed worker is replaced."""

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from conftest import save_small_policy  # noqa: E402

from learned_lr.policy import load_policy  # noqa: E402
from learned_lr.settings import ControlConfig, RewardConfig
from learned_lr.tasks.config import TaskConfig  # noqa: E402
from learned_lr.training.backends import LocalBackend, RayBackend, rollout_job_for  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    actor = load_policy(save_small_policy(tmp_path_factory.mktemp("policy") / "p.safetensors", window=32, decision_interval=4)).actor
    job = rollout_job_for(TaskConfig(hidden=32), seeds=[50000, 50001, 50002, 50003, 50004], base_lrs=[0.02, 0.05, 0.1, 0.2, 0.4],
                          total_steps=24, control=actor.control_config, reward=RewardConfig(), controller_seed=7)
    return actor, job


def _assert_same(local, remote):
    assert [e.seed for e in remote] == [e.seed for e in local]
    for a, b in zip(local, remote):
        np.testing.assert_allclose(b.actions, a.actions, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.history.train_loss, a.history.train_loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.rewards, a.rewards, rtol=1e-5, atol=1e-6)
        assert b.diverged == a.diverged


def test_ray_backend_returns_the_in_process_trajectories(ray_cluster, setting, mnist):
    actor, job = setting
    local = LocalBackend(mnist).collect(actor, job)
    backend = RayBackend(workers=2)
    try:
        remote = backend.collect(actor, job)
    finally:
        backend.close()
    assert len(remote) == 5 and len({e.seed for e in remote}) == 5
    _assert_same(local, remote)
    # the policy sampled: actions differ from its deterministic means
    assert np.std([a for e in local for a in e.actions]) > 0


def test_a_worker_killed_mid_iteration_is_replaced_and_its_share_redone(ray_cluster, setting, mnist):
    actor, job = setting
    local = LocalBackend(mnist).collect(actor, job)
    backend = RayBackend(workers=2)
    killed = []

    def kill_first(in_flight_workers):
        if not killed:  # once: the replacement must be allowed to finish
            ray.kill(in_flight_workers[0], no_restart=True)
            killed.append(True)

    backend.on_submitted = kill_first
    try:
        remote = backend.collect(actor, job)
    finally:
        backend.close()
    assert killed and backend.replaced == 1
    assert sorted(e.seed for e in remote) == sorted(job.seeds)  # every run once: none lost, none twice
    _assert_same(local, remote)


def test_shares_cover_every_run_once_with_their_batch_positions():
    job = rollout_job_for(TaskConfig(), list(range(7)), [0.1] * 7, 10, ControlConfig(), RewardConfig(), 0)
    shares = job.shares(3)
    assert [s.seeds for s in shares] == [(0, 1), (2, 3, 4), (5, 6)]
    assert [i for s in shares for i in s.indices] == list(range(7))
    assert all(s.batch_size == 7 for s in shares)
    assert len(job.shares(20)) == 7  # never an empty share
    torch.testing.assert_close(torch.tensor([s.seeds[0] for s in shares]), torch.tensor([s.indices[0] for s in shares]))

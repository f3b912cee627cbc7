"""Where PPO's trainee rollouts run: in this process (the default) or on Ray actors.

A PPO iteration rolls the sampling policy out on N trainee runs (``RolloutJob``). The local
backend runs them together here. The Ray backend splits them into one share per worker; each
worker is a Ray actor that owns its trainee runs for the share, receives the current policy
weights (one ``ray.put`` per iteration), and returns the share's trajectories (``Episode``s).
Every run's trajectory depends only on its seed, its base LR and its position in the full
batch (which decides its action noise, see ``PolicyController``), so the backends return the
same trajectories for the same seed, up to float rounding of batched matrix products.

Faults: if a worker dies while its share is in flight (node lost, process killed, out of
memory), the backend starts a replacement and submits the same share again. Shares are
collected by index, once each, so nothing is lost and nothing is counted twice.

Example:
    >>> backend = make_backend("ray", address="auto", workers=8)      # doctest: +SKIP
    >>> episodes = backend.collect(actor, job)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from learned_lr.settings import ControlConfig, MissingExtraError, PolicyConfig, RewardConfig
from learned_lr.tasks import MnistSplits, load_mnist
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.groups import make_run_group
from learned_lr.training.rollout import Episode, PolicyController, rollout


@dataclass(frozen=True)
class RolloutJob:
    """One PPO iteration's trainee runs: who they are and how the sampling policy acts on them."""

    task: TaskConfig
    seeds: tuple[int, ...]
    base_lrs: tuple[float, ...]
    total_steps: int
    control: ControlConfig
    reward: RewardConfig
    controller_seed: int
    batch_size: int = 0  # runs in the whole iteration (0: len(seeds)); sets the noise draws
    indices: tuple[int, ...] = ()  # these runs' positions in the whole iteration (empty: 0..n-1)

    def shares(self, count: int) -> list["RolloutJob"]:
        """Split into ``count`` contiguous, non-empty shares (fewer if there are fewer runs)."""
        n = len(self.seeds)
        positions = self.indices or tuple(range(n))
        bounds = np.linspace(0, n, min(count, n) + 1).round().astype(int)
        return [dataclasses.replace(self, seeds=self.seeds[a:b], base_lrs=self.base_lrs[a:b], batch_size=self.batch_size or n,
                                    indices=positions[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def run_job(job: RolloutJob, actor_weights: dict[str, torch.Tensor], policy_config: PolicyConfig, data: MnistSplits | None = None) -> list[Episode]:
    """Roll the sampling policy with ``actor_weights`` out on the job's runs (what a worker does)."""
    from learned_lr.policy import Actor

    actor = Actor(policy_config, job.control)
    actor.load_state_dict(actor_weights)
    actor.eval()
    controller = PolicyController(actor, deterministic=False, seed=job.controller_seed, batch_size=job.batch_size or len(job.seeds),
                                  indices=job.indices or None)
    group = make_run_group(job.task, list(job.seeds), data)
    return rollout(group, controller, job.total_steps, list(job.base_lrs), job.control, job.reward, evaluate_test=False)


def _weights(actor: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in actor.state_dict().items()}


class LocalBackend:
    """All runs of a job together in this process."""

    def __init__(self, data: MnistSplits | None = None):
        self.data = data

    def collect(self, actor: torch.nn.Module, job: RolloutJob) -> list[Episode]:
        return run_job(job, _weights(actor), actor.policy_config, self.data if self.data is not None else load_mnist())

    def close(self) -> None:
        pass


class RayBackend:
    """Shares of a job on Ray actors, one share per worker; dead workers are replaced, their shares redone.

    ``address``: None starts a local Ray instance (``num_cpus=workers``) unless Ray is already
    initialized; "auto" or "HOST:PORT" joins a running cluster (``ray start --head`` first).
    Each worker reserves one CPU and runs torch on ``torch_threads`` threads.
    """

    def __init__(self, address: str | None = None, workers: int = 2, torch_threads: int = 1):
        try:
            import ray
        except ImportError as exc:
            raise MissingExtraError("the ray backend needs Ray: pip install 'learned-lr[ray]'") from exc
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._ray = ray
        self._started_ray = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            self._started_ray = True
        self.workers_wanted = workers
        self.torch_threads = torch_threads
        self._worker_class = ray.remote(num_cpus=1, max_restarts=0)(_RolloutWorker)
        self.workers = [self._new_worker() for _ in range(workers)]
        self.replaced = 0  # workers started to replace dead ones (over this backend's life)
        self.on_submitted: Callable[[list], None] | None = None  # test hook: called with the in-flight workers

    def _new_worker(self):
        return self._worker_class.remote(self.torch_threads)

    def collect(self, actor: torch.nn.Module, job: RolloutJob) -> list[Episode]:
        ray = self._ray
        weights = ray.put(_weights(actor))
        shares = job.shares(len(self.workers))
        results: dict[int, list[Episode]] = {}
        in_flight = {}  # object ref -> (share index, worker slot)
        for index, share in enumerate(shares):
            ref = self.workers[index].run.remote(share, weights, actor.policy_config)
            in_flight[ref] = (index, index)
        if self.on_submitted is not None:
            self.on_submitted(list(self.workers[: len(shares)]))
        while in_flight:
            done, _ = ray.wait(list(in_flight), num_returns=1)
            ref = done[0]
            index, slot = in_flight.pop(ref)
            try:
                results[index] = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                # The worker died with this share in flight: replace it and run the share again.
                self.workers[slot] = self._new_worker()
                self.replaced += 1
                retry = self.workers[slot].run.remote(shares[index], weights, actor.policy_config)
                in_flight[retry] = (index, slot)
        return [episode for index in range(len(shares)) for episode in results[index]]

    def close(self) -> None:
        for worker in self.workers:
            self._ray.kill(worker)
        self.workers = []
        if self._started_ray:
            self._ray.shutdown()


class _RolloutWorker:
    """A Ray actor: holds MNIST once and runs rollout shares with the weights it is sent."""

    def __init__(self, torch_threads: int):
        torch.set_num_threads(torch_threads)
        self.data = load_mnist()

    def run(self, job: RolloutJob, actor_weights: dict[str, torch.Tensor], policy_config: PolicyConfig) -> list[Episode]:
        return run_job(job, actor_weights, policy_config, self.data)


def make_backend(kind: str, address: str = "", workers: int = 2, data: MnistSplits | None = None) -> LocalBackend | RayBackend:
    """'local' (in this process) or 'ray' (``workers`` Ray actors; ``address`` '' starts a local Ray)."""
    if kind == "local":
        return LocalBackend(data)
    if kind == "ray":
        return RayBackend(address or None, workers)
    raise ValueError(f"unknown rollout backend {kind!r}; expected 'local' or 'ray'")


def rollout_job_for(task: TaskConfig, seeds: Sequence[int], base_lrs: Sequence[float], total_steps: int, control: ControlConfig,
                    reward: RewardConfig, controller_seed: int) -> RolloutJob:
    return RolloutJob(task, tuple(int(s) for s in seeds), tuple(float(b) for b in base_lrs), int(total_steps), control, reward, int(controller_seed))

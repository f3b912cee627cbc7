import os

import pytest
import torch

from learned_lr.policy import same_weights  # noqa: F401 - the one implementation, for the tests that import it from here

# Keep tests on the machine's 2 cores without oversubscription, and deterministic.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def mse_steps(model, optimizer, scheduler, x, y, steps: int) -> list[list[float]]:
    """``steps`` full-batch MSE steps under ``scheduler`` (fed the loss); every param group's LR after each step."""
    lrs = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step(train_loss=loss.item())
        lrs.append([group["lr"] for group in optimizer.param_groups])
    return lrs


@pytest.fixture(scope="session")
def mnist():
    from learned_lr.tasks import load_mnist

    return load_mnist()


def save_small_policy(path, window: int = 32, decision_interval: int = 8, seed: int = 0, meta: dict | None = None, inputs: str = "all"):
    """A tiny randomly initialized policy checkpoint (fast to run; what it schedules is arbitrary)."""
    from learned_lr.policy import Actor, Critic, save_policy
    from learned_lr.settings import ControlConfig, PolicyConfig

    torch.manual_seed(seed)
    control = ControlConfig(window=window, decision_interval=decision_interval, inputs=inputs)
    policy = PolicyConfig(patch=16, d_model=16, layers=1, heads=2)
    save_policy(path, Actor(policy, control), Critic(policy, control), meta)
    return path

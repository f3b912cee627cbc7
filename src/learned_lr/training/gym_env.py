"""The POMDP as a ``gymnasium.Env``: one trainee run per episode, one decision per step.

Each ``reset(seed=...)`` draws a task, optimizer, run length and base LR from ``EnvConfig``
and starts a fresh, seeded trainee. Each ``step(action)`` sets the LR the run should reach at
the end of the next K trainee steps (log of the fraction of the base LR; clipped to the
bounds), trains those steps, and returns the new observation and the proposal's reward. The
episode ends when the run's steps are done, or early (with ``-divergence_penalty``) when the
run diverges.

Example:
    >>> env = LRScheduleEnv(EnvConfig())                       # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(np.array([0.0], dtype=np.float32))
"""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from learned_lr.features import FEATURE_CLIP, NUM_CONTEXT, num_inputs
from learned_lr.loop import DecisionLoop
from learned_lr.tasks.run import TrainingRun
from learned_lr.training.config import EnvConfig


class LRScheduleEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, config: EnvConfig | None = None):
        super().__init__()
        self.config = config or EnvConfig()
        control = self.config.control
        lo, hi = control.log_bounds
        self.observation_space = spaces.Dict(
            {
                "window": spaces.Box(-FEATURE_CLIP, FEATURE_CLIP, shape=(control.window, num_inputs(control.inputs)), dtype=np.float32),
                "mask": spaces.Box(0.0, 1.0, shape=(control.window,), dtype=np.float32),
                "context": spaces.Box(-FEATURE_CLIP, 1.0, shape=(NUM_CONTEXT,), dtype=np.float32),
            }
        )
        self.action_space = spaces.Box(np.float32(lo), np.float32(hi), shape=(1,), dtype=np.float32)
        self._run: TrainingRun | None = None

    def _observation(self) -> dict[str, np.ndarray]:
        window, mask, context = self._loop.observation()
        return {"window": window, "mask": mask, "context": context}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        cfg = self.config
        task_name = cfg.task_list[int(rng.integers(len(cfg.task_list)))]
        optimizer = cfg.optimizer_list[int(rng.integers(len(cfg.optimizer_list)))]
        task = dataclasses.replace(cfg.task, task=task_name, optimizer=optimizer)
        total_steps = int(rng.integers(cfg.min_total_steps, cfg.max_total_steps + 1))
        lr_scale = 1.0 if optimizer == "sgd" else 0.01
        base_lr = lr_scale * math.exp(rng.uniform(math.log(cfg.min_peak_lr), math.log(cfg.max_peak_lr)))
        run_seed = int(rng.integers(2**31 - 1))
        self._run = TrainingRun(task, run_seed)
        self._loop = DecisionLoop(total_steps, base_lr, cfg.control, cfg.reward)
        info = {"task": task_name, "optimizer": optimizer, "total_steps": total_steps, "base_lr": base_lr, "trainee_seed": run_seed}
        return self._observation(), info

    def step(self, action):
        if self._run is None:
            raise RuntimeError("call reset() before step()")
        loop = self._loop
        if loop.done or loop.diverged:
            raise RuntimeError("episode is over; call reset()")
        loop.decide(float(np.asarray(action, dtype=np.float64).reshape(-1)[0]))
        while loop.step < loop.block_end and not loop.diverged:
            report = self._run.step(loop.lr(), momentum_cosines=loop.history.reads_momentum, init_distances=loop.measures_distance())
            distances = None if report.layer_init_distance is None else report.layer_init_distance.numpy()
            loop.record(report.train_loss, report.val_loss, report.layer_grad_norms.numpy(), report.layer_momentum_cos.numpy(), distances)
        history, end = loop.history, loop.step
        terminated = loop.diverged or loop.done
        info = {"lr": float(history.lrs[end - 1]), "train_loss": float(history.train_loss[end - 1]), "diverged": loop.diverged}
        return self._observation(), float(loop.rewards[-1]), terminated, False, info

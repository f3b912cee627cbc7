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

from learned_lr.config import EnvConfig
from learned_lr.env.control import LRRamp
from learned_lr.env.observation import FEATURE_CLIP, NUM_CONTEXT, NUM_FEATURES, RunHistory
from learned_lr.env.reward import block_reward
from learned_lr.tasks.run import TrainingRun, is_diverged


class LRScheduleEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, config: EnvConfig | None = None):
        super().__init__()
        self.config = config or EnvConfig()
        control = self.config.control
        lo, hi = control.log_bounds
        self.observation_space = spaces.Dict(
            {
                "window": spaces.Box(-FEATURE_CLIP, FEATURE_CLIP, shape=(control.window, NUM_FEATURES), dtype=np.float32),
                "mask": spaces.Box(0.0, 1.0, shape=(control.window,), dtype=np.float32),
                "context": spaces.Box(-FEATURE_CLIP, 1.0, shape=(NUM_CONTEXT,), dtype=np.float32),
            }
        )
        self.action_space = spaces.Box(np.float32(lo), np.float32(hi), shape=(1,), dtype=np.float32)
        self._run: TrainingRun | None = None

    def _observation(self) -> dict[str, np.ndarray]:
        window, mask, context = self._history.observation()
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
        self._history = RunHistory(total_steps, base_lr, cfg.control.window, cfg.control.inputs)
        self._ramp = LRRamp(total_steps, cfg.control.decision_interval, cfg.control.log_bounds)
        self._step = 0
        self._base_lr = base_lr
        info = {"task": task_name, "optimizer": optimizer, "total_steps": total_steps, "base_lr": base_lr, "trainee_seed": run_seed}
        return self._observation(), info

    def step(self, action):
        if self._run is None:
            raise RuntimeError("call reset() before step()")
        if self._step >= self._history.total_steps:
            raise RuntimeError("episode is over; call reset()")
        value = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        factors = self._ramp.apply(self._step, value)
        diverged = False
        for factor in factors:
            report = self._run.step(float(self._base_lr * factor))
            self._history.record(report.lr, report.train_loss, report.val_loss, report.layer_grad_norms.numpy())
            self._step += 1
            if is_diverged(report.train_loss, float(self._history.train_loss[0])):
                diverged = True
                break
        end = self._history.steps
        block = len(factors)
        if diverged:
            reward = -self.config.reward.divergence_penalty
        else:
            train, val = self._history.normalized_losses(end - block, end)
            previous = float(self._history.normalized_losses(end - block - 1, end - block)[0][0]) if end - block > 0 else math.nan
            reward = block_reward(train, val, previous, self.config.reward)
        terminated = diverged or self._step >= self._history.total_steps
        info = {"lr": float(self._history.lrs[end - 1]), "train_loss": float(self._history.train_loss[end - 1]), "diverged": diverged}
        return self._observation(), float(reward), terminated, False, info

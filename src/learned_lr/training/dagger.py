"""DAgger for the tuned-LR oracle: label the policy's own states, not only the oracle's.

Behavioral cloning of the oracle (``training.bc``) trains on the states the oracle's runs
visit. Run closed-loop, a cloned policy drifts off those states (its runs at a high base LR
look like nothing in the demonstrations) and its errors compound there. DAgger (Ross, Gordon
and Bagnell, AISTATS 2011) fixes that covariate shift directly: run the current policy, ask the
oracle what it would have done at every decision the policy took, add those labels to the data
and clone again. A round costs the same trainee runs as a round of demonstrations.

The runs of a round execute the policy's mean action plus log-space noise (``action_noise``),
so the data also covers states near the policy's path. The labels are the oracle's clean
actions (``ScheduleController.clean_action`` with its ``target_peak_lr``).

Example:
    >>> part = collect_policy_states(policy, oracle, CollectConfig(...), out="runs/dagger/round-1")  # doctest: +SKIP
    >>> merge_demonstrations(["runs/demos", "runs/dagger/round-1"], "runs/dagger/all-1")
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from learned_lr.checkpoint import load_checkpoint, save_checkpoint
from learned_lr.observation import RunHistory
from learned_lr.policy import LoadedPolicy, policy_sha256
from learned_lr.tasks.groups import make_run_group
from learned_lr.training.bc import DEMOS_FILE, append_runs, episode_tensors, merge_parts, part_is_done, part_setting
from learned_lr.training.config import CollectConfig
from learned_lr.training.rollout import PolicyController, ScheduleController, rollout

# DAgger trainee seeds live in [10000, 50000): above BC demonstrations (< 10000), below PPO's.


class NoisyPolicyController:
    """The actor's mean action plus seeded Gaussian noise in log space (DAgger's executed action)."""

    def __init__(self, actor: torch.nn.Module, noise_std: float, seed: int):
        self._policy = PolicyController(actor, deterministic=True)
        self.noise_std = noise_std
        self._rng = np.random.default_rng(seed)

    def decide(self, histories: Sequence[RunHistory], step: int, active: np.ndarray) -> np.ndarray:
        actions = self._policy.decide(histories, step, active)
        return actions + self._rng.normal(0.0, self.noise_std, size=len(actions)) if self.noise_std > 0 else actions


def collect_policy_states(policy: LoadedPolicy, oracle: ScheduleController, config: CollectConfig, first_seed: int,
                          out: str | Path, progress: bool = True) -> Path:
    """Run ``policy`` on fresh trainees, label every decision with ``oracle``; write ``out/demos.safetensors``.

    Runs: ``config.runs_per_setting`` per run length in ``config.total_steps``, base LRs drawn
    from ``config.sample_peak_lrs``, seeds from ``first_seed``.
    Resumable per run length (each is saved as a part as it finishes).
    """
    if oracle.target_peak_lr <= 0:
        raise ValueError("DAgger labels come from the tuned-LR oracle: give the ScheduleController a target_peak_lr")
    if policy.control_config != config.control:
        raise ValueError(f"the policy's control settings {policy.control_config} differ from the collection's {config.control}")
    out = Path(out)
    lengths = config.total_steps_list
    for steps_index, total_steps in enumerate(tqdm(lengths, desc="DAgger: policy runs", disable=not progress)):
        part = out / "parts" / f"{oracle.schedule.name}-{total_steps}.safetensors"
        setting = part_setting(config, total_steps=total_steps, steps_index=steps_index, first_seed=first_seed, policy_sha256=policy_sha256(policy),
                               oracle={"schedule": oracle.schedule.name, "shape": dataclasses.asdict(oracle.schedule.shape),
                                       "target_peak_lr": oracle.target_peak_lr})
        if part_is_done(part, setting):
            continue  # done by an earlier, interrupted invocation with the same setting
        seed0 = first_seed + steps_index * config.runs_per_setting
        seeds = list(range(seed0, seed0 + config.runs_per_setting))
        rng = np.random.default_rng(seed0)
        base_lrs = config.sample_peak_lrs(rng, len(seeds))
        controller = NoisyPolicyController(policy.actor, config.action_noise, seed0)
        group = make_run_group(config.task, seeds, total_steps=total_steps)  # loads the task's data (cached)
        episodes = rollout(group, controller, total_steps, base_lrs, config.control, config.reward, evaluate_test=False,
                           progress=progress, desc=f"DAgger T={total_steps}")
        tensors = episode_tensors(episodes, lambda episode, step: oracle.clean_action(total_steps, step, episode.base_lr), config.reward.discount)
        runs = [{"seed": e.seed, "peak_lr": e.base_lr, "diverged": e.diverged} for e in episodes]
        save_checkpoint(part, tensors, {"expert": oracle.schedule.name, "total_steps": total_steps, "runs": runs, "setting": setting}, kind="demo-part")
    # The parts are named as demonstration parts are, so the demonstrations' merge writes them.
    merge_parts(dataclasses.replace(config, experts=oracle.schedule.name), out / "parts", out / DEMOS_FILE)
    return out / DEMOS_FILE


def merge_demonstrations(sources: Sequence[str | Path], target: str | Path) -> Path:
    """Concatenate demonstration folders (each with a demos.safetensors) into ``target``.

    Every source must share the control settings (window, decision interval, action bounds):
    labels and windows mean nothing across different ones.
    """
    if not sources:
        raise ValueError("nothing to merge: give at least one source folder")
    tensors: dict[str, torch.Tensor] = {}
    runs: list[dict] = []
    meta_out: dict = {}
    for source in sources:
        path = Path(source) / DEMOS_FILE
        source_tensors, meta = load_checkpoint(path, kind="demonstrations")
        if not meta_out:
            meta_out = {k: v for k, v in meta.items() if k not in ("runs", "format", "version", "kind")}
        elif meta["control"] != meta_out["control"]:
            raise ValueError(f"{path} has control settings {meta['control']}, the first source {meta_out['control']}")
        append_runs(tensors, runs, source_tensors, meta["runs"])
    target = Path(target)
    save_checkpoint(target, tensors, {**meta_out, "runs": runs}, kind="demonstrations")
    return target

"""Adapting a policy to LoRA fine-tuning by behavioral cloning on LoRA runs.

What a user would try when the MNIST-trained policy loses on their task: run a few LoRA
fine-tunings under the best fixed schedule (the teacher), record what LearnedLR would have
observed in them (losses, the LoRA modules' gradient norms, the LRs), and fine-tune the policy
to take the teacher's decisions from those observations. Starting from the bundled policy keeps
what it learned about reading a run; the teacher runs use seeds from 100 on, so they never
overlap the comparison's seeds.

Every step of a teacher run is a training example (the observation before the step, and the
teacher's log LR factor at the end of a decision block starting there); a run of S steps gives S
examples rather than S / K decisions, which matters with runs this short.

Example:
    >>> path = adapt_policy(AdaptLLMConfig(teacher="cosine", out="runs/llm-adapt"))   # doctest: +SKIP
    >>> # then: learned-lr compare-llm --policies "learned (adapted)=runs/llm-adapt/policy.safetensors"
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from learned_lr.control import LRRamp, expert_action
from learned_lr.experiments.llm.config import AdaptLLMConfig, FinetuneLLMConfig
from learned_lr.experiments.llm.finetune import base_losses, finetune, load_result
from learned_lr.files import write_csv
from learned_lr.gates import actor_for_run, structure_gated
from learned_lr.observation import RunHistory
from learned_lr.policy import LoadedPolicy, load_policy, save_policy
from learned_lr.settings import ConfigError
from learned_lr.tasks.seeds import LLM_TEACHER_SEED_START
from learned_lr.training.bc import clone_epoch


def teacher_runs(config: AdaptLLMConfig, progress: bool = True) -> list[Path]:
    """Run (or reuse) the teacher's LoRA fine-tunings with recorded histories; their folders."""
    folders, before = [], None
    grid = [(b, LLM_TEACHER_SEED_START + s) for b in config.batch_size_list for s in range(config.runs_per_batch_size)]
    for batch_size, seed in tqdm(grid, desc=f"teacher runs ({config.teacher})", disable=not progress):
        folder = Path(config.out) / "teacher" / f"bs{batch_size}" / f"seed{seed}"
        done = load_result(folder)
        if done is None or done.get("settings") != dataclasses.asdict(config.settings) or not (folder / "history.npz").is_file():
            before = before or base_losses(config.settings, progress=progress)
            run = FinetuneLLMConfig(settings=config.settings, scheduler=config.teacher, batch_size=batch_size, seed=seed, out=str(folder))
            finetune(run, progress=progress, before=before, record_history=True)
        folders.append(folder)
    return folders


def examples_from_run(folder: Path, policy: LoadedPolicy, base_lr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(windows, masks, contexts, labels) for every step of one recorded teacher run."""
    with np.load(folder / "history.npz", allow_pickle=False) as saved:
        state = {k: saved[k] for k in saved.files}
    steps = int(state["steps"])
    control = policy.control_config
    history = RunHistory.of(int(state["total_steps"]) if "total_steps" in state else len(state["lrs"]), base_lr, control)
    history.load_state(state)
    factors = history.lrs[:steps] / base_lr
    ramp = LRRamp.of(history.total_steps, control)
    windows, masks, contexts, labels = [], [], [], []
    for step in range(steps):
        window, mask, context = history.observation(step)
        windows.append(window), masks.append(mask), contexts.append(context)
        labels.append(expert_action(factors, step, ramp.block_length(step), control.log_bounds))
    return np.stack(windows), np.stack(masks), np.stack(contexts), np.array(labels, dtype=np.float32)


def adapt_policy(config: AdaptLLMConfig, progress: bool = True) -> Path:
    """Teacher runs -> examples -> the starting policy fine-tuned on them; returns ``out/policy.safetensors``."""
    from learned_lr.bundled import resolve_policy

    policy = load_policy(resolve_policy(config.settings.policy))
    if structure_gated(policy.actor, config.settings.steps) is not None:  # fine-tuning one side would leave the other as it was
        raise ConfigError("policy", f"runs of {config.settings.steps} steps are scheduled by a structure gate (one side for deep models, "
                          "one for the others), which cannot be adapted as one actor: give one of its sides (an actor or an ensemble)")
    folders = teacher_runs(config, progress=progress)
    parts = [examples_from_run(f, policy, config.settings.lr) for f in folders]
    # The last run of each batch size is held out to report the imitation error on unseen runs.
    per_size = config.runs_per_batch_size
    held = {i for i in range(len(folders)) if per_size > 1 and (i + 1) % per_size == 0}
    train = [p for i, p in enumerate(parts) if i not in held]
    val = [p for i, p in enumerate(parts) if i in held]
    stack = lambda group, k: torch.from_numpy(np.concatenate([p[k] for p in group]))  # noqa: E731
    x_train = [stack(train, k) for k in range(4)]
    x_val = [stack(val, k) for k in range(4)] if val else None

    actor, critic = actor_for_run(policy.actor, config.settings.steps), policy.critic  # a length-gated policy: the LoRA runs' actor
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    optimizer = torch.optim.Adam(actor.parameters(), lr=config.learning_rate)
    log = []

    def mae(data) -> float:
        if data is None:
            return math.nan
        actor.eval()
        with torch.no_grad():
            return float((actor(*data[:3])[0] - data[3]).abs().mean())

    log.append([0, math.nan, mae(x_train), mae(x_val)])
    n = len(x_train[3])
    for epoch in tqdm(range(1, config.epochs + 1), desc="adapt policy (BC)", disable=not progress):
        actor.train()
        order = torch.from_numpy(rng.permutation(n))
        batches = ([x[order[i : i + config.batch_size]] for x in x_train] for i in range(0, n, config.batch_size))
        nll_sum = clone_epoch(actor, optimizer, batches)[0]
        log.append([epoch, nll_sum / n, mae(x_train), mae(x_val)])
    actor.eval()
    out = Path(config.out)
    write_csv(out / "adapt_log.csv", ["epoch", "train_nll", "train_action_mae", "val_action_mae"], log)
    path = out / "policy.safetensors"
    save_policy(path, actor, critic, {
        "trained_by": f"behavioral cloning on LoRA runs of SmolLM2-135M under {config.teacher}, from {config.settings.policy}",
        "adapt_config": {k: v for k, v in dataclasses.asdict(config).items()},
        "examples": {"train": int(n), "val": 0 if x_val is None else int(len(x_val[3]))},
        "final_metrics": dict(zip(["epoch", "train_nll", "train_action_mae", "val_action_mae"], log[-1])),
    })
    return path

"""Behavioral cloning: expert demonstrations -> (observation, action) pairs -> a fitted actor.

``collect_demonstrations`` runs every expert on many trainee runs (seeds, peak LRs and run
lengths varied, so the policy learns a schedule's shape rather than one run) and stores each
run's per-step features and each decision's clean expert action and discounted return.
``train_bc`` fits the actor by maximum likelihood (Gaussian NLL; the spread cannot fall below
``PolicyConfig.min_std``, so PPO can still explore), or its mean to a quantile of the expert's
action (``BCConfig.quantile``), and warm-starts the critic on the returns.
Windows are rebuilt from the stored features batch by batch, so demonstrations stay small on
disk (8 floats per trainee step) whatever the window length.

Example:
    >>> collect_demonstrations(CollectConfig(out="runs/demos"))               # doctest: +SKIP
    >>> train_bc(BCConfig(demos="runs/demos", experts="cosine", out="runs/bc-cosine"))
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from learned_lr.checkpoint import CheckpointError, flatten_state, load_checkpoint, save_checkpoint, unflatten_state
from learned_lr.features import window_from_features
from learned_lr.files import file_sha256, folder_lock
from learned_lr.policy import Actor, Critic, save_policy
from learned_lr.settings import ControlConfig, config_setting
from learned_lr.tasks.groups import make_run_group
from learned_lr.training.config import BCConfig, CollectConfig
from learned_lr.training.experts import expert_schedule
from learned_lr.training.rollout import Episode, ScheduleController, rollout

DEMOS_FILE = "demos.safetensors"


def discounted_returns(rewards: np.ndarray, discount: float) -> np.ndarray:
    returns = np.zeros(len(rewards))
    running = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        running = rewards[i] + discount * running
        returns[i] = running
    return returns


def _setting_seed(config: CollectConfig, expert_index: int, steps_index: int) -> int:
    # Distinct, reproducible seed blocks per (expert, run length); all below 100000.
    return config.seed * 1000 + expert_index * 100 + steps_index * config.runs_per_setting


def collect_demonstrations(config: CollectConfig, progress: bool = True) -> Path:
    """Run the experts on trainees and write ``out/demos.safetensors``. Resumable per setting."""
    with folder_lock(config.out):  # one run per folder (files.folder_lock)
        return _collect_demonstrations(config, progress)


def _collect_demonstrations(config: CollectConfig, progress: bool = True) -> Path:
    out = Path(config.out)
    parts_dir = out / "parts"
    settings = [(e, s) for e in range(len(config.expert_list)) for s in range(len(config.total_steps_list))]
    for expert_index, steps_index in tqdm(settings, desc="collect demonstrations", disable=not progress):
        expert = config.expert_list[expert_index]
        total_steps = config.total_steps_list[steps_index]
        part = parts_dir / f"{expert}-{total_steps}.safetensors"
        setting = part_setting(config, expert=expert, total_steps=total_steps, expert_index=expert_index, steps_index=steps_index)
        if part_is_done(part, setting):
            continue  # done by an earlier, interrupted invocation with the same setting
        first_seed = _setting_seed(config, expert_index, steps_index)
        seeds = list(range(first_seed, first_seed + config.runs_per_setting))
        rng = np.random.default_rng(first_seed)
        peak_lrs = config.sample_peak_lrs(rng, len(seeds))
        schedule = expert_schedule(expert, config.schedule_shape)
        controller = ScheduleController(schedule, config.control, noise_std=config.action_noise, seed=first_seed, target_peak_lr=config.target_peak_lr)
        group = make_run_group(config.task, seeds, total_steps=total_steps)  # loads the task's data (cached)
        episodes = rollout(group, controller, total_steps, peak_lrs, config.control, config.reward, evaluate_test=False,
                           progress=progress, desc=f"{expert} T={total_steps}")
        tensors = episode_tensors(episodes, lambda episode, step: controller.clean_action(total_steps, step, episode.base_lr), config.reward.discount)
        runs = [{"seed": e.seed, "peak_lr": e.base_lr, "diverged": e.diverged} for e in episodes]
        save_checkpoint(part, tensors, {"expert": expert, "total_steps": total_steps, "runs": runs, "setting": setting}, kind="demo-part")
    merge_parts(config, parts_dir, out / DEMOS_FILE)
    return out / DEMOS_FILE


def part_setting(config: CollectConfig, **specifics) -> dict:
    """Everything that decides what a demonstration part holds: the collection's settings (but its
    folder and the lists of experts and run lengths, which only say which parts there are) and the
    part's own (expert, run length, their positions, which set its seeds; a policy's SHA-256...)."""
    shared = {k: v for k, v in config_setting(config).items() if k not in ("out", "experts", "total_steps")}
    return json.loads(json.dumps({**shared, **specifics}))  # as it reads back from a checkpoint's JSON


def part_is_done(part: Path, setting: dict) -> bool:
    """Whether a demonstration part was written whole, for exactly ``setting``, by an earlier invocation.

    A damaged part, or one written for another setting (a rerun into the same folder with other
    flags), is collected again rather than reused.
    """
    if not part.is_file():
        return False
    try:
        _, meta = load_checkpoint(part, kind="demo-part")
    except CheckpointError:
        return False
    return meta.get("setting") == setting


def episode_tensors(episodes: Sequence[Episode], label: Callable[[Episode, int], float], discount: float) -> dict[str, torch.Tensor]:
    """The stored form of rollout episodes: per run its features, decision steps, labels and returns."""
    tensors: dict[str, torch.Tensor] = {}
    for run_index, episode in enumerate(episodes):
        steps = list(episode.decision_steps)
        returns = discounted_returns(np.asarray(episode.rewards), discount)
        tensors[f"{run_index}.features"] = torch.from_numpy(episode.history.features[: episode.history.steps].copy())
        tensors[f"{run_index}.decision_steps"] = torch.tensor(steps, dtype=torch.int64)
        tensors[f"{run_index}.labels"] = torch.tensor([label(episode, s) for s in steps], dtype=torch.float32)
        tensors[f"{run_index}.returns"] = torch.tensor(returns, dtype=torch.float32)
    return tensors


def append_runs(tensors: dict[str, torch.Tensor], runs: list[dict], new_tensors: dict[str, torch.Tensor], new_runs: list[dict],
                extra: dict | None = None) -> None:
    """Append stored runs (``new_tensors`` indexed from 0) to ``tensors``/``runs``, renumbering them."""
    for local_index, run in enumerate(new_runs):
        index = len(runs)
        for name in ("features", "decision_steps", "labels", "returns"):
            tensors[f"{index}.{name}"] = new_tensors[f"{local_index}.{name}"]
        runs.append({**run, **(extra or {})})


def merge_parts(config: CollectConfig, parts_dir: Path, target: Path) -> None:
    """Write the parts ``parts_dir/<expert>-<steps>.safetensors`` of ``config`` as one demonstrations file."""
    tensors: dict[str, torch.Tensor] = {}
    runs: list[dict] = []
    for expert in config.expert_list:
        for total_steps in config.total_steps_list:
            part_tensors, meta = load_checkpoint(parts_dir / f"{expert}-{total_steps}.safetensors", kind="demo-part")
            append_runs(tensors, runs, part_tensors, meta["runs"], {"expert": expert, "total_steps": total_steps})
    meta = {
        "task": config.task.setting(),
        "schedule_shape": dataclasses.asdict(config.schedule_shape),
        "control": dataclasses.asdict(config.control),
        "reward": dataclasses.asdict(config.reward),
        "action_noise": config.action_noise,
        "target_peak_lr": config.target_peak_lr,
        "runs": runs,
    }
    save_checkpoint(target, tensors, meta, kind="demonstrations")


@dataclass
class Demonstrations:
    """Loaded demonstrations: per run, features and decisions; flat arrays index all decisions."""

    control: ControlConfig
    runs: list[dict]
    features: list[np.ndarray]
    decision_run: np.ndarray
    decision_step: np.ndarray
    labels: np.ndarray
    returns: np.ndarray

    @classmethod
    def load(cls, folder: str | Path, experts: list[str] | None = None) -> "Demonstrations":
        tensors, meta = load_checkpoint(Path(folder) / DEMOS_FILE, kind="demonstrations")
        control = ControlConfig(**meta["control"])
        runs, features, d_run, d_step, labels, returns = [], [], [], [], [], []
        for index, run in enumerate(meta["runs"]):
            if experts is not None and run["expert"] not in experts:
                continue
            local = len(runs)
            runs.append(run)
            features.append(tensors[f"{index}.features"].numpy())
            steps = tensors[f"{index}.decision_steps"].numpy()
            d_run.append(np.full(len(steps), local))
            d_step.append(steps)
            labels.append(tensors[f"{index}.labels"].numpy())
            returns.append(tensors[f"{index}.returns"].numpy())
        if not runs:
            raise ValueError(f"no demonstrations for experts {experts} in {folder}")
        cat = np.concatenate
        return cls(control, runs, features, cat(d_run), cat(d_step), cat(labels), cat(returns))

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(window, mask, context, label, return) tensors for the given decisions."""
        obs = [
            window_from_features(self.features[self.decision_run[i]], int(self.decision_step[i]), self.control.window,
                                 self.runs[self.decision_run[i]]["total_steps"], self.control.inputs)
            for i in indices
        ]
        window = torch.from_numpy(np.stack([o[0] for o in obs]))
        mask = torch.from_numpy(np.stack([o[1] for o in obs]))
        context = torch.from_numpy(np.stack([o[2] for o in obs]))
        return window, mask, context, torch.from_numpy(self.labels[indices]), torch.from_numpy(self.returns[indices])


def split_runs(num_runs: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Run indices for BC training and for BC validation (whole runs are held out)."""
    order = np.random.default_rng(seed).permutation(num_runs)
    n_val = int(round(val_fraction * num_runs)) if num_runs > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _evaluate(actor: Actor, critic: Critic, demos: Demonstrations, indices: np.ndarray, batch_size: int = 256) -> dict[str, float]:
    if len(indices) == 0:
        return {"val_action_mae": math.nan, "val_value_mse": math.nan}
    errors, value_errors = [], []
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            window, mask, context, label, ret = demos.batch(indices[start : start + batch_size])
            mean, _ = actor(window, mask, context)
            errors.append((mean - label).abs())
            value_errors.append((critic(window, mask, context) - ret).square())
    return {"val_action_mae": float(torch.cat(errors).mean()), "val_value_mse": float(torch.cat(value_errors).mean())}


def clone_epoch(actor: Actor, actor_opt: torch.optim.Optimizer, batches: Iterable[Sequence[torch.Tensor]],
                critic: Critic | None = None, critic_opt: torch.optim.Optimizer | None = None, quantile: float = 0.0) -> np.ndarray:
    """One pass of behavioral cloning over ``batches`` of (window, mask, context, label[, return]).

    The actor minimizes the NLL of the expert's action, so its mean fits the label's conditional
    mean. With ``quantile`` q in (0, 1) the mean fits the label's conditional q-quantile instead (the
    pinball loss) and the spread is fitted by NLL around that mean, detached: where one observation
    was labelled with several actions (runs that look alike early, at different base LRs), q < 0.5
    clones the lower of them. With a critic, the critic regresses the return. Gradients are clipped
    to norm 1. Returns the sums over examples of (NLL, |mean action - label|, value loss); divide by
    the number of examples for means. The one BC fit loop: ``train_bc`` and ``adapt-llm``
    (``experiments.llm.adapt``) both run it.
    """
    sums = np.zeros(3)
    for batch in batches:
        window, mask, context, label = batch[:4]
        dist = actor.distribution(window, mask, context)
        nll = -dist.log_prob(label).mean()
        if quantile > 0:
            error = label - dist.mean
            pinball = torch.maximum(quantile * error, (quantile - 1.0) * error).mean()
            loss = pinball - torch.distributions.Normal(dist.mean.detach(), dist.stddev).log_prob(label).mean()
        else:
            loss = nll
        actor_opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(actor.parameters(), 1.0)
        actor_opt.step()
        value_loss = 0.0
        if critic is not None:
            loss = (critic(window, mask, context) - batch[4]).square().mean()
            critic_opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
            critic_opt.step()
            value_loss = float(loss.detach())
        n = len(label)
        sums += np.array([float(nll.detach()) * n, float((dist.mean.detach() - label).abs().mean()) * n, value_loss * n])
    return sums


def bc_policy_is_current(config: BCConfig) -> bool:
    """Whether ``config.out`` already holds the policy ``train_bc(config)`` makes: the same settings
    and the same demonstrations (by SHA-256). The pipelines reuse a policy only then, so a rerun
    with another ``--seed`` or ``--epochs``, or on new demonstrations, trains again."""
    path, demos = Path(config.out) / "policy.safetensors", Path(config.demos) / DEMOS_FILE
    if not (path.is_file() and demos.is_file()):
        return False
    try:
        _, meta = load_checkpoint(path, kind="policy")
    except CheckpointError:
        return False
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("policy", "resume")}
    saved = {k: v for k, v in (meta.get("bc_config") or {}).items() if k != "resume"}
    # A setting added since a policy was saved held its default then (e.g. quantile = 0, the NLL).
    saved = {k: v for k, v in dataclasses.asdict(BCConfig()).items() if k in settings} | saved
    return (saved == json.loads(json.dumps(settings)) and meta.get("policy_config") == json.loads(json.dumps(dataclasses.asdict(config.policy)))
            and (meta.get("demonstrations") or {}).get("sha256") == file_sha256(demos))


def train_bc(config: BCConfig, progress: bool = True, max_epochs_this_call: int | None = None) -> Path | None:
    """Fit actor and critic on the chosen experts' demonstrations; returns the policy path.

    Checkpoints after every epoch to ``out/train_state.safetensors``; with ``config.resume`` a
    rerun continues where the last one stopped and ends with the same weights as an
    uninterrupted run. ``max_epochs_this_call`` stops early (checkpoint written, returns None),
    for time-budgeted jobs; the next call continues.
    """
    with folder_lock(config.out):  # one run per folder (files.folder_lock)
        return _train_bc(config, progress, max_epochs_this_call)


def _train_bc(config: BCConfig, progress: bool = True, max_epochs_this_call: int | None = None) -> Path | None:
    out = Path(config.out)
    demos = Demonstrations.load(config.demos, config.expert_list)
    if config.window:
        demos.control = dataclasses.replace(demos.control, window=config.window)
    control = demos.control
    train_runs, val_runs = split_runs(len(demos.runs), config.val_fraction, config.seed)
    train_idx = np.flatnonzero(np.isin(demos.decision_run, train_runs))
    val_idx = np.flatnonzero(np.isin(demos.decision_run, val_runs))

    torch.manual_seed(config.seed)
    actor, critic = Actor(config.policy, control), Critic(config.policy, control)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=config.learning_rate)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=config.learning_rate)
    # Decay both networks' LR over the epochs (cosine): late epochs refine instead of jitter.
    actor_sched = torch.optim.lr_scheduler.CosineAnnealingLR(actor_opt, T_max=config.epochs, eta_min=config.learning_rate * 0.05)
    critic_sched = torch.optim.lr_scheduler.CosineAnnealingLR(critic_opt, T_max=config.epochs, eta_min=config.learning_rate * 0.05)
    rng = np.random.default_rng(config.seed)
    start_epoch, log_rows = 0, []
    state_path = out / "train_state.safetensors"
    demos_sha256 = file_sha256(Path(config.demos) / DEMOS_FILE)  # a state is continued only on the demonstrations it trained on
    if config.resume and state_path.is_file():
        start_epoch, log_rows = _load_train_state(state_path, config, actor, critic, actor_opt, critic_opt, actor_sched, critic_sched, rng,
                                                  demos_sha256)

    log_header = ["epoch", "train_nll", "train_action_mae", "train_value_mse", "val_action_mae", "val_value_mse"]
    end_epoch = config.epochs if max_epochs_this_call is None else min(config.epochs, start_epoch + max_epochs_this_call)
    for epoch in tqdm(range(start_epoch, end_epoch), desc=f"BC {config.experts}", disable=not progress, initial=start_epoch, total=config.epochs):
        actor.train(), critic.train()
        order = rng.permutation(train_idx)
        batches = (demos.batch(order[start : start + config.batch_size]) for start in range(0, len(order), config.batch_size))
        sums = clone_epoch(actor, actor_opt, batches, critic, critic_opt, quantile=config.quantile)
        actor_sched.step(), critic_sched.step()
        actor.eval(), critic.eval()
        metrics = _evaluate(actor, critic, demos, val_idx)
        log_rows.append([epoch + 1, *(sums / max(1, len(order))).tolist(), metrics["val_action_mae"], metrics["val_value_mse"]])
        _save_train_state(state_path, config, epoch + 1, log_rows, actor, critic, actor_opt, critic_opt, actor_sched, critic_sched, rng,
                          demos_sha256)
    if end_epoch < config.epochs:
        return None

    from learned_lr.files import write_csv

    write_csv(out / "bc_log.csv", log_header, log_rows)
    final = dict(zip(log_header, log_rows[-1]))
    policy_path = out / "policy.safetensors"
    save_policy(policy_path, actor, critic, {
        "trained_by": "behavioral cloning",
        "experts": config.expert_list,
        "bc_config": {k: v for k, v in dataclasses.asdict(config).items() if k != "policy"},
        "demonstrations": {"folder": str(config.demos), "runs": len(demos.runs), "decisions": int(len(demos.labels)),
                           "sha256": file_sha256(Path(config.demos) / DEMOS_FILE)},
        "final_metrics": final,
    })
    return policy_path


def _save_train_state(path, config, epoch, log_rows, actor, critic, actor_opt, critic_opt, actor_sched, critic_sched, rng, demos_sha256) -> None:
    tensors: dict[str, torch.Tensor] = {f"actor.{k}": v for k, v in actor.state_dict().items()}
    tensors.update({f"critic.{k}": v for k, v in critic.state_dict().items()})
    meta = {
        "epoch": epoch,
        "log_rows": log_rows,
        "config": dataclasses.asdict(config),
        "actor_opt": flatten_state(actor_opt.state_dict(), "actor_opt", tensors),
        "critic_opt": flatten_state(critic_opt.state_dict(), "critic_opt", tensors),
        "actor_sched": actor_sched.state_dict(),
        "critic_sched": critic_sched.state_dict(),
        "rng": rng.bit_generator.state,
        "demos_sha256": demos_sha256,
    }
    save_checkpoint(path, tensors, meta, kind="bc-train-state")


def _load_train_state(path, config, actor, critic, actor_opt, critic_opt, actor_sched, critic_sched, rng, demos_sha256) -> tuple[int, list]:
    from learned_lr.checkpoint import load_module_weights

    tensors, meta = load_checkpoint(path, kind="bc-train-state")
    if meta["config"].get("epochs") != config.epochs:
        # The LR decays over all epochs (cosine T_max = epochs), so a state of a run of another
        # length is not the start of this one: resuming it would keep the old schedule (and label).
        print(f"{path} is from a run of {meta['config'].get('epochs')} epochs, not {config.epochs}: training from the start",
              file=sys.stderr)
        return 0, []
    if meta.get("demos_sha256") != demos_sha256:  # the demonstrations were collected again: this state is not the start of this run
        print(f"{path} was trained on other demonstrations than {config.demos} holds now: training from the start", file=sys.stderr)
        return 0, []
    saved = {k: v for k, v in meta["config"].items() if k not in ("epochs", "resume", "out")}
    current = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("epochs", "resume", "out")}
    if saved != current:
        raise CheckpointError(f"{path} was written by a different BC config; use another --out or --no-resume")
    load_module_weights(actor, tensors, "actor", path)
    load_module_weights(critic, tensors, "critic", path)
    actor_opt.load_state_dict(unflatten_state(meta["actor_opt"], tensors))
    critic_opt.load_state_dict(unflatten_state(meta["critic_opt"], tensors))
    actor_sched.load_state_dict(meta["actor_sched"])
    critic_sched.load_state_dict(meta["critic_sched"])
    rng.bit_generator.state = meta["rng"]
    return int(meta["epoch"]), meta["log_rows"]

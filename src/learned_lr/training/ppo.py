"""PPO fine-tuning, written out in the CleanRL spirit: rollout, GAE, clipped update, repeat.

Each iteration rolls the current (sampling) actor out on a fresh group of MNIST-MLP trainee
runs (run length and base LR drawn per iteration from the config, seeds never used by BC or by
evaluation), scores each decision with the reward, and updates:

* the critic always (value regression on GAE returns);
* the actor only after ``critic_warmup_iterations`` (a BC-initialized actor would otherwise be
  pushed around by a critic that does not yet know this reward), with the clipped surrogate,
  an optional entropy bonus, and ``kl_coef * KL(actor || BC actor)`` keeping it near the
  demonstrations (a related PPO LR controller, SOLAR, found an unanchored one worse than cosine).

Everything random in iteration i (settings, trainee seeds, action sampling, minibatch order)
derives from ``(seed, i)``, so a run resumed from its per-iteration checkpoint ends with the same
weights as an uninterrupted one.

Example:
    >>> train_ppo(PPOConfig(init="runs/imitate/bc-all/policy.safetensors", out="runs/ppo"))   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from learned_lr.checkpoint import CheckpointError, flatten_state, load_checkpoint, load_module_weights, save_checkpoint, unflatten_state
from learned_lr.features import window_from_features
from learned_lr.files import file_sha256, folder_lock, write_csv
from learned_lr.policy import Actor, Critic, load_policy, save_policy
from learned_lr.settings import ConfigError, ControlConfig, config_setting
from learned_lr.tasks import load_mnist
from learned_lr.training.backends import make_backend, rollout_job_for
from learned_lr.training.config import PPOConfig
from learned_lr.training.ppo_runs import iteration_chunks, load_variants
from learned_lr.training.rollout import Episode


@dataclass
class Batch:
    """One iteration's decisions, flattened over episodes."""

    window: torch.Tensor
    mask: torch.Tensor
    context: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    values: torch.Tensor
    bc_mean: torch.Tensor
    bc_std: torch.Tensor

    def __len__(self) -> int:
        return len(self.actions)

    def subset(self, idx: torch.Tensor) -> "Batch":
        return Batch(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})


def gae(rewards: np.ndarray, values: np.ndarray, discount: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns of one episode that ends after its last decision (next value 0)."""
    advantages = np.zeros(len(rewards))
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        next_value = values[t + 1] if t + 1 < len(rewards) else 0.0
        delta = rewards[t] + discount * next_value - values[t]
        running = delta + discount * lam * running
        advantages[t] = running
    return advantages, advantages + values


def gaussian_kl(mean: torch.Tensor, std: torch.Tensor, ref_mean: torch.Tensor, ref_std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std) || N(ref_mean, ref_std)), elementwise."""
    return torch.log(ref_std / std) + (std.square() + (mean - ref_mean).square()) / (2 * ref_std.square()) - 0.5


def ppo_update(actor: Actor, critic: Critic, actor_opt, critic_opt, batch: Batch, config: PPOConfig, update_actor: bool, generator: torch.Generator) -> dict[str, float]:
    """Several epochs of clipped-PPO minibatch updates on ``batch``; returns mean statistics."""
    stats = {"policy_loss": [], "value_loss": [], "entropy": [], "kl_to_bc": [], "approx_kl": [], "clip_fraction": []}
    for _ in range(config.update_epochs):
        order = torch.randperm(len(batch), generator=generator)
        for start in range(0, len(batch), config.minibatch_size):
            mb = batch.subset(order[start : start + config.minibatch_size])
            values = critic(mb.window, mb.mask, mb.context)
            value_loss = 0.5 * (values - mb.returns).square().mean()
            critic_opt.zero_grad()
            value_loss.backward()
            torch.nn.utils.clip_grad_norm_(critic.parameters(), config.max_grad_norm)
            critic_opt.step()
            stats["value_loss"].append(float(value_loss.detach()))
            if not update_actor:
                continue
            mean, std = actor(mb.window, mb.mask, mb.context)
            dist = torch.distributions.Normal(mean, std)
            logprob = dist.log_prob(mb.actions)
            log_ratio = logprob - mb.logprobs
            ratio = log_ratio.exp()
            advantages = (mb.advantages - mb.advantages.mean()) / (mb.advantages.std(unbiased=False) + 1e-8)
            policy_loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)).mean()
            entropy = dist.entropy().mean()
            kl_to_bc = gaussian_kl(mean, std, mb.bc_mean, mb.bc_std).mean()
            loss = policy_loss - config.entropy_coef * entropy + config.kl_coef * kl_to_bc
            actor_opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(actor.parameters(), config.max_grad_norm)
            actor_opt.step()
            with torch.no_grad():
                stats["policy_loss"].append(float(policy_loss))
                stats["entropy"].append(float(entropy))
                stats["kl_to_bc"].append(float(kl_to_bc))
                stats["approx_kl"].append(float(((ratio - 1) - log_ratio).mean()))
                stats["clip_fraction"].append(float(((ratio - 1).abs() > config.clip_coef).float().mean()))
    return {k: (float(np.mean(v)) if v else math.nan) for k, v in stats.items()}


def spiked(episode: Episode) -> bool:
    """A run that did not diverge but whose train loss, after the first 10% of steps, rose above
    its starting loss: an unsafe LR that training survived."""
    h = episode.history
    if episode.diverged:
        return False
    later = h.train_loss[max(1, h.total_steps // 10) : h.steps]
    return bool(later.size and np.nanmax(later) > h.train_loss[0])


def scaled_rewards(episode: Episode, control: ControlConfig, return_scale: str) -> np.ndarray:
    """The episode's rewards as PPO learns from them: as given, or divided by the run's planned decisions.

    Per decision, a run of 1,000 steps has 6x the return of one of 150 at the same losses; divided
    by its planned number of decisions (a diverged run's too, so its penalty keeps its weight),
    a return is the run's mean reward, on one scale across variants for the one critic.
    """
    rewards = np.asarray(episode.rewards, dtype=np.float64)
    if return_scale == "none":
        return rewards
    return rewards / math.ceil(episode.history.total_steps / control.decision_interval)


def _standardize_per_group(advantages: list[np.ndarray], groups: list[str]) -> list[np.ndarray]:
    """Advantages standardized within each group (variant) of episodes, so each variant pushes the actor alike."""
    out = list(advantages)
    for group in set(groups):
        members = [i for i, g in enumerate(groups) if g == group]
        values = np.concatenate([advantages[i] for i in members])
        mean, std = values.mean(), values.std()
        for i in members:
            out[i] = (advantages[i] - mean) / (std + 1e-8)
    return out


def episodes_to_batch(episodes: list[Episode], actor: Actor, critic: Critic, bc_actor: Actor, control: ControlConfig, config: PPOConfig,
                      groups: list[str] | None = None) -> Batch:
    windows, masks, contexts, actions, rewards_per_episode = [], [], [], [], []
    for episode in episodes:
        for step, action in zip(episode.decision_steps, episode.actions):
            w, m, c = window_from_features(episode.history.features, step, control.window, episode.history.total_steps, control.inputs)
            windows.append(w), masks.append(m), contexts.append(c), actions.append(action)
        rewards_per_episode.append(scaled_rewards(episode, control, config.return_scale))
    window = torch.from_numpy(np.stack(windows))
    mask = torch.from_numpy(np.stack(masks))
    context = torch.from_numpy(np.stack(contexts))
    action = torch.tensor(actions, dtype=torch.float32)
    with torch.no_grad():
        dist = actor.distribution(window, mask, context)
        logprobs = dist.log_prob(action)
        values = critic(window, mask, context)
        bc_mean, bc_std = bc_actor(window, mask, context)
    advantages, returns, offset = [], [], 0
    for rewards in rewards_per_episode:
        v = values[offset : offset + len(rewards)].double().numpy()
        a, r = gae(rewards, v, config.reward.discount, config.gae_lambda)
        advantages.append(a), returns.append(r)
        offset += len(rewards)
    if config.return_scale == "per-decision" and groups is not None:
        advantages = _standardize_per_group(advantages, groups)
    return Batch(window, mask, context, action, logprobs, torch.tensor(np.concatenate(advantages), dtype=torch.float32),
                 torch.tensor(np.concatenate(returns), dtype=torch.float32), values, bc_mean, bc_std)


def _initial_networks(config: PPOConfig) -> tuple[Actor, Critic, dict]:
    if config.init == "random":
        control, policy = config.control, config.policy
        torch.manual_seed(config.seed)
        return Actor(policy, control), Critic(policy, control), {"init": "random"}
    loaded = load_policy(config.init)
    if not isinstance(loaded.actor, Actor):
        raise ConfigError("init", f"{config.init} is an ensemble of actors or a length-gated pair or a structure gate (learned-lr "
                                  "bundle --ensemble-with, --short-runs, --structural); PPO fine-tunes one actor: start from one of its members")
    return loaded.actor, loaded.critic, {"init": str(config.init), "init_meta": {k: loaded.meta.get(k) for k in ("trained_by", "experts")}}


@dataclass
class PPOLogRow:
    """One iteration of ``ppo_log.csv`` (the columns are these fields, in this order)."""

    iteration: int
    total_steps: int
    mean_return: float
    mean_final_train_loss: float
    diverged: int
    spiked: int
    updated_actor: int
    policy_loss: float
    value_loss: float
    entropy: float
    kl_to_bc: float
    approx_kl: float
    clip_fraction: float
    variants: str = ""  # with --variants: the variants this iteration ran, '+'-joined


_UPDATE_STATS = ("policy_loss", "value_loss", "entropy", "kl_to_bc", "approx_kl", "clip_fraction")


@dataclass
class PPOLearner:
    """What PPO trains and checkpoints: the networks, the frozen BC anchor, their optimizers, the log so far."""

    actor: Actor
    critic: Critic
    bc_actor: Actor
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    log: list[PPOLogRow] = field(default_factory=list)
    # With validate_every: {"iteration", "score", "scores"} per snapshot (iteration 0 = the start).
    validation: list[dict] = field(default_factory=list)

    @property
    def iterations_done(self) -> int:
        return len(self.log)


def train_ppo(config: PPOConfig, progress: bool = True, max_iterations_this_call: int | None = None) -> Path | None:
    """Fine-tune with PPO; checkpoints every iteration and resumes. Returns the policy path
    (None if stopped early by ``max_iterations_this_call``)."""
    with folder_lock(config.out):  # one run per folder (files.folder_lock)
        return _train_ppo(config, progress, max_iterations_this_call)


def _train_ppo(config: PPOConfig, progress: bool = True, max_iterations_this_call: int | None = None) -> Path | None:
    actor, critic, init_meta = _initial_networks(config)
    # The starting policy by content, not path: a BC policy retrained in place must not resume an old PPO run.
    init_meta["init_sha256"] = None if config.init == "random" else file_sha256(config.init)
    # The variants by content too: another variants.json under the same name must not resume this run.
    init_meta["variants_sha256"] = file_sha256(config.variants) if config.variants else None
    bc_actor = copy.deepcopy(actor).eval()  # the anchor: frozen at the starting weights
    for p in bc_actor.parameters():
        p.requires_grad_(False)
    learner = PPOLearner(actor, critic, bc_actor, torch.optim.Adam(actor.parameters(), lr=config.actor_lr, eps=1e-5),
                         torch.optim.Adam(critic.parameters(), lr=config.critic_lr, eps=1e-5))
    state_path = Path(config.out) / "train_state.safetensors"
    if config.resume and state_path.is_file():
        _load_state(state_path, config, learner, init_meta["init_sha256"], init_meta["variants_sha256"])
    backend = make_backend(config.backend, config.ray_address, config.workers, data=load_mnist() if config.backend == "local" else None)
    try:
        return _train_iterations(config, learner, backend, state_path=state_path, init_meta=init_meta, progress=progress,
                                 max_iterations_this_call=max_iterations_this_call)
    finally:
        backend.close()


def _train_iterations(config: PPOConfig, learner: PPOLearner, backend, *, state_path: Path, init_meta: dict, progress: bool,
                      max_iterations_this_call: int | None) -> Path | None:
    actor, critic, out = learner.actor, learner.critic, Path(config.out)
    control = actor.control_config
    start = learner.iterations_done
    end = config.iterations if max_iterations_this_call is None else min(config.iterations, start + max_iterations_this_call)
    header = [f.name for f in dataclasses.fields(PPOLogRow)]
    if learner.log:  # the log rows live in the saved state: a kill between its save and the CSV's write loses no row
        write_csv(out / "ppo_log.csv", header, [dataclasses.astuple(r) for r in learner.log])
    bar = tqdm(range(start, end), desc="PPO", disable=not progress, initial=start, total=config.iterations)
    variants = load_variants(config.variants) if config.variants else None
    if config.validate_every and not learner.validation:
        _validate(learner, 0, variants, out)
    for iteration in bar:
        actor.eval(), critic.eval()
        episodes, groups = [], []
        for chunk, (name, task, total_steps, base_lrs, seeds) in enumerate(iteration_chunks(config, iteration, variants)):
            # chunk 0 keeps the seed a one-variant iteration always had; the others get their own noise
            job = rollout_job_for(task, seeds, base_lrs, total_steps, control, config.reward,
                                  controller_seed=config.seed * 1_000_003 + iteration + chunk * 100_000_007)
            chunk_episodes = backend.collect(actor, job)
            episodes += chunk_episodes
            groups += [name] * len(chunk_episodes)
        batch = episodes_to_batch(episodes, actor, critic, learner.bc_actor, control, config, groups)
        actor.train(), critic.train()
        update_actor = iteration >= config.critic_warmup_iterations
        generator = torch.Generator().manual_seed(config.seed * 7919 + iteration)
        stats = ppo_update(actor, critic, learner.actor_opt, learner.critic_opt, batch, config, update_actor, generator)
        final_losses = [e.history.train_loss[e.history.steps - 1] for e in episodes if not e.diverged]
        row = PPOLogRow(
            iteration=iteration + 1, total_steps=max(e.history.total_steps for e in episodes),
            mean_return=float(np.mean([scaled_rewards(e, control, config.return_scale).sum() for e in episodes])),
            mean_final_train_loss=float(np.mean(final_losses)) if final_losses else math.nan,
            diverged=int(sum(e.diverged for e in episodes)), spiked=int(sum(spiked(e) for e in episodes)), updated_actor=int(update_actor),
            **{name: stats[name] for name in _UPDATE_STATS}, variants="+".join(dict.fromkeys(groups)) if variants else "")
        learner.log.append(row)
        if config.validate_every and (iteration + 1) % config.validate_every == 0:
            _validate(learner, iteration + 1, variants, out)
        bar.set_postfix(ret=f"{row.mean_return:.2f}", diverged=row.diverged)
        _save_state(state_path, config, learner, init_meta["init_sha256"], init_meta["variants_sha256"])
        write_csv(out / "ppo_log.csv", header, [dataclasses.astuple(r) for r in learner.log])
    if end < config.iterations:
        return None
    actor.eval(), critic.eval()
    path = out / "policy.safetensors"
    save_policy(path, actor, critic, {"trained_by": "ppo", **init_meta, "ppo_config": config_setting(config),
                                      "final_iteration": dataclasses.asdict(learner.log[-1])})
    if learner.validation:
        best = min(learner.validation, key=lambda row: row["score"])
        snapshot = load_policy(snapshot_path(out, best["iteration"]))
        save_policy(out / "best_policy.safetensors", snapshot.actor, snapshot.critic,
                    {**snapshot.meta, "chosen_by": "lowest validation score (training variants, validation seeds)", "validation_score": best["score"]})
    return path


def snapshot_path(out: Path, iteration: int) -> Path:
    """Where a PPO run in ``out`` keeps the policy it validated at ``iteration`` (one per validation.csv row)."""
    return out / "snapshots" / f"iteration-{iteration:04d}.safetensors"


def _validate(learner: PPOLearner, iteration: int, variants: list[dict], out: Path) -> None:
    """Score the deterministic actor on the validation runs, keep the snapshot, rewrite validation.csv."""
    from learned_lr.training.validation import validation_scores, validation_variants

    scores = validation_scores(learner.actor, validation_variants(variants))
    save_policy(snapshot_path(out, iteration), learner.actor, learner.critic, {"trained_by": "ppo", "iteration": iteration})
    learner.validation.append({"iteration": iteration, "score": float(scores.mean()), "scores": scores.tolist()})
    start = np.asarray(learner.validation[0]["scores"])
    write_csv(out / "validation.csv", ["iteration", "score", "change_vs_start", "runs_better_than_start"],
              [(r["iteration"], r["score"], float(np.mean(np.asarray(r["scores"]) - start)), int(np.sum(np.asarray(r["scores"]) < start - 1e-12)))
               for r in learner.validation])


def _save_state(path: Path, config: PPOConfig, learner: PPOLearner, init_sha256: str | None, variants_sha256: str | None = None) -> None:
    tensors = {f"actor.{k}": v for k, v in learner.actor.state_dict().items()}
    tensors.update({f"critic.{k}": v for k, v in learner.critic.state_dict().items()})
    tensors.update({f"bc_actor.{k}": v for k, v in learner.bc_actor.state_dict().items()})
    meta = {
        "iteration": learner.iterations_done,
        "init_sha256": init_sha256,
        "variants_sha256": variants_sha256,
        "log_rows": [dataclasses.asdict(row) for row in learner.log],
        "validation_rows": learner.validation,
        "config": config_setting(config),
        "policy_config": dataclasses.asdict(learner.actor.policy_config),
        "control_config": dataclasses.asdict(learner.actor.control_config),
        "actor_opt": flatten_state(learner.actor_opt.state_dict(), "actor_opt", tensors),
        "critic_opt": flatten_state(learner.critic_opt.state_dict(), "critic_opt", tensors),
    }
    save_checkpoint(path, tensors, meta, kind="ppo-train-state")


def _load_state(path: Path, config: PPOConfig, learner: PPOLearner, init_sha256: str | None, variants_sha256: str | None = None) -> None:
    tensors, meta = load_checkpoint(path, kind="ppo-train-state")
    if meta.get("variants_sha256") != variants_sha256:
        raise CheckpointError(f"{path} continues PPO on other variants than {config.variants} holds now; use another --out or --no-resume")
    if meta.get("init_sha256") != init_sha256:
        raise CheckpointError(f"{path} continues PPO from another starting policy than {config.init} is now; use another --out or --no-resume")
    ignore = ("iterations", "resume", "out", "backend", "ray_address", "workers")  # where rollouts run does not change them
    saved = {**config_setting(PPOConfig()), **meta["config"]}  # a setting added since: its default, which it then had
    if {k: v for k, v in saved.items() if k not in ignore} != {k: v for k, v in config_setting(config).items() if k not in ignore}:
        raise CheckpointError(f"{path} was written by a different PPO config; use another --out or --no-resume")
    try:
        log = [PPOLogRow(**row) for row in meta["log_rows"]]
    except TypeError as exc:  # a state written before the log had named fields
        raise CheckpointError(f"{path} holds a PPO log of an older format ({exc}); use another --out or --no-resume") from exc
    load_module_weights(learner.actor, tensors, "actor", path)
    load_module_weights(learner.critic, tensors, "critic", path)
    load_module_weights(learner.bc_actor, tensors, "bc_actor", path)
    learner.actor_opt.load_state_dict(unflatten_state(meta["actor_opt"], tensors))
    learner.critic_opt.load_state_dict(unflatten_state(meta["critic_opt"], tensors))
    learner.log[:] = log
    learner.validation[:] = meta.get("validation_rows", [])

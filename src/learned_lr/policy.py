"""Actor and critic: two separate small Transformer encoders over the observation window.

Tokenization: the W-step window is cut into W/P patches of P consecutive steps; each patch
(P x F features plus its P mask bits) is one token. With W=512 and P=16 that is 32 tokens
instead of 512, which cuts attention cost by ~256x and everything else by ~16x; BC fidelity
with patches is measured in the README. A learned summary token, fed with the decision's
context (remaining fraction now, how full the window is), is never masked, so an empty
history still gives a well-defined output.

The actor's action is the log of the LR as a fraction of the base LR. Its mean is squashed
into the bounds (a sigmoid), its spread is a learned, state-independent log-std floored at
``min_std``. Inputs are sanitized (NaN -> 0, clipped), so no observation can make the policy
emit NaN; the LR applied is the action clipped to the bounds (``control.clip_action``).

Example:
    >>> actor = Actor(PolicyConfig(), ControlConfig())
    >>> window, mask, context = torch.zeros(1, 512, 8), torch.zeros(1, 512), torch.tensor([[1.0, 0.0, 0.0]])
    >>> mean, std = actor(window, mask, context)
    >>> mean.shape, bool(std.min() >= 0.05)
    (torch.Size([1]), True)
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from learned_lr.checkpoint import CheckpointError, load_checkpoint, load_module_weights, save_checkpoint
from learned_lr.features import FEATURE_CLIP, NUM_CONTEXT, num_inputs
from learned_lr.gates import LengthGatedActor, StructureGatedActor, structure_gated
from learned_lr.settings import ConfigError, ControlConfig, PolicyConfig


def sanitize(x: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(x.float(), nan=0.0, posinf=FEATURE_CLIP, neginf=-FEATURE_CLIP).clamp(-FEATURE_CLIP, FEATURE_CLIP)


class WindowEncoder(nn.Module):
    """Patches of the window -> Transformer encoder -> the summary token's embedding."""

    def __init__(self, policy: PolicyConfig, control: ControlConfig):
        super().__init__()
        if control.window % policy.patch != 0:
            raise ConfigError("patch", f"window ({control.window}) must be a multiple of patch ({policy.patch})")
        self.patch = policy.patch
        self.num_tokens = control.window // policy.patch
        self.num_features = num_inputs(control.inputs)
        self.embed = nn.Linear(policy.patch * (self.num_features + 1), policy.d_model)
        self.embed_context = nn.Linear(NUM_CONTEXT, policy.d_model)
        self.summary_token = nn.Parameter(torch.zeros(1, 1, policy.d_model))
        self.position = nn.Parameter(torch.randn(1, self.num_tokens + 1, policy.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            policy.d_model, policy.heads, dim_feedforward=2 * policy.d_model, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, policy.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(policy.d_model)

    def forward(self, window: torch.Tensor, mask: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        batch = window.shape[0]
        window, context = sanitize(window), sanitize(context)
        mask = (torch.nan_to_num(mask.float(), nan=0.0) > 0.5).float()
        tokens = torch.cat([window * mask.unsqueeze(-1), mask.unsqueeze(-1)], dim=-1)
        tokens = tokens.reshape(batch, self.num_tokens, -1)
        patch_empty = mask.reshape(batch, self.num_tokens, self.patch).amax(-1) == 0
        summary = self.summary_token.expand(batch, -1, -1) + self.embed_context(context).unsqueeze(1)
        x = torch.cat([summary, self.embed(tokens)], dim=1) + self.position
        padding = torch.cat([torch.zeros(batch, 1, dtype=torch.bool, device=window.device), patch_empty], dim=1)
        return self.norm(self.encoder(x, src_key_padding_mask=padding)[:, 0])


class Actor(nn.Module):
    """Gaussian policy over the log LR factor; the mean is bounded, the spread floored."""

    def __init__(self, policy: PolicyConfig, control: ControlConfig):
        super().__init__()
        self.policy_config, self.control_config = policy, control
        self.encoder = WindowEncoder(policy, control)
        self.mean_head = nn.Linear(policy.d_model, 1)
        lo, hi = control.log_bounds
        self.register_buffer("log_low", torch.tensor(lo), persistent=False)
        self.register_buffer("log_high", torch.tensor(hi), persistent=False)
        self.log_std = nn.Parameter(torch.tensor(math.log(policy.init_std)))
        self.min_log_std = math.log(policy.min_std)

    def forward(self, window: torch.Tensor, mask: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std), each (B,): mean within the action bounds, std >= min_std."""
        raw = self.mean_head(self.encoder(window, mask, context)).squeeze(-1)
        # Final guard: if weights themselves went bad, fall back to the lowest (safest) LR.
        raw = torch.nan_to_num(raw, nan=-1e4, posinf=1e4, neginf=-1e4)
        mean = self.log_low + (self.log_high - self.log_low) * torch.sigmoid(raw)
        std = torch.exp(self.log_std.clamp(min=self.min_log_std, max=2.0)).expand_as(mean)
        return mean, std

    def distribution(self, window: torch.Tensor, mask: torch.Tensor, context: torch.Tensor) -> torch.distributions.Normal:
        mean, std = self(window, mask, context)
        return torch.distributions.Normal(mean, std)


class EnsembleActor(nn.Module):
    """Several trained actors deciding together: the mean of their log-LR means (the geometric mean of their LRs).

    Why: one BC draw of a recipe moves its benchmark score by up to 15 points (docs/results.md section 7),
    through runs that one draw fails and another does not; averaging the draws' decisions trades that
    variance for one forward per member per decision. The mean of in-bounds means stays in bounds, and
    each member already maps bad inputs or weights to a finite action, so the guarantees carry over.
    Every member must read the same inputs under the same controls (checked here).

    Example:
        >>> members = [Actor(PolicyConfig(), ControlConfig()) for _ in range(2)]
        >>> window, mask, context = torch.zeros(1, 512, 8), torch.zeros(1, 512), torch.tensor([[1.0, 0.0, 0.0]])
        >>> mean, _ = EnsembleActor(members)(window, mask, context)
        >>> bool(torch.allclose(mean, (members[0](window, mask, context)[0] + members[1](window, mask, context)[0]) / 2))
        True
    """

    def __init__(self, members: list[Actor]):
        super().__init__()
        if len(members) < 2:
            raise ConfigError("ensemble_with", f"an ensemble needs 2 or more actors, got {len(members)}")
        first = members[0]
        for member in members[1:]:
            if (member.policy_config, member.control_config) != (first.policy_config, first.control_config):
                raise ConfigError("ensemble_with", "every member must have the same policy and control configs: got "
                                  f"{member.policy_config}, {member.control_config} beside {first.policy_config}, {first.control_config}")
        self.policy_config, self.control_config = first.policy_config, first.control_config
        self.members = nn.ModuleList(members)

    @property
    def encoder(self) -> WindowEncoder:
        """The first member's encoder, for the window's shape (every member's is the same shape)."""
        return self.members[0].encoder

    def forward(self, window: torch.Tensor, mask: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std), each (B,): the members' means and spreads, averaged. A module listed more than once (an actor
        weighted by listing it again; ``tie_equal_members``) runs once and counts as often as it is listed: the same
        numbers, bit for bit, as running each copy."""
        outputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for member in self.members:
            if id(member) not in outputs:
                outputs[id(member)] = member(window, mask, context)
        means, stds = zip(*(outputs[id(member)] for member in self.members))
        return torch.stack(means).mean(0), torch.stack(stds).mean(0)

    def tie_equal_members(self) -> None:
        """Make members with equal weights one module, so that it runs once per decision however often it is listed.

        Why: the default weighs its cautious actor by listing it three times (docs/results.md section 7); untied,
        each copy's forward ran on every decision (1.105x the MLP step against the issue's 1.10x). Tied members share
        their tensors, so the state dict, the hash and every decision stay as they were.
        """
        kept: list[Actor] = []
        for index, member in enumerate(self.members):
            twin = next((k for k in kept if same_weights(k, member)), None)
            if twin is None:
                kept.append(member)
            else:
                self.members[index] = twin

    def distribution(self, window: torch.Tensor, mask: torch.Tensor, context: torch.Tensor) -> torch.distributions.Normal:
        mean, std = self(window, mask, context)
        return torch.distributions.Normal(mean, std)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    """Whether two modules hold equal tensors under every name of ``a``'s state dict (tests use it too)."""
    other = b.state_dict()
    return all(torch.equal(v, other[k]) for k, v in a.state_dict().items())


# What an observation holds and what an action means: two actors that agree on these can take each other's
# states and decisions, whatever cadence each was trained at (the cadence is the bundle's to set).
OBSERVATION_AND_ACTION_FIELDS = ("inputs", "window", "min_lr_factor", "max_lr_factor")


class Critic(nn.Module):
    """State value of the observation (its own encoder: no shared weights with the actor)."""

    def __init__(self, policy: PolicyConfig, control: ControlConfig):
        super().__init__()
        self.encoder = WindowEncoder(policy, control)
        self.value_head = nn.Linear(policy.d_model, 1)

    def forward(self, window: torch.Tensor, mask: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.encoder(window, mask, context)).squeeze(-1)


def single_decision_fn(actor: Actor | EnsembleActor) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """A fast no-grad function (window (1, W, F), mask (1, W), context (1, C)) -> action mean (1,).

    Why trace: a batch-1 forward over 33 tokens is ~50 tiny ops, and Python dispatch, not
    arithmetic, is most of its time (2.6 ms eager vs 1.0 ms traced on the 2-core CPU; see
    ``benchmarks/policy_latency.py``). ``LearnedLR`` decides every K steps of a user's run, so
    this is paid inside their training loop. The trace is frozen (weights become constants,
    so the function keeps the weights the actor has now) and runs under inference mode; the
    two cut another ~9%. It is checked against the eager actor on an empty, a partial and a
    full window; if tracing fails or disagrees, the eager actor is used. Either way it runs a
    copy, so later changes to ``actor`` (training, ``train()`` mode) do not reach it.
    """
    actor = copy.deepcopy(actor).eval()
    window = actor.encoder.num_tokens * actor.encoder.patch

    def eager(w: torch.Tensor, m: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return actor(w, m, c)[0]

    generator = torch.Generator().manual_seed(0)
    probes = []
    for filled in (0, 1, window // 2 + 3, window):
        mask = torch.zeros(1, window)
        mask[:, window - filled:] = 1.0
        probes.append((torch.randn(1, window, actor.encoder.num_features, generator=generator), mask, torch.rand(1, NUM_CONTEXT, generator=generator)))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.freeze(torch.jit.trace(actor, probes[-1], check_trace=False).eval())
        with torch.inference_mode():
            agrees = all(torch.allclose(traced(*probe)[0], eager(*probe), atol=1e-5) for probe in probes)
    except Exception:  # noqa: BLE001 - any tracing failure: the eager actor is always correct
        return eager
    if not agrees:
        return eager

    def fast(w: torch.Tensor, m: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return traced(w, m, c)[0]

    return fast


@dataclass
class LoadedPolicy:
    """A policy read from a checkpoint: networks, their configs, and the training metadata."""

    # an ensemble, a length-gated pair or a structure gate: actor-only policies made by ``bundle_policy(..., ensemble_with=...,
    # short_runs=..., structural=...)``
    actor: Actor | EnsembleActor | LengthGatedActor | StructureGatedActor
    critic: Critic
    policy_config: PolicyConfig
    control_config: ControlConfig
    meta: dict


def deciding_parts(actor: nn.Module) -> list[Actor | EnsembleActor]:
    """Every side of a gated actor (each one actor or an ensemble); ``[actor]`` for an ungated one."""
    if isinstance(actor, LengthGatedActor):
        return [*deciding_parts(actor.main), actor.short]
    if isinstance(actor, StructureGatedActor):
        return [actor.plain, actor.structural]
    return [actor]


def policy_sha256(policy: LoadedPolicy) -> str:
    """SHA-256 of what sets the LRs: the actor's weights and its policy and control configs.

    ``LearnedLR`` stores it in its ``state_dict`` so a run is never resumed under another policy.
    Unlike a file hash it also identifies a policy that was never saved (one being trained).
    """
    digest = hashlib.sha256()
    configs = {"policy_config": dataclasses.asdict(policy.policy_config), "control_config": policy.control_config.identity()}
    if isinstance(policy.actor, LengthGatedActor):  # (only then, so the hashes of the other policies stay as they were)
        configs["short_run_steps"] = policy.actor.short_run_steps
    structure = structure_gated(policy.actor)
    if structure is not None:  # (likewise)
        configs["structure_min_layers"] = structure.min_layers
        if not structure.by_zero_start:  # (only then: the gates that also read zero starts keep their hashes)
            configs["structure_by_zero_start"] = False
    digest.update(json.dumps(configs, sort_keys=True).encode())
    for name, tensor in sorted(policy.actor.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", copy=True).contiguous().numpy().tobytes())
    return digest.hexdigest()


def saved_policy_sha256(path: str | Path) -> str:
    """``policy_sha256`` of the policy saved at ``path``: the key of every cached result a policy produced.

    Not the file's bytes: a file rewritten with the same decisions (another storage format, a new
    note in its metadata) keeps its cached runs, and a policy retrained in place does not.

    >>> from learned_lr.bundled import BUNDLED_POLICY
    >>> saved_policy_sha256(BUNDLED_POLICY) == policy_sha256(load_policy(BUNDLED_POLICY))
    True
    """
    return policy_sha256(load_policy(path))


def save_policy(path: str | Path, actor: Actor | EnsembleActor | LengthGatedActor | StructureGatedActor, critic: Critic,
                meta: dict | None = None) -> None:
    """Write actor and critic weights with their configs (safetensors + JSON metadata)."""
    tensors = {f"actor.{k}": v for k, v in actor.state_dict().items()}
    tensors.update({f"critic.{k}": v for k, v in critic.state_dict().items()})
    main, short = (actor.main, actor.short) if isinstance(actor, LengthGatedActor) else (actor, None)
    gate = structure_gated(actor)
    main, structural = (gate.plain, gate.structural) if gate is not None else (main, None)
    document = {
        "policy_config": dataclasses.asdict(actor.policy_config),
        "control_config": dataclasses.asdict(actor.control_config),
        **(meta or {}),
        **({"ensemble_members": len(main.members)} if isinstance(main, EnsembleActor) else {}),
        **({"short_run_steps": actor.short_run_steps} if isinstance(actor, LengthGatedActor) else {}),
        **({"short_run_members": len(short.members)} if isinstance(short, EnsembleActor) else {}),
        **({"structure_min_layers": gate.min_layers, "structure_by_zero_start": gate.by_zero_start} if gate is not None else {}),
        **({"structural_members": len(structural.members)} if isinstance(structural, EnsembleActor) else {}),
    }
    save_checkpoint(path, tensors, document, kind="policy")


MAX_ENSEMBLE_MEMBERS = 16


def _check_config_matches_weights(path, tensors: dict[str, torch.Tensor], policy: PolicyConfig, control: ControlConfig,
                                  prefix: str = "actor") -> None:
    """Refuse metadata that does not describe the stored actor, before any network is built from it
    (a hostile ``d_model`` or ``window`` would otherwise allocate gigabytes first)."""
    expected = {f"{prefix}.encoder.embed.weight": (policy.d_model, policy.patch * (num_inputs(control.inputs) + 1)),
                f"{prefix}.encoder.position": (1, control.window // policy.patch + 1, policy.d_model)}
    for key, shape in expected.items():
        stored = tuple(tensors[key].shape) if key in tensors else None
        if stored != shape:
            raise CheckpointError(f"checkpoint {path}: its config implies {key} of shape {shape}, the file holds {stored}")
    layer_key = f"{prefix}.encoder.encoder.layers."
    layers = {k[len(layer_key):].split(".")[0] for k in tensors if k.startswith(layer_key)}
    if len(layers) != policy.layers:
        raise CheckpointError(f"checkpoint {path}: its config says {policy.layers} layers, the file holds {len(layers)}")


def load_policy(path: str | Path) -> LoadedPolicy:
    """Read a policy written by ``save_policy``; ``CheckpointError`` naming the file if it cannot."""
    tensors, meta = load_checkpoint(path, kind="policy")
    try:
        policy_config = PolicyConfig(**meta["policy_config"])
        control_config = ControlConfig(**meta["control_config"])
    except (KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {path} has an invalid policy config ({exc})") from exc
    members, short_members, structural_members = (meta.get(key, 1) for key in ("ensemble_members", "short_run_members", "structural_members"))
    for key, count in (("ensemble_members", members), ("short_run_members", short_members), ("structural_members", structural_members)):
        if not isinstance(count, int) or not 1 <= count <= MAX_ENSEMBLE_MEMBERS:
            raise CheckpointError(f"checkpoint {path}: {key} must be an integer in 1..{MAX_ENSEMBLE_MEMBERS}, got {count!r}")
    gate = meta.get("short_run_steps")
    if gate is not None and not (isinstance(gate, int) and gate >= 2):
        raise CheckpointError(f"checkpoint {path}: short_run_steps must be an integer >= 2, got {gate!r}")
    min_layers = meta.get("structure_min_layers")
    if min_layers is not None and not (isinstance(min_layers, int) and not isinstance(min_layers, bool) and min_layers >= 2):
        raise CheckpointError(f"checkpoint {path}: structure_min_layers must be an integer >= 2, got {min_layers!r}")
    by_zero_start = meta.get("structure_by_zero_start", True)
    if not isinstance(by_zero_start, bool):
        raise CheckpointError(f"checkpoint {path}: structure_by_zero_start must be true or false, got {by_zero_start!r}")
    long_side = {"": members} if min_layers is None else {".plain": members, ".structural": structural_members}
    main_prefix = "actor" if gate is None else "actor.main"
    parts = {f"{main_prefix}{name}": count for name, count in long_side.items()} | ({} if gate is None else {"actor.short": short_members})
    for part, count in parts.items():
        for prefix in [part] if count == 1 else [f"{part}.members.{i}" for i in range(count)]:
            _check_config_matches_weights(path, tensors, policy_config, control_config, prefix)
    new = lambda count: (Actor(policy_config, control_config) if count == 1  # noqa: E731
                         else EnsembleActor([Actor(policy_config, control_config) for _ in range(count)]))
    main = new(members) if min_layers is None else StructureGatedActor(new(members), new(structural_members), min_layers, by_zero_start)
    actor: Actor | EnsembleActor | LengthGatedActor | StructureGatedActor = main if gate is None else LengthGatedActor(main, new(short_members), gate)
    critic = Critic(policy_config, control_config)
    load_module_weights(actor, tensors, "actor", path)
    if any(k.startswith("critic.") for k in tensors):
        load_module_weights(critic, tensors, "critic", path)
    # else: an actor-only policy (the bundled one); the critic stays freshly initialized
    if not all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point()):
        raise CheckpointError(f"checkpoint {path} holds non-finite weights")
    for part in deciding_parts(actor):
        if isinstance(part, EnsembleActor):
            part.tie_equal_members()
    actor.eval(), critic.eval()
    return LoadedPolicy(actor, critic, policy_config, control_config, meta)

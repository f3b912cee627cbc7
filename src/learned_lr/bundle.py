"""Making a shippable policy from trained ones (``learned-lr bundle``): an actor-only file, with the cadence it
runs at, the actors that decide together and the actors that take short runs.

Example:
    >>> import tempfile
    >>> from learned_lr.policy import Actor, Critic, load_policy, save_policy
    >>> from learned_lr.settings import ControlConfig, PolicyConfig
    >>> folder = Path(tempfile.mkdtemp())
    >>> for seed in (0, 1):
    ...     _ = torch.manual_seed(seed)
    ...     save_policy(folder / f"draw{seed}.safetensors", Actor(PolicyConfig(), ControlConfig()), Critic(PolicyConfig(), ControlConfig()))
    >>> bundle_policy(folder / "draw0.safetensors", folder / "pair.safetensors", {"produced_by": "a doctest"},
    ...               decision_interval=32, ensemble_with=[folder / "draw1.safetensors"])
    >>> pair = load_policy(folder / "pair.safetensors")
    >>> len(pair.actor.members), pair.control_config.decision_interval, pair.meta["trained_decision_interval"]
    (2, 32, 8)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from learned_lr.checkpoint import CheckpointError, save_checkpoint
from learned_lr.policy import MAX_ENSEMBLE_MEMBERS, OBSERVATION_AND_ACTION_FIELDS, Actor, EnsembleActor, LengthGatedActor, LoadedPolicy, load_policy
from learned_lr.settings import ControlConfig

# What a bundle records about its short side; a new short side replaces all of it.
_SHORT_SIDE_KEYS = ("short_run_steps", "short_run_policy", "short_run_members")


def bundle_policy(source: str | Path, destination: str | Path, meta: dict, decision_interval: int | None = None,
                  max_lr_rise: float | None = None, start: tuple[int, int] | None = None, rise_span_fraction: float | None = None,
                  rise_span_while_falling: bool | None = None, rise_span_distance: float | None = None,
                  rise_span_from_step: int | None = None, ensemble_with: list[str | Path] | tuple = (), short_runs: tuple[str | Path, int] | None = None,
                  cooldown: tuple[float, int] | None = None, after_loss_rise: float | None = None,
                  distance_skips_zero_start: bool | None = None, grad_norms_from_first_nonzero: bool | None = None,
                  layer_groups: int | None = None) -> None:
    """Write the actor of the policy at ``source`` (all ``LearnedLR`` needs) to ``destination``, with its
    training metadata, ``bundled_from`` and ``meta`` (how it was produced and scored).

    ``decision_interval``: run the same actor deciding every this many steps instead of the K it was
    trained at (a decision is most of what the drop-in costs a small model, so a larger K is cheaper);
    the K it was trained at is kept as ``trained_decision_interval``. Whether the actor still schedules
    well at the new K is a question for the benchmark, not something this checks. ``max_lr_rise``: the
    same actor under that rise limit (``ControlConfig.max_lr_rise``; 0 lifts one, and its ``rise_span_fraction``
    with it), judged the same way; ``rise_span_fraction``: a short run's rise limit per that share of its steps
    (``rise_span_while_falling``: only after a block whose training loss fell; ``rise_span_distance``: only while the
    weights are that close to their initial ones, relative to them; ``rise_span_from_step``: only from that step on);
    ``cooldown``: (fraction, max steps), the LR of a run's last ``fraction`` of its steps decayed linearly to zero, on
    runs shorter than ``max steps`` (0: every run) (``ControlConfig.cooldown_fraction``, ``cooldown_max_steps``; (0, 0): none);
    ``after_loss_rise``: r, after a block whose training loss rose a decision sets at most r times the LR it starts from
    (``ControlConfig.after_loss_rise``; 0: off); ``distance_skips_zero_start``: its distance features over the layers
    that started away from zero only (``ControlConfig.distance_skips_zero_start``); ``grad_norms_from_first_nonzero``:
    a layer whose first gradient is zero reads its norms relative to its first non-zero one; ``layer_groups``: the min
    and max over layers over that many depth groups of a deeper model (``ControlConfig.layer_groups``; 0: off);
    ``start``: (interval, steps), its decisions every ``interval`` steps over the run's first ``steps``
    (``ControlConfig.start_decision_interval``, ``start_steps``; (0, 0): none).
    ``ensemble_with``: further single actors that decide with ``source``'s, as an ``EnsembleActor`` (the
    mean of their log-LRs), at the bundle's cadence; each must have ``source``'s network and
    ``OBSERVATION_AND_ACTION_FIELDS`` (the K each was trained at may differ, as the short side's may). A ``source``
    that is an ensemble already gets them as further members (after its own, in order), and a length-gated
    ``source`` gets them on its long-run side, its short side kept.
    ``short_runs``: (policy, N): runs of fewer than N steps are scheduled by that policy's actor(s) alone,
    the rest by the actor(s) above (``LengthGatedActor``), both at the bundle's cadence; it must have the
    same network and ``OBSERVATION_AND_ACTION_FIELDS`` as ``source`` (either may be an ensemble; a gated
    ``source`` keeps its long-run side and gets this short one instead of its own).
    """
    loaded = load_policy(source)  # refuse anything that is not a loadable policy
    saved = {k: v for k, v in loaded.meta.items() if k not in ("format", "version", "kind")}
    gated = isinstance(loaded.actor, LengthGatedActor)
    main = loaded.actor.main if gated else loaded.actor
    tensors = {f"actor.{k}": v for k, v in main.state_dict().items()}
    if ensemble_with:
        tensors = _ensemble_tensors(source, loaded, main, ensemble_with)
        saved.update({"ensemble_members": len(actors_of(main)) + len(ensemble_with),
                      "ensemble_of": [*saved.get("ensemble_of", [str(source)]), *map(str, ensemble_with)]})
    if short_runs:  # a new short side (a gated source's old one is dropped)
        short_path, steps = short_runs
        short = load_policy(short_path)
        if isinstance(short.actor, LengthGatedActor):
            raise CheckpointError(f"checkpoint {short_path} is length-gated: the short-run policy must be an actor or an ensemble")
        if short.policy_config != loaded.policy_config or _reads(short.control_config) != _reads(loaded.control_config):
            raise CheckpointError(f"checkpoint {short_path} was trained with other policy or control configs than {source}: the "
                                  f"short-run actor must have the same network and {', '.join(OBSERVATION_AND_ACTION_FIELDS)}")
        saved = {k: v for k, v in saved.items() if k not in _SHORT_SIDE_KEYS}
        saved.update({"short_run_steps": steps, "short_run_policy": str(short_path),
                      **({"short_run_members": len(short.actor.members)} if isinstance(short.actor, EnsembleActor) else {})})
        short_actor = short.actor
    else:
        short_actor = loaded.actor.short if gated else None  # a gated source keeps its short side
    if short_actor is not None:
        tensors = {"actor.main." + k[len("actor."):]: v for k, v in tensors.items()}
        tensors.update({f"actor.short.{k}": v for k, v in short_actor.state_dict().items()})
    trained = loaded.control_config
    if max_lr_rise == 0 and rise_span_fraction is None:
        rise_span_fraction = 0.0  # a span means nothing without a limit
    if rise_span_fraction == 0:  # nor its conditions without a span
        rise_span_while_falling = False if rise_span_while_falling is None else rise_span_while_falling
        rise_span_distance = 0.0 if rise_span_distance is None else rise_span_distance
        rise_span_from_step = 0 if rise_span_from_step is None else rise_span_from_step
    asked = {"decision_interval": decision_interval, "max_lr_rise": max_lr_rise, "rise_span_fraction": rise_span_fraction,
             "rise_span_while_falling": rise_span_while_falling, "rise_span_distance": rise_span_distance,
             "rise_span_from_step": rise_span_from_step,
             **({} if start is None else {"start_decision_interval": start[0], "start_steps": start[1]}),
             "after_loss_rise": after_loss_rise, "distance_skips_zero_start": distance_skips_zero_start,
             "grad_norms_from_first_nonzero": grad_norms_from_first_nonzero, "layer_groups": layer_groups,
             **({} if cooldown is None else {"cooldown_fraction": cooldown[0], "cooldown_max_steps": cooldown[1]})}
    changes = {name: value for name, value in asked.items() if value is not None and value != getattr(trained, name)}
    if changes:
        saved["control_config"] = dataclasses.asdict(dataclasses.replace(trained, **changes))  # validates them
    if "decision_interval" in changes:
        saved.setdefault("trained_decision_interval", trained.decision_interval)
    if "max_lr_rise" in changes:
        saved.setdefault("trained_max_lr_rise", trained.max_lr_rise)
    save_checkpoint(destination, tensors, {**saved, "bundled_from": str(source), **meta}, kind="policy")


def _reads(control: ControlConfig) -> list:
    """What an actor reads and what its action means; the cadence and the rise limit are the bundle's to set."""
    return [getattr(control, field) for field in OBSERVATION_AND_ACTION_FIELDS]


def actors_of(actor: Actor | EnsembleActor) -> list[Actor]:
    """The single actors that decide in ``actor``: its members, or itself."""
    return list(actor.members) if isinstance(actor, EnsembleActor) else [actor]


def _ensemble_tensors(first_path, first: LoadedPolicy, main: Actor | EnsembleActor, others: list | tuple) -> dict[str, torch.Tensor]:
    """``main`` (the actor(s) of ``first``, read from ``first_path``) and then the actors of ``others`` as one
    ``EnsembleActor``'s tensors (``actor.members.<i>.*``); refuse members that differ or are ensembles."""
    actors = actors_of(main)
    for path in others:
        member = load_policy(path)
        if not isinstance(member.actor, Actor):
            raise CheckpointError(f"checkpoint {path} is an ensemble or length-gated already: give its actors instead")
        if member.policy_config != first.policy_config or _reads(member.control_config) != _reads(first.control_config):
            raise CheckpointError(f"checkpoint {path} was trained with other policy or control configs than {first_path}: an "
                                  f"ensemble's members must have the same network and {', '.join(OBSERVATION_AND_ACTION_FIELDS)}")
        actors.append(member.actor)
    if len(actors) > MAX_ENSEMBLE_MEMBERS:
        raise CheckpointError(f"an ensemble holds at most {MAX_ENSEMBLE_MEMBERS} actors: {first_path}'s {len(actors_of(main))} "
                              f"and {len(others)} more make {len(actors)}")
    return {f"actor.members.{index}.{k}": v for index, actor in enumerate(actors) for k, v in actor.state_dict().items()}

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
    ...               control={"decision_interval": 32}, ensemble_with=[folder / "draw1.safetensors"])
    >>> pair = load_policy(folder / "pair.safetensors")
    >>> len(pair.actor.members), pair.control_config.decision_interval, pair.meta["trained_decision_interval"]
    (2, 32, 8)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from learned_lr.checkpoint import CheckpointError, save_checkpoint
from learned_lr.gates import LengthGatedActor, StructureGatedActor
from learned_lr.policy import MAX_ENSEMBLE_MEMBERS, OBSERVATION_AND_ACTION_FIELDS, Actor, EnsembleActor, LoadedPolicy, load_policy
from learned_lr.settings import ControlConfig

# What a bundle records about its short side and its structural side; a new side replaces all of its keys.
_SHORT_SIDE_KEYS = ("short_run_steps", "short_run_policy", "short_run_members")
_STRUCTURAL_SIDE_KEYS = ("structure_min_layers", "structure_by_zero_start", "structural_policy", "structural_members")


def bundle_policy(source: str | Path, destination: str | Path, meta: dict, control: dict | None = None,
                  ensemble_with: list[str | Path] | tuple = (), short_runs: tuple[str | Path, int] | None = None,
                  structural: tuple[str | Path, int] | None = None, structural_by_zero_start: bool = True) -> None:
    """Write the actor of the policy at ``source`` (all ``LearnedLR`` needs) to ``destination``, with its
    training metadata, ``bundled_from`` and ``meta`` (how it was produced and scored).

    ``control``: ``ControlConfig`` fields to run the same actor under, by name (a value of None: as the policy has
    it); anything else is kept as trained. What each does is ``ControlConfig``'s to say: how the actor sees a run
    (``inputs`` and the action's bounds cannot change: ``OBSERVATION_AND_ACTION_FIELDS``) and what the loop does
    with its decisions, e.g. ``decision_interval`` (a larger K costs the drop-in less; whether the actor still
    schedules well at it is for the benchmark to say, not something this checks), ``max_lr_rise`` (0 lifts a limit,
    and its ``rise_span_fraction`` with it; a span of 0 drops the span's conditions), ``start_decision_interval``
    with ``start_steps``, ``cooldown_fraction`` with ``cooldown_max_steps``, ``after_loss_rise``,
    ``distance_skips_zero_start``, ``grad_norms_from_first_nonzero``, ``grad_norms_skip_zero_start``,
    ``layer_groups``. A changed K is recorded as ``trained_decision_interval``, a changed limit as
    ``trained_max_lr_rise``.
    ``ensemble_with``: further single actors that decide with ``source``'s, as an ``EnsembleActor`` (the
    mean of their log-LRs), at the bundle's cadence; each must have ``source``'s network and
    ``OBSERVATION_AND_ACTION_FIELDS`` (the K each was trained at may differ, as the short side's may). A ``source``
    that is an ensemble already gets them as further members (after its own, in order), and a length-gated
    ``source`` gets them on its long-run side, its short side kept.
    ``short_runs``: (policy, N): runs of fewer than N steps are scheduled by that policy's actor(s) alone,
    the rest by the actor(s) above (``LengthGatedActor``), both at the bundle's cadence; it must have the
    same network and ``OBSERVATION_AND_ACTION_FIELDS`` as ``source`` (either may be an ensemble; a gated
    ``source`` keeps its long-run side and gets this short one instead of its own).
    ``structural``: (policy, N): on runs of models with N layers or more, or with a layer whose first gradient is zero,
    the long-run side is that policy's (its long-run side, if it is length-gated), on any other model the one above
    (``gates.StructureGatedActor``; ``structural_by_zero_start=False``: by the layer count alone); same network and
    fields again. A structure-gated ``source`` keeps its structural side unless a new one is given, and takes no
    ``ensemble_with`` (ensemble its sides first).
    """
    loaded = load_policy(source)  # refuse anything that is not a loadable policy
    saved = {k: v for k, v in loaded.meta.items() if k not in ("format", "version", "kind")}
    gated = isinstance(loaded.actor, LengthGatedActor)
    main = loaded.actor.main if gated else loaded.actor
    tensors = {f"actor.{k}": v for k, v in main.state_dict().items()}
    if ensemble_with and isinstance(main, StructureGatedActor):
        raise CheckpointError(f"checkpoint {source} is structure-gated: ensemble the actors of each side first, then gate them")
    if ensemble_with:
        tensors = _ensemble_tensors(source, loaded, main, ensemble_with)
        saved.update({"ensemble_members": len(actors_of(main)) + len(ensemble_with),
                      "ensemble_of": [*saved.get("ensemble_of", [str(source)]), *map(str, ensemble_with)]})
    if structural:  # a new structural side (a structure-gated source's old one is dropped)
        tensors, saved = _structural_tensors(source, loaded, main, tensors, saved, structural)
        saved["structure_by_zero_start"] = bool(structural_by_zero_start)
    if short_runs:  # a new short side (a gated source's old one is dropped)
        short_path, steps = short_runs
        short = load_policy(short_path)
        if isinstance(short.actor, LengthGatedActor):
            raise CheckpointError(f"checkpoint {short_path} is length-gated: the short-run policy must be an actor or an ensemble")
        _check_reads_as(short_path, short, source, loaded, "the short-run actor")
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
    asked = {name: value for name, value in (control or {}).items() if value is not None}
    unknown = sorted(set(asked) - {f.name for f in dataclasses.fields(ControlConfig)} | set(OBSERVATION_AND_ACTION_FIELDS) & set(asked))
    if unknown:
        raise ValueError(f"a bundle cannot set {', '.join(unknown)}: not a ControlConfig field, or what the actor was trained to read")
    if asked.get("max_lr_rise") == 0:
        asked.setdefault("rise_span_fraction", 0.0)  # a span means nothing without a limit
    if asked.get("rise_span_fraction") == 0:  # nor its conditions without a span
        for name, off in (("rise_span_while_falling", False), ("rise_span_distance", 0.0), ("rise_span_from_step", 0)):
            asked.setdefault(name, off)
    changes = {name: value for name, value in asked.items() if value != getattr(trained, name)}
    if changes:
        saved["control_config"] = dataclasses.asdict(dataclasses.replace(trained, **changes))  # validates them
    if "decision_interval" in changes:
        saved.setdefault("trained_decision_interval", trained.decision_interval)
    if "max_lr_rise" in changes:
        saved.setdefault("trained_max_lr_rise", trained.max_lr_rise)
    save_checkpoint(destination, tensors, {**saved, "bundled_from": str(source), **meta}, kind="policy")


def _structural_tensors(source, loaded: LoadedPolicy, main, tensors: dict, saved: dict, structural: tuple) -> tuple[dict, dict]:
    """``tensors`` (the long-run side of ``source``, prefix ``actor.``) as the plain side of a structure gate whose
    structural side is the long-run side of the policy ``structural[0]``, at ``structural[1]`` layers; and the metadata."""
    path, min_layers = structural
    if not isinstance(min_layers, int) or isinstance(min_layers, bool) or min_layers < 2:
        raise ValueError(f"the structure gate's layer count must be an integer >= 2, got {min_layers!r}")
    other = load_policy(path)
    side = other.actor.main if isinstance(other.actor, LengthGatedActor) else other.actor
    if isinstance(side, StructureGatedActor):
        raise CheckpointError(f"checkpoint {path} is structure-gated: the structural side must be an actor or an ensemble")
    _check_reads_as(path, other, source, loaded, "the structural actor")
    if isinstance(main, StructureGatedActor):  # keep its plain side only
        tensors = {"actor." + k[len("actor.plain."):]: v for k, v in tensors.items() if k.startswith("actor.plain.")}
    tensors = {"actor.plain." + k[len("actor."):]: v for k, v in tensors.items()}
    tensors.update({f"actor.structural.{k}": v for k, v in side.state_dict().items()})
    saved = {k: v for k, v in saved.items() if k not in _STRUCTURAL_SIDE_KEYS}
    saved.update({"structure_min_layers": min_layers, "structural_policy": str(path),
                  **({"structural_members": len(side.members)} if isinstance(side, EnsembleActor) else {})})
    return tensors, saved


def _reads(control: ControlConfig) -> list:
    """What an actor reads and what its action means; the cadence and the rise limit are the bundle's to set."""
    return [getattr(control, field) for field in OBSERVATION_AND_ACTION_FIELDS]


def _check_reads_as(path, other: LoadedPolicy, source, loaded: LoadedPolicy, who: str) -> None:
    """Refuse ``other`` (read from ``path``) as a part of a bundle of ``loaded`` (from ``source``) unless it has the same
    network and reads the same (``OBSERVATION_AND_ACTION_FIELDS``); ``who`` names the part in the message."""
    if other.policy_config != loaded.policy_config or _reads(other.control_config) != _reads(loaded.control_config):
        raise CheckpointError(f"checkpoint {path} was trained with other policy or control configs than {source}: {who} "
                              f"must have the same network and {', '.join(OBSERVATION_AND_ACTION_FIELDS)}")


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
        _check_reads_as(path, member, first_path, first, "an ensemble's members")
        actors.append(member.actor)
    if len(actors) > MAX_ENSEMBLE_MEMBERS:
        raise CheckpointError(f"an ensemble holds at most {MAX_ENSEMBLE_MEMBERS} actors: {first_path}'s {len(actors_of(main))} "
                              f"and {len(others)} more make {len(actors)}")
    return {f"actor.members.{index}.{k}": v for index, actor in enumerate(actors) for k, v in actor.state_dict().items()}

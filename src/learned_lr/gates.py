"""Deciders chosen once per run, never per decision: by the run's length (``LengthGatedActor``) and by the model's
structure (``StructureGatedActor``). ``actor_for_run`` picks the actor that schedules a given run.

A length gate may hold a structure gate on its long-run side (``LengthGatedActor(StructureGatedActor(...), short, N)``);
every side is one trained actor or an ``policy.EnsembleActor``. Each gate reads what a run tells it when it starts, so a
run gets one side's decisions exactly and pays for one side's forward per decision.

Example:
    >>> from learned_lr.policy import Actor
    >>> from learned_lr.settings import ControlConfig, PolicyConfig
    >>> plain, cautious, short = (Actor(PolicyConfig(), ControlConfig()) for _ in range(3))
    >>> gated = LengthGatedActor(StructureGatedActor(plain, cautious, min_layers=6), short, 300)
    >>> actor_for_run(gated, 100) is short, actor_for_run(gated, 1000, (3, 0)) is plain
    (True, True)
    >>> actor_for_run(gated, 1000, (8, 0)) is cautious, actor_for_run(gated, 1000, (2, 1)) is cautious
    (True, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from learned_lr.settings import ConfigError

if TYPE_CHECKING:
    from learned_lr.policy import Actor, EnsembleActor, WindowEncoder


def _check_same_configs(first: nn.Module, second: nn.Module, option: str, what: str) -> None:
    if (second.policy_config, second.control_config) != (first.policy_config, first.control_config):
        raise ConfigError(option, f"{what} must have the same policy and control configs: got "
                          f"{second.policy_config}, {second.control_config} beside {first.policy_config}, {first.control_config}")


class StructureGatedActor(nn.Module):
    """Two deciders split by the model being trained: a model with ``min_layers`` layers or more, or (``by_zero_start``)
    with a layer whose first gradient is exactly zero, is scheduled by ``structural``; any other by ``plain`` (each an
    actor or an ensemble).

    A layer is what the policy reads gradient norms of (``layers.py``: a module owning parameters). A layer's first
    gradient is zero when it sits behind a layer that starts at zero: LoRA's A while B is zero, the hidden layers under an
    output layer initialised to zero. Both are read from the run's first step (``observation.RunHistory.structure``),
    so the decision before any step is ``plain``'s and every later one the chosen side's.

    Why: on the training families' validation draws of the thirty-first session, more weight on the cautious actor
    helped deep MLPs (7 to 17 layers) and models whose head starts at zero, and hurt ordinary ones (2 to 4 layers); the
    history the actors read did not tell them apart, the model's structure does. Tried in the thirty-second session; by
    the layer count alone (6 or more, ``by_zero_start=False``) the default's long-run side since the thirty-third
    (docs/results.md section 7).
    """

    def __init__(self, plain: Actor | EnsembleActor, structural: Actor | EnsembleActor, min_layers: int, by_zero_start: bool = True):
        super().__init__()
        if not isinstance(min_layers, int) or isinstance(min_layers, bool) or min_layers < 2:
            raise ConfigError("structure_min_layers", f"must be an integer >= 2, got {min_layers!r}")
        for side in (plain, structural):
            if isinstance(side, (LengthGatedActor, StructureGatedActor)):
                raise ConfigError("structural", "each side of a structure gate must be one actor or an ensemble")
        _check_same_configs(plain, structural, "structural", "the structural actor and the plain one")
        self.policy_config, self.control_config = plain.policy_config, plain.control_config
        self.plain, self.structural, self.min_layers, self.by_zero_start = plain, structural, min_layers, bool(by_zero_start)

    @property
    def encoder(self) -> WindowEncoder:
        """The plain side's encoder, for the window's shape (the structural one's is the same shape)."""
        return self.plain.encoder

    def side(self, structure: tuple[int, int] | None) -> Actor | EnsembleActor:
        """The side for a model of ``structure`` = (layers, layers whose first gradient is zero); None: not known yet."""
        if structure is None:
            return self.plain
        layers, zero_start_layers = structure
        return self.structural if layers >= self.min_layers or (self.by_zero_start and zero_start_layers > 0) else self.plain

    def forward(self, window: torch.Tensor, mask: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise TypeError("a structure-gated actor decides with the side for the run's model: use actor_for_run(actor, total_steps, structure)")


class LengthGatedActor(nn.Module):
    """Two deciders split by run length: a run of fewer than ``short_run_steps`` steps is scheduled by
    ``short``, any longer one by ``main`` (each an actor or an ensemble; ``main`` may be structure-gated), each as it is.

    Why: an actor schedules best the run lengths it trained on, and one actor trained on both short
    and long runs learned neither well (docs/results.md section 7). A run's length is known when it
    starts, so the actor is chosen once per run (``actor_for_run``), never per decision: it costs
    nothing, and a long run gets ``main``'s decisions exactly. Both must read the same inputs under
    the same controls (checked here).
    """

    def __init__(self, main: Actor | EnsembleActor | StructureGatedActor, short: Actor | EnsembleActor, short_run_steps: int):
        super().__init__()
        if not isinstance(short_run_steps, int) or short_run_steps < 2:
            raise ConfigError("short_run_steps", f"must be an integer >= 2, got {short_run_steps!r}")
        if isinstance(short, (LengthGatedActor, StructureGatedActor)) or isinstance(main, LengthGatedActor):
            raise ConfigError("short_runs", "the short side must be one actor or an ensemble, and the long side not length-gated")
        _check_same_configs(main, short, "short_runs", "the short-run actor and the main one")
        self.policy_config, self.control_config = main.policy_config, main.control_config
        self.main, self.short, self.short_run_steps = main, short, short_run_steps

    @property
    def encoder(self) -> WindowEncoder:
        """The main actor's encoder, for the window's shape (the short one's is the same shape)."""
        return self.main.encoder

    def forward(self, window: torch.Tensor, mask: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise TypeError("a length-gated actor decides with the actor for the run's length: use actor_for_run(actor, total_steps)")


def actor_for_run(actor: nn.Module, total_steps: int, structure: tuple[int, int] | None = None) -> Actor | EnsembleActor:
    """The actor that schedules a run of ``total_steps`` steps on a model of ``structure`` (layers, layers whose first
    gradient is zero; None before the run's first step): ``actor`` itself unless it is gated."""
    actor = _side_for_length(actor, total_steps)
    if isinstance(actor, StructureGatedActor):
        actor = actor.side(structure)
    return actor


def _side_for_length(actor: nn.Module, total_steps: int) -> nn.Module:
    """A length gate's side for a run of ``total_steps`` steps (``actor`` itself if it has no length gate)."""
    if isinstance(actor, LengthGatedActor):
        return actor.short if total_steps < actor.short_run_steps else actor.main
    return actor


def structure_gated(actor: nn.Module, total_steps: int | None = None) -> StructureGatedActor | None:
    """The structure gate inside ``actor`` (on its long-run side, if length-gated), or None; with ``total_steps``, only
    if a run of that length reaches it (a shorter run than a length gate's goes to its short side, which has none)."""
    if total_steps is None:  # the long-run side
        side = actor.main if isinstance(actor, LengthGatedActor) else actor
    else:
        side = _side_for_length(actor, total_steps)
    return side if isinstance(side, StructureGatedActor) else None

"""Roll controllers (an expert schedule or a policy) out on groups of trainee runs.

A rollout advances N trainee runs together (stacked weights for the MLP, sequential
otherwise), asks the controller for one action per run at every decision step, and lets each
run's ``loop.DecisionLoop`` ramp the LR to it, record the run's features and give each
decision the proposal's reward. A run that diverges ends its episode there.

Example:
    >>> group = make_run_group(TaskConfig(), seeds=[0, 1])                       # doctest: +SKIP
    >>> episodes = rollout(group, ScheduleController(expert_schedule("cosine"), ControlConfig()),
    ...                    total_steps=300, base_lrs=[0.1, 0.05], control=ControlConfig(), reward=RewardConfig())
    >>> episodes[0].test_accuracy > 0.9
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from learned_lr.control import LRRamp, expert_action
from learned_lr.features import stack_observations
from learned_lr.loop import DecisionLoop, is_diverged
from learned_lr.observation import RunHistory
from learned_lr.gates import LengthGatedActor, actor_for_run
from learned_lr.settings import ControlConfig, RewardConfig
from learned_lr.tasks.groups import RunGroup
from learned_lr.training.experts import ExpertSchedule


@dataclass
class Episode:
    """One trainee run under a controller: its history, decisions and rewards, final numbers."""

    seed: int
    base_lr: float
    history: RunHistory
    decision_steps: list[int] = field(default_factory=list)
    actions: list[float] = field(default_factory=list)  # as the controller gave them (before clipping)
    rewards: list[float] = field(default_factory=list)
    diverged: bool = False
    test_loss: float = math.nan
    test_accuracy: float = math.nan

    @property
    def lr_factors(self) -> np.ndarray:
        return self.history.lrs[: self.history.steps] / self.base_lr


class Controller(Protocol):
    def decide(self, histories: Sequence[RunHistory], step: int, active: np.ndarray) -> np.ndarray:
        """One action (log LR factor) per run for the block starting at ``step``."""
        ...


class ScheduleController:
    """An expert schedule acting through the same decisions as a policy.

    At each decision it picks the schedule's log factor at the end of the block (see
    ``control.expert_action``). ``noise_std`` > 0 perturbs the executed action (log space),
    so demonstrations also show states off the expert's path, where the expert's clean
    action, the BC label, says how to get back.

    ``target_peak_lr`` > 0 makes it the *tuned-LR oracle*: its clean action runs the schedule
    at that peak LR whatever the run's base LR (factor x target / base, within the action's
    bounds), which is what a policy robust to a mistuned base LR should do. If it executed
    that action, a run's past LR factors would give the correction away (a cloned policy would
    learn to repeat its own past factor, not to read the run); so each run executes only a
    random fraction, drawn once per run from [0, 1], of the oracle's correction.
    """

    def __init__(self, schedule: ExpertSchedule, control: ControlConfig, noise_std: float = 0.0, seed: int = 0, target_peak_lr: float = 0.0):
        self.schedule = schedule
        self.control = control
        self.noise_std = noise_std
        self.target_peak_lr = target_peak_lr
        self._rng = np.random.default_rng(seed)
        self._mix: np.ndarray | None = None

    def clean_action(self, total_steps: int, step: int, base_lr: float | None = None) -> float:
        """The label: the schedule's (or, with ``target_peak_lr``, the oracle's) log factor for the block at ``step``."""
        block = LRRamp.of(total_steps, self.control).block_length(step)
        factors = self.schedule.factors(total_steps)
        if self.target_peak_lr > 0:
            if base_lr is None:
                raise ValueError("the tuned-LR oracle needs the run's base LR")
            factors = factors * (self.target_peak_lr / base_lr)
        return expert_action(factors, step, block, self.control.log_bounds)

    def decide(self, histories: Sequence[RunHistory], step: int, active: np.ndarray) -> np.ndarray:
        actions = np.array([self.clean_action(h.total_steps, step, h.base_lr) for h in histories])
        if self.target_peak_lr > 0:
            if self._mix is None or len(self._mix) != len(histories) or step == 0:
                self._mix = self._rng.uniform(0.0, 1.0, size=len(histories))
            block = LRRamp.of(histories[0].total_steps, self.control).block_length(step)
            plain = np.array([expert_action(self.schedule.factors(h.total_steps), step, block, self.control.log_bounds) for h in histories])
            actions = plain + self._mix * (actions - plain)
        if self.noise_std > 0:
            actions = actions + self._rng.normal(0.0, self.noise_std, size=len(actions))
        return actions


class PolicyController:
    """The actor, deterministic (its mean) or sampling; keeps the last raw actions it took.

    Sampling draws one standard-normal vector of ``batch_size`` per decision from one seeded
    generator and gives run j the element ``indices[j]``. By default that is the whole rollout
    (``batch_size`` = the runs given, ``indices`` = all); a rollout split over workers gives
    each worker the full batch size and its runs' positions, so every run gets the same noise,
    and so the same trajectory, whichever worker runs it.
    """

    def __init__(self, actor: torch.nn.Module, deterministic: bool = True, seed: int = 0,
                 batch_size: int | None = None, indices: Sequence[int] | None = None):
        self.actor = actor
        self.deterministic = deterministic
        self.batch_size = batch_size
        self.indices = None if indices is None else torch.as_tensor(list(indices), dtype=torch.long)
        self._generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def decide(self, histories: Sequence[RunHistory], step: int, active: np.ndarray) -> np.ndarray:
        # A run that diverged has stopped before ``step``; its action is ignored, but it keeps its
        # place in the batch (and so in the noise draws): it observes its last recorded step.
        lengths = {h.total_steps for h in histories}
        if isinstance(self.actor, LengthGatedActor) and len(lengths) > 1:
            raise ValueError(f"a length-gated actor decides for runs of one length at a time, got runs of {sorted(lengths)} steps")
        observations = [h.observation(min(step, h.steps)) for h in histories]
        window, mask, context = (torch.from_numpy(a) for a in stack_observations(observations))
        # Each run's actor (a structure gate may pick different sides for the runs of one batch): each picked one decides
        # for the whole batch, once, and every run takes its own's decision.
        picked = [actor_for_run(self.actor, h.total_steps, h.structure) for h in histories]
        mean, std = torch.zeros(len(histories)), torch.zeros(len(histories))
        for actor in {id(a): a for a in picked}.values():
            rows = torch.tensor([a is actor for a in picked])
            mean_a, std_a = actor(window, mask, context)
            mean, std = torch.where(rows, mean_a, mean), torch.where(rows, std_a, std)
        if self.deterministic:
            return mean.double().numpy()
        noise = torch.randn(self.batch_size or len(histories), generator=self._generator)
        if self.indices is not None:
            noise = noise[self.indices]
        return (mean + std * noise).double().numpy()


class HandoffController:
    """``first`` decides before ``handoff_fraction`` of the run, ``second`` after."""

    def __init__(self, first: Controller, second: Controller, handoff_fraction: float):
        self.first, self.second, self.handoff_fraction = first, second, handoff_fraction

    def decide(self, histories: Sequence[RunHistory], step: int, active: np.ndarray) -> np.ndarray:
        use_first = step < self.handoff_fraction * histories[0].total_steps
        return (self.first if use_first else self.second).decide(histories, step, active)


def rollout(
    group: RunGroup,
    controller: Controller,
    total_steps: int,
    base_lrs: Sequence[float],
    control: ControlConfig,
    reward: RewardConfig,
    evaluate_test: bool = True,
    progress: bool = False,
    desc: str = "rollout",
) -> list[Episode]:
    """Run every trainee of ``group`` for ``total_steps`` steps under ``controller``.

    Each run acts through its own ``loop.DecisionLoop`` (the cycle ``LearnedLR`` runs); the
    runs advance in lockstep, so they all need a decision at the same steps.
    """
    n = group.num_runs
    base = np.asarray(base_lrs, dtype=np.float64)
    if base.shape != (n,):
        raise ValueError(f"expected {n} base LRs, got {base.shape}")
    loops = [DecisionLoop(total_steps, float(b), control, reward) for b in base]
    cosines_wanted = loops[0].history.reads_momentum if loops else False
    distances_wanted = loops[0].history.reads_distance if loops else False
    active = np.ones(n, dtype=bool)
    bar = tqdm(total=total_steps, desc=desc, disable=not progress, leave=False)
    while active.any():
        # The clock is a run still going: a diverged run's loop stops where it diverged.
        lead = loops[int(np.flatnonzero(active)[0])]
        if lead.done:
            break
        step = lead.step
        actions = np.asarray(controller.decide([loop.history for loop in loops], step, active), dtype=np.float64)
        for i in np.flatnonzero(active):
            loops[i].decide(float(actions[i]))
        for _ in range(lead.block_end - step):
            lrs = np.array([loop.lr() if on else 0.0 for loop, on in zip(loops, active)])
            # (the active runs are in lockstep: all of them measure at the same steps)
            measure = distances_wanted and any(loops[i].measures_distance() for i in np.flatnonzero(active))
            report = group.step(torch.from_numpy(lrs).float(), active=active.tolist(), momentum_cosines=cosines_wanted,
                                init_distances=measure)
            cosines = report.layer_momentum_cos if cosines_wanted else None
            distances = report.layer_init_distance if measure else None
            for i in np.flatnonzero(active):
                loops[i].record(float(report.train_loss[i]), float(report.val_loss[i]), report.layer_grad_norms[i].numpy(),
                                None if cosines is None else cosines[i].numpy(), None if distances is None else distances[i].numpy())
                active[i] = not loops[i].diverged
            bar.update()
    bar.close()
    episodes = [Episode(seed, loop.base_lr, loop.history, loop.decision_steps, loop.actions, loop.rewards, loop.diverged)
                for seed, loop in zip(group.seeds, loops)]
    if evaluate_test:
        test_loss, test_accuracy = group.evaluate_test()
        for i, episode in enumerate(episodes):
            if not episode.diverged:
                episode.test_loss, episode.test_accuracy = float(test_loss[i]), float(test_accuracy[i])
    return episodes


def rollout_exact_schedule(
    group: RunGroup,
    schedule: ExpertSchedule,
    total_steps: int,
    base_lrs: Sequence[float],
    control: ControlConfig,
    evaluate_test: bool = True,
    progress: bool = False,
) -> list[Episode]:
    """The expert schedule exactly as torch computes it, every step (no decisions, no ramp): the reference.

    The one runner of an exact schedule: the evaluation and robustness tables run it on groups of
    seeds, and ``experiments.evaluate.run_schedule`` (``train``, ``compare-experts``, ``sweep``) on one.
    A run whose loss diverges (``loop.is_diverged``) stops there.
    """
    n = group.num_runs
    base = np.asarray(base_lrs, dtype=np.float64)
    factors = schedule.factors(total_steps)
    episodes = [Episode(seed, float(b), RunHistory.of(total_steps, float(b), control)) for seed, b in zip(group.seeds, base)]
    active = np.ones(n, dtype=bool)
    first_loss = np.full(n, np.nan)
    bar = tqdm(range(total_steps), desc=f"{schedule.name} (exact)", disable=not progress, leave=False)
    for step in bar:
        lrs = np.where(active, base * factors[step], 0.0)
        report = group.step(torch.from_numpy(lrs).float(), active=active.tolist())
        for i in np.flatnonzero(active):
            train_loss = float(report.train_loss[i])
            episodes[i].history.record(float(lrs[i]), train_loss, float(report.val_loss[i]), report.layer_grad_norms[i].numpy())
            first_loss[i] = train_loss if step == 0 else first_loss[i]
            if is_diverged(train_loss, float(first_loss[i])):
                episodes[i].diverged = True
                active[i] = False
        if progress and step % 50 == 0:
            bar.set_postfix(train_loss=f"{float(np.nanmean(report.train_loss)):.3f}")
        if not active.any():
            break
    if evaluate_test:
        test_loss, test_accuracy = group.evaluate_test()
        for i, episode in enumerate(episodes):
            if not episode.diverged:
                episode.test_loss, episode.test_accuracy = float(test_loss[i]), float(test_accuracy[i])
    return episodes

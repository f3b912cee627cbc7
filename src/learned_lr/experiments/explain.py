"""What the policy decided on one real run: ``LearnedLR`` in a plain training loop, its decisions plotted.

The run is the README's drop-in loop on a trainee of any task family (``tasks``): the user's
order (forward, ``zero_grad``, ``backward``, ``optimizer.step()``, ``scheduler.step(...)``), with
the training loss and the rotating validation batch's loss fed to the scheduler every step. The
figure shows the LR it set with every decision marked (and what a decision asked for where the
rise limit held it back), and the losses it read; the decisions (``LearnedLR.decisions()``: step,
factor, LR, the factor asked for and the features read) go to JSON.

Example:
    >>> result = explain_run(TaskConfig(), steps=300, base_lr=0.1, seed=0, policy="bundled")   # doctest: +SKIP
    >>> len(result["decisions"]), result["cadence"], result["deciders"]   # doctest: +SKIP
    (15, 'every 16 steps over the first 128, then every 32', "3 actors deciding together (the policy's part for runs of or over 300 steps)")
"""

from __future__ import annotations

import math

import torch

from learned_lr.bundled import resolve_policy
from learned_lr.control import cooldown_steps, held_back, rise_span
from learned_lr.gates import LengthGatedActor, StructureGatedActor, actor_for_run, structure_gated
from learned_lr.policy import Actor, EnsembleActor
from learned_lr.scheduler import LearnedLR
from learned_lr.settings import ControlConfig
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.run import TrainingRun, task_loss


def cadence(control: ControlConfig) -> str:
    """How often a policy under ``control`` decides, in words: "every 32 steps", or with a dense start
    "every 16 steps over the first 128, then every 32"."""
    if control.start_decision_interval and control.start_steps:
        return f"every {control.start_decision_interval} steps over the first {control.start_steps}, then every {control.decision_interval}"
    return f"every {control.decision_interval} steps"


def deciders(actor: Actor | EnsembleActor | LengthGatedActor | StructureGatedActor, total_steps: int,
             structure: tuple[int, int] | None = None) -> str:
    """Who decides a run of ``total_steps`` steps on a model of ``structure`` (``observation.RunHistory.structure``), in
    words: "one actor", "3 actors deciding together" ("4 actors deciding together, one counted 3 times" where a member is
    listed again to weigh it), and for a gated policy which side of each gate the run is on.

    Example:
        >>> from learned_lr.policy import load_policy
        >>> deciders(load_policy(resolve_policy("default")).actor, 200)
        "3 actors deciding together (the policy's part for runs under 300 steps)"
    """
    chosen = actor_for_run(actor, total_steps, structure)
    words = "one actor"
    if isinstance(chosen, EnsembleActor):
        counts = [list(chosen.members).count(member) for member in dict.fromkeys(chosen.members)]  # tied members: one module
        words = f"{len(counts)} actors deciding together" + "".join(f", one counted {n} times" for n in counts if n > 1)
    if isinstance(actor, LengthGatedActor):
        side = "under" if chosen is actor.short else "of or over"
        words += f" (the policy's part for runs {side} {actor.short_run_steps} steps)"
    gate = structure_gated(actor)
    if gate is not None and chosen in (gate.plain, gate.structural):
        zero, nonzero = (", or with a layer whose first gradient is zero", " whose first gradients are all non-zero") if gate.by_zero_start else ("", "")
        words += (f" (its side for models of {gate.min_layers} layers or more{zero})" if chosen is gate.structural
                  else f" (its side for models under {gate.min_layers} layers{nonzero})")
    return words


def held_back_words(result: dict) -> str:
    """How many of an ``explain_run``'s decisions the rise limit held back, in words ("" for a policy without one).

    Example:
        >>> held_back_words({"max_lr_rise": 4.0, "decision_interval": 32, "decisions": [{"asked_factor": 0.5, "lr_factor": 0.2}]})
        '1 held back by the rise limit (at most 4x per 32 steps)'
    """
    rise = result.get("max_lr_rise", 0.0)  # (results saved before it was recorded: none)
    if not (rise or result.get("rise_limit")):
        return ""
    count = sum(map(held_back, result["decisions"]))
    limit = result.get("rise_limit") or f"at most {rise:g}x per {result['decision_interval']} steps"  # (saved before it was recorded)
    return f"{count} held back by the rise limit ({limit})"


def rise_limit_words(control: ControlConfig, total_steps: int) -> str:
    """A rise limit on a ``total_steps``-step run, in words ("" without one).

    Example:
        >>> c = ControlConfig(decision_interval=32, max_lr_rise=4, rise_span_fraction=0.125, rise_span_distance=0.05,
        ...                   rise_span_from_step=17, inputs="all+distance")
        >>> rise_limit_words(c, 1000), rise_limit_words(c, 80)
        ('at most 4x per 32 steps', 'at most 4x per 32 steps; per 10 steps from step 17, while the weights are within 0.05 of their start')
        >>> rise_limit_words(ControlConfig(decision_interval=32, max_lr_rise=4, after_loss_rise=0.5), 1000)
        'at most 4x per 32 steps; after a block whose loss rose, at most 0.5x'
        >>> rise_limit_words(ControlConfig(loss_over_lowest=1.5), 1000)
        'while the loss is above 1.5x its lowest block, no rise'
        >>> rise_limit_words(ControlConfig(loss_over_lowest=1.5, over_lowest_factor=0.5, over_lowest_below_layers=6), 1000)
        'while the loss is above 1.5x its lowest block, at most 0.5x (on models of under 6 layers)'
    """
    cap_words = lambda factor: "no rise" if factor == 1 else f"at most {factor:g}x"  # noqa: E731
    after_rise, over_lowest, below = control.after_loss_rise, control.loss_over_lowest, control.over_lowest_below_layers
    models = f" (on models of under {below} layers)" if below else ""
    after_words = "; ".join(filter(None, (
        f"after a block whose loss rose, {cap_words(after_rise)}" if after_rise else "",
        f"while the loss is above {over_lowest:g}x its lowest block, {cap_words(control.over_lowest_factor)}{models}" if over_lowest else "")))
    if not control.max_lr_rise:
        return after_words
    words = f"at most {control.max_lr_rise:g}x per {control.decision_interval} steps"
    span = rise_span(total_steps, control.decision_interval, control.rise_span_fraction)
    if span != control.decision_interval:
        conditions = [f"from step {control.rise_span_from_step}"] if control.rise_span_from_step else []
        conditions += ["after a block whose loss fell"] if control.rise_span_while_falling else []
        conditions += [f"while the weights are within {control.rise_span_distance:g} of their start"] if control.rise_span_distance else []
        words = f"{words}; per {span:g} steps" + (" " + ", ".join(conditions) if conditions else "")
    return "; ".join(filter(None, (words, after_words)))


def cooldown_words(control: ControlConfig, total_steps: int) -> str:
    """A cooldown on a ``total_steps``-step run, in words ("" without one).

    Example:
        >>> c = ControlConfig(cooldown_fraction=0.2, cooldown_max_steps=300)
        >>> cooldown_words(c, 100), cooldown_words(c, 1000)
        ('the last 20 steps decayed linearly to zero', '')
    """
    steps = cooldown_steps(total_steps, control.cooldown_fraction, control.cooldown_max_steps)
    return f"the last {steps} steps decayed linearly to zero" if steps else ""


def explain_run(task: TaskConfig, steps: int, base_lr: float, seed: int, policy: str = "bundled", feed_losses: bool = True) -> dict:
    """Train one run under ``LearnedLR`` (``policy``: a checkpoint path or ``bundled``); per-step curves and decisions."""
    run = TrainingRun(task, seed, total_steps=steps)  # the trainee's model, optimizer and data order
    model, optimizer = run.model, run.optimizer
    run.trainee_optimizer.set_lr(base_lr)
    scheduler = LearnedLR(optimizer, total_steps=steps, policy=resolve_policy(policy), model=model)
    lrs, train_losses, val_losses = [], [], []
    for _ in range(steps):
        x, y = (t.to(run.device) for t in run.stream.next_train_batch())
        model.train()
        loss = task_loss(run.data.loss, model(x), y)
        optimizer.zero_grad()
        loss.backward()
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        val_x, val_y = (t.to(run.device) for t in run.stream.next_val_batch())
        with torch.no_grad():
            model.eval()
            val_loss = float(task_loss(run.data.loss, model(val_x), val_y))
        train_losses.append(float(loss.detach()))
        val_losses.append(val_loss)
        if feed_losses:
            scheduler.step(train_loss=train_losses[-1], val_loss=val_loss)
        else:
            scheduler.step()
        if not math.isfinite(train_losses[-1]):
            break
    test_loss, test_accuracy = run.evaluate_test()
    return {"task": task.task, "optimizer": task.optimizer, "steps": steps, "base_lr": base_lr, "seed": seed, "policy": policy,
            "feed_losses": feed_losses, "decision_interval": scheduler.decision_interval, "cadence": cadence(scheduler.policy.control_config),
            "max_lr_rise": scheduler.policy.control_config.max_lr_rise,
            "rise_limit": rise_limit_words(scheduler.policy.control_config, steps),
            "cooldown": cooldown_words(scheduler.policy.control_config, steps),
            "deciders": deciders(scheduler.policy.actor, steps, scheduler.history.structure), "lrs": lrs, "train_loss": train_losses,
            "val_loss": val_losses, "decisions": scheduler.decisions(), "test_loss": test_loss, "test_accuracy": test_accuracy}

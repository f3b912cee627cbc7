"""Distillation: one actor cloned from a teacher policy's decisions (an ensemble's, say) on stored states.

Why: an ensemble of a recipe's BC draws (``policy.EnsembleActor``) averages away what one draw gets
wrong, at one forward per member per decision. A single actor that imitates it would keep its
decisions at one actor's cost. The states are demonstrations already collected (a ``general-train``
run's merged demonstrations and DAgger states); only their labels change: each decision's label
becomes the teacher's deterministic action (its mean log LR factor) on that state, in place of
the oracle's. Plain BC (``training.bc``) then fits the student on them, so everything BC does
(resume, validation split, caching by the demonstrations' SHA-256) holds; the relabelled file
records the teacher's SHA-256, so another teacher gives another file and another student.

Example:
    >>> relabel_with_teacher(load_policy("runs/ensemble.safetensors"), "runs/g/dagger/round-2/data", "runs/distill/data")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from learned_lr.checkpoint import load_checkpoint, save_checkpoint
from learned_lr.files import file_sha256
from learned_lr.gates import actor_for_run, structure_gated
from learned_lr.policy import OBSERVATION_AND_ACTION_FIELDS, LoadedPolicy, policy_sha256
from learned_lr.settings import ConfigError
from learned_lr.training.bc import DEMOS_FILE, Demonstrations

BATCH = 512


def relabel_with_teacher(teacher: LoadedPolicy, source: str | Path, target: str | Path) -> Path:
    """Write ``target/demos.safetensors``: ``source``'s demonstrations, each label the teacher's action; reused if current."""
    source_file, target_file = Path(source) / DEMOS_FILE, Path(target) / DEMOS_FILE
    tensors, meta = load_checkpoint(source_file, kind="demonstrations")
    meta = {k: v for k, v in meta.items() if k not in ("format", "version", "kind")}
    stamp = {"teacher_sha256": policy_sha256(teacher), "source_sha256": file_sha256(source_file)}
    if target_file.is_file() and load_checkpoint(target_file, kind="demonstrations")[1].get("labels_from") == stamp:
        return target_file
    demos = Demonstrations.load(source)
    fields = OBSERVATION_AND_ACTION_FIELDS  # the cadence may differ (a state is a state)
    stored, seen = (tuple(getattr(c, f) for f in fields) for c in (demos.control, teacher.control_config))
    if stored != seen:
        raise ConfigError("teacher", f"the teacher's {fields} are {seen} but the demonstrations' {stored}")
    if structure_gated(teacher.actor) is not None:
        raise ConfigError("teacher", "a structure-gated teacher picks its side by the model's layers, which the demonstrations "
                          "do not record: give one of its sides (an actor or an ensemble) as the teacher")
    labels = np.empty_like(demos.labels)
    teacher.actor.eval()
    run_steps = np.array([run["total_steps"] for run in demos.runs])
    with torch.no_grad():
        for start in range(0, len(labels), BATCH):
            index = np.arange(start, min(start + BATCH, len(labels)))
            window, mask, context = demos.batch(index)[:3]
            steps = run_steps[demos.decision_run[index]]
            for length in np.unique(steps):  # each state labelled by the actor for its run's length (a length-gated teacher's)
                rows = steps == length
                picked = torch.from_numpy(rows)
                labels[index[rows]] = actor_for_run(teacher.actor, int(length))(window[picked], mask[picked], context[picked])[0].numpy()
    # Demonstrations.load keeps every run here (no expert filter), in file order: run k's decisions are contiguous.
    for run in range(len(demos.runs)):
        tensors[f"{run}.labels"] = torch.from_numpy(labels[demos.decision_run == run].astype(np.float32))
    save_checkpoint(target_file, tensors, {**meta, "labels_from": stamp}, kind="demonstrations")
    return target_file

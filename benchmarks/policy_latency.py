"""Policy cost per decision as a fraction of one trainee step, measured side by side.

For the MLP and ResNet-18 (width 16 on a CPU; pass --resnet-width 64 on a GPU machine), times
one trainee step (train batch + rotating validation batch) and one actor decision (building
the observation from the run's history, then the forward pass at batch 1), alternating them in
this one process. Prints the ratio per decision and per step at decision interval K (16 unless
--decision-interval), for the research default actor (4 layers, d = 64) with patched tokens run
eagerly and traced (as ``LearnedLR`` runs it, ``policy.single_decision_fn``) and with one token
per step (patch 1); and for the bundled policy, traced, at its own K.

    .venv/bin/python benchmarks/policy_latency.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from learned_lr.bundled import BUNDLED_POLICY
from learned_lr.observation import RunHistory
from learned_lr.policy import Actor, load_policy, single_decision_fn
from learned_lr.settings import ControlConfig, PolicyConfig
from learned_lr.tasks import TrainingRun
from learned_lr.tasks.config import TaskConfig


def _time(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resnet-width", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--decision-interval", type=int, default=16)
    args = parser.parse_args()
    control = ControlConfig(decision_interval=args.decision_interval)
    k = control.decision_interval
    tasks = {"mnist-mlp": TaskConfig(), f"mnist-resnet18 (width {args.resnet_width})": TaskConfig(task="mnist-resnet18", width=args.resnet_width)}
    print(f"threads={torch.get_num_threads()} window={control.window} decision interval K={k}")
    print(f"{'task':28s} {'policy/patch':>16s} {'step ms':>9s} {'decision ms':>12s} {'decision/step':>14s} {'overhead/step at K':>19s}")
    bundled = load_policy(BUNDLED_POLICY)
    for label, task in tasks.items():
        run = TrainingRun(task, seed=0)
        # One history per set of inputs: the research actors read "all", the bundled one what it was trained on.
        histories = {inputs: RunHistory(total_steps=10_000, base_lr=0.1, window=control.window, inputs=inputs)
                     for inputs in {control.inputs, bundled.control_config.inputs}}
        for _ in range(3):  # warm-up, and some history to observe
            report = run.step(0.05)
            for history in histories.values():
                norms = report.layer_grad_norms.numpy()
                history.record(report.lr, report.train_loss, report.val_loss, norms, None, norms * 0.0 + 1e-3)
        repeats = args.repeats if task.task == "mnist-mlp" else max(3, args.repeats // 10)
        for patch, traced in ((16, False), (16, True), (1, False), ("bundled", True)):
            torch.manual_seed(0)
            if patch == "bundled":
                actor, k, history = bundled.actor.eval(), bundled.control_config.decision_interval, histories[bundled.control_config.inputs]
            else:
                actor, k, history = Actor(PolicyConfig(patch=patch), control).eval(), control.decision_interval, histories[control.inputs]
            forward = single_decision_fn(actor) if traced else (lambda w, m, c: actor(w, m, c)[0])

            def decide():
                window, mask, context = (torch.from_numpy(a)[None] for a in history.observation())
                with torch.no_grad():
                    forward(window, mask, context)

            decide()
            step_time, decision_time = [], []
            for _ in range(repeats):  # alternate so machine noise hits both alike
                step_time.append(_time(lambda: run.step(0.05), 1))
                decision_time.append(_time(decide, 1))
            s, d = statistics.median(step_time), statistics.median(decision_time)
            name = f"bundled, K={k}" if patch == "bundled" else f"{patch}{' traced' if traced else ''}"
            print(f"{label:28s} {name:>16s} {1e3 * s:9.2f} {1e3 * d:12.2f} {d / s:14.3f} {d / (k * s):18.1%}")


if __name__ == "__main__":
    main()

"""Which benchmark families' models have a layer whose weights start at zero, or whose first gradient is zero?

Such a layer has no distance from its start relative to its size (``layers.layer_init_distances`` gives NaN), and a
policy reads it as a blow-up unless ``ControlConfig.distance_skips_zero_start`` is set; a layer whose gradient at the
first step is zero (LoRA's A matrices, while B is zero) has no reference for its gradient norms, and reads absolute
norms unless ``ControlConfig.grad_norms_from_first_nonzero`` is set (docs/results.md section 7).
This builds each family's model of the `small` suite (and, for the MLP families, a deep small-init and a batch-norm
variant) and lists the layers that started at zero. `llm-lora` is left out (it needs the llm extra and the SmolLM2
weights): its LoRA B matrices start at zero by construction, half of its layers.

    python benchmarks/zero_start_layers.py
"""

from __future__ import annotations

import dataclasses
import math

import torch

from learned_lr.experiments.suites import SUITES
from learned_lr.layers import layer_init_distances
from learned_lr.tasks.run import TrainingRun, initial_weights, layer_groups


def main() -> None:
    torch.set_num_threads(2)
    for name, family in SUITES["small"].families.items():
        if name == "llm-lora":
            continue
        variants = [family.task]
        if family.task.task in ("mnist-mlp", "digits", "diabetes"):
            variants += [dataclasses.replace(family.task, mlp_layers=3, init_scale=0.5), dataclasses.replace(family.task, batch_norm=True)]
        for task in variants:
            run = TrainingRun(task, seed=0, total_steps=2)
            params, layer_of, names = layer_groups(run.model)  # the layers as training and LearnedLR group them
            distances = layer_init_distances(params, initial_weights(params, 0), layer_of.tolist(), len(names))
            zero_start = [names[index] for index, value in enumerate(distances) if math.isnan(value)]
            first = run.step(1e-3).layer_grad_norms  # measured before the update: any LR gives the same
            zero_gradient = [names[index] for index, value in enumerate(first.tolist()) if not value > 0]
            print(f"{name:16s} {task.optimizer:6s} {len(names):3d} layers; started at zero: {', '.join(zero_start) or 'none'}; "
                  f"zero first gradient: {', '.join(zero_gradient) or 'none'}")


if __name__ == "__main__":
    main()

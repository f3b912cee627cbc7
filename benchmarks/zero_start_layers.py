"""Which benchmark families' models have a layer whose weights start at zero?

Such a layer has no distance from its start relative to its size (``layers.layer_init_distances`` gives NaN), and a
policy reads it as a blow-up unless ``ControlConfig.distance_skips_zero_start`` is set (docs/results.md section 7).
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
from learned_lr.tasks.run import TrainingRun, initial_weights


def main() -> None:
    torch.set_num_threads(2)
    for name, family in SUITES["small"].families.items():
        if name == "llm-lora":
            continue
        variants = [family.task]
        if family.task.task in ("mnist-mlp", "digits", "diabetes"):
            variants += [dataclasses.replace(family.task, mlp_layers=3, init_scale=0.5), dataclasses.replace(family.task, batch_norm=True)]
        for task in variants:
            run = TrainingRun(task, 0, total_steps=3)
            distances = layer_init_distances(run.params, initial_weights(run.params, 0), run._layer_list, run.num_layers)
            zero_start = [index for index, value in enumerate(distances) if math.isnan(value)]
            print(f"{name:16s} {task.optimizer:6s} {run.num_layers:3d} layers; started at zero: {zero_start or 'none'}")


if __name__ == "__main__":
    main()

"""What one small tensor op costs right after a training step, against the same op on its own.

Why: the distance from the initial weights (``layers.layer_init_distances``) is a dozen small
tensor ops per step, and inside the MNIST-MLP loop it costs ~10 points of the step however few
elements it reads. This times each probe inside the loop (between ``optimizer.step()`` and the next
batch, where ``LearnedLR`` runs) and then 250 times in a row on its own, in one process.

    .venv/bin/python benchmarks/op_latency_in_loop.py
"""

from __future__ import annotations

import time

import torch

from learned_lr.layers import InitialWeights, layer_init_distances
from learned_lr.tasks import build_model, load_mnist
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.data import to_float


def fused_distance_squares(params: list[torch.Tensor], initial: InitialWeights) -> list[float]:
    """Each tensor's sampled squared distance from its start, in three tensor ops plus the gathers."""
    with torch.no_grad():
        current = [p.detach().reshape(-1) if i is None else p.detach().reshape(-1).index_select(0, i) for p, i in zip(params, initial.index)]
        norms = torch._foreach_norm(torch._foreach_sub(current, initial.values))
        return torch.stack(norms).square().tolist()


def main() -> None:
    data = load_mnist()
    x, y = to_float(data.train_images), data.train_labels
    model = build_model(TaskConfig(), seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    params = list(model.parameters())
    initial = InitialWeights.of(params)
    probes = {
        "nothing": lambda: 0,
        "dot of the 256-element bias": lambda: torch.dot(params[1].detach(), params[1].detach()).item(),
        "gather of 16,384 fc1 weights": lambda: params[0].detach().reshape(-1).index_select(0, initial.index[0]).sum().item(),
        "layer_init_distances (all 4 tensors)": lambda: layer_init_distances(params, initial, [0, 0, 1, 1], 2),
        # The candidate for a cheaper distance: one fused subtraction and one fused norm over every tensor.
        "fused: gather + _foreach_sub + _foreach_norm": lambda: fused_distance_squares(params, initial),
    }
    generator = torch.Generator().manual_seed(0)
    print(f"threads={torch.get_num_threads()}")
    for name, probe in probes.items():
        in_loop = 0.0
        for step in range(300):
            batch = torch.randint(len(y), (128,), generator=generator)
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            start = time.perf_counter()
            probe()
            if step >= 50:  # after a warm-up
                in_loop += time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(250):
            probe()
        alone = (time.perf_counter() - start) / 250
        print(f"{name:40s} after a training step {1e6 * in_loop / 250:7.1f} us   on its own {1e6 * alone:7.1f} us")


if __name__ == "__main__":
    main()

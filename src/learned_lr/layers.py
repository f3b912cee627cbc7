"""What a "layer" is, for the layer-wise gradient norms the policy reads.

One definition, used by the trainees the policy was trained on (``tasks.run``) and by the drop-in
``LearnedLR``: **a layer is a module that owns trainable parameters directly** (a Linear, a
Conv2d, a BatchNorm2d, a LayerNorm), numbered in ``model.named_modules()`` order; its weight and
bias together give one gradient norm.

Without the model only the optimizer's tensors are known, and tensors do not know their module.
Then a layer is guessed from the order of the param groups: a tensor of two or more dimensions
opens a layer and the 1-D tensor right after it (its bias) joins it. That guess equals the module
grouping for stacks of Linear / Conv layers with biases (the MNIST MLP), but not where 1-D
tensors stand alone (normalization layers: ResNet-18, Transformers), so ``layer_index`` reports
when the guess may differ, and ``LearnedLR`` then warns once, naming ``model=``.

Example:
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    >>> layer_index(list(model.parameters()), model)
    ([0, 0, 1, 1], True)
    >>> layer_index(list(model.parameters()))   # the guess from the order, which is sure here
    ([0, 0, 1, 1], True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


def module_layers(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """(name, trainable parameters) of every module owning trainable parameters, in model order."""
    layers = []
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if own:
            layers.append((name, own))
    return layers


def layer_index(params: Sequence[torch.Tensor], model: nn.Module | None = None) -> tuple[list[int], bool]:
    """The layer of each of ``params`` (numbered 0..L-1 in order of first appearance), and whether it is sure.

    With ``model``: the module owning each parameter (``module_layers``); a parameter the model
    does not own is a layer of its own, and the grouping is sure. Without it: the guess from the
    order (see the module docstring), sure only when every 1-D tensor follows a tensor of two or
    more dimensions.
    """
    if model is not None:
        owner = {id(p): i for i, (_, own) in enumerate(module_layers(model)) for p in own}
        keys = [owner.get(id(p), ("own", k)) for k, p in enumerate(params)]
    else:
        keys, layer, previous_was_matrix, sure = [], -1, False, True
        for p in params:
            if p.dim() >= 2 or not previous_was_matrix:
                layer += 1
                sure = sure and p.dim() >= 2
            keys.append(layer)
            previous_was_matrix = p.dim() >= 2
    dense: dict = {}
    layer_of = [dense.setdefault(key, len(dense)) for key in keys]
    return layer_of, (model is not None or sure)


def momentum_buffer(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> torch.Tensor | None:
    """The optimizer's running gradient average for ``param``: SGD's ``momentum_buffer``, Adam's
    and AdamW's ``exp_avg``; None before the first step or for an optimizer that keeps neither."""
    state = optimizer.state.get(param)
    if not state:
        return None
    buffer = state.get("momentum_buffer")
    if buffer is None:
        buffer = state.get("exp_avg")
    return buffer if isinstance(buffer, torch.Tensor) and buffer.shape == param.shape else None


def layer_momentum_cosines(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor], layer_of: Sequence[int],
                           num_layers: int) -> tuple[float, ...]:
    """Per layer, the cosine between this step's gradient and the optimizer's momentum (before the step).

    The sign of the hypergradient (Baydin et al., 2018): a gradient that keeps pointing where the
    momentum points says the LR is too small to make progress across steps; one that points
    against it says the last steps overshot. It needs no extra memory (the optimizer keeps the
    buffer). NaN for a layer with no gradient or no buffer yet (the first step).

    Example:
        >>> layer = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
        >>> for _ in range(2):
        ...     opt.zero_grad(); layer(torch.ones(1, 2)).sum().backward()
        ...     cosines = layer_momentum_cosines(opt, list(layer.parameters()), [0, 0], 1); opt.step()
        >>> round(cosines[0], 4)   # the same gradient twice: aligned
        1.0
    """
    dots, grad_squares, buffer_squares = [0.0] * num_layers, [0.0] * num_layers, [0.0] * num_layers
    seen = [False] * num_layers
    with torch.no_grad():
        for layer, p in zip(layer_of, params):
            buffer = momentum_buffer(optimizer, p)
            if p.grad is None or buffer is None:
                continue
            grad, buffer = p.grad.reshape(-1).float(), buffer.reshape(-1).float()
            dot, gg, bb = torch.stack([torch.dot(grad, buffer), torch.dot(grad, grad), torch.dot(buffer, buffer)]).tolist()
            dots[layer] += dot
            grad_squares[layer] += gg
            buffer_squares[layer] += bb
            seen[layer] = True
    return tuple(d / math.sqrt(g * b) if s and g > 0 and b > 0 else math.nan
                 for d, g, b, s in zip(dots, grad_squares, buffer_squares, seen))


# A layer's distance from its initial weights is measured on at most this many elements of each
# parameter tensor, the same ones every step: an estimate of the whole tensor's (on the MNIST MLP's
# first layer within 3% over a run; exact for every smaller tensor;
# ``tests/test_momentum_features.py``) that keeps a 64 KB copy per tensor where the exact one needs
# a copy of every weight. (It is not much faster on a small CPU model: there the few tensor ops
# cost ~10% of an MLP step whatever their size, ``benchmarks/op_latency_in_loop.py``.)
DISTANCE_SAMPLE = 16384


def distance_sample(numel: int) -> torch.Tensor | None:
    """The flat indices that the distance of a tensor with ``numel`` elements is measured on: None (all
    of them) up to ``DISTANCE_SAMPLE``, else that many drawn uniformly with replacement, sorted, by a
    generator seeded with ``numel`` (so ``LearnedLR`` and every trainee runner read the same elements)."""
    if numel <= DISTANCE_SAMPLE:
        return None
    generator = torch.Generator().manual_seed(numel)
    return torch.randint(numel, (DISTANCE_SAMPLE,), generator=generator).sort().values


def sampled_elements(tensor: torch.Tensor, index: torch.Tensor | None, stacked: bool = False) -> torch.Tensor:
    """The elements of ``tensor`` at the flat ``index`` (all if None): (n,), or (runs, n) per run for weights stacked along dim 0."""
    flat = tensor.detach().reshape(tensor.shape[0], -1) if stacked else tensor.detach().reshape(-1)
    return flat if index is None else flat.index_select(-1, index)


@dataclass
class InitialWeights:
    """Where a run's weights started, as ``layer_init_distances`` reads it: each tensor's sampled elements.

    ``index[k]``: the flat indices into tensor k (``distance_sample``; per run for stacked weights),
    None for all; ``values[k]``: those elements at the start, (n,) or (runs, n); ``scale[k]``: the
    tensor's elements / n, so a sampled sum of squares estimates the whole tensor's; ``squares[k]``:
    scale x the squared norm of ``values[k]`` (a float, or (runs,) float64 for stacked weights).
    """

    index: list[torch.Tensor | None]
    values: list[torch.Tensor]
    scale: list[float]
    squares: list

    @classmethod
    def of(cls, params: Sequence[torch.Tensor], stacked: bool = False, index: Sequence[torch.Tensor | None] | None = None) -> "InitialWeights":
        """Copy the sampled elements of ``params`` now (``index``: each tensor's own, default ``distance_sample``)."""
        sizes = [p[0].numel() if stacked else p.numel() for p in params]
        chosen = list(index) if index is not None else [distance_sample(n) for n in sizes]
        chosen = [None if i is None else i.to(p.device) for i, p in zip(chosen, params)]
        with torch.no_grad():
            values = [sampled_elements(p, i, stacked).clone() for p, i in zip(params, chosen)]
        scale = [1.0 if i is None else n / len(i) for n, i in zip(sizes, chosen)]
        return cls(chosen, [], scale, []).with_values(values, stacked)

    def with_values(self, values: Sequence[torch.Tensor], stacked: bool = False) -> "InitialWeights":
        """The same sample with other starting ``values`` (e.g. restored from a state), their squares recomputed."""
        with torch.no_grad():
            squares = [s * v.double().square().sum(-1) for s, v in zip(self.scale, values)]
        return InitialWeights(self.index, list(values), self.scale, squares if stacked else [float(q) for q in squares])


def layer_init_distances(params: Sequence[torch.Tensor], initial: InitialWeights, layer_of: Sequence[int],
                         num_layers: int) -> tuple[float, ...]:
    """Per layer, how far its weights have moved from where the run started, relative to their size there:
    |w_l - w_l,init| / |w_l,init| (NaN for a layer that started at zero, LoRA's B matrices: relative to a size of
    zero it is undefined; inf for weights that blew up), measured on each tensor's sampled elements
    (``DISTANCE_SAMPLE``; exact for smaller tensors).

    What DoG and D-Adaptation estimate a step size from: a run whose LR is too low for its model
    has barely left its initialization after many steps, one whose LR is too high has left it far
    behind, whatever the model (``benchmarks/lr_scale_signals.py``).

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0])); start = InitialWeights.of([w])
        >>> with torch.no_grad():
        ...     w += torch.tensor([0.3, 0.4])
        >>> round(layer_init_distances([w], start, [0], 1)[0], 4)
        0.1
    """
    moved, start = [0.0] * num_layers, [0.0] * num_layers
    with torch.no_grad():
        for layer, p, index, p0, scale, square in zip(layer_of, params, initial.index, initial.values, initial.scale, initial.squares):
            # torch.dot of the flat difference: on a CPU it runs on the calling thread for these sizes,
            # where a norm kernel wakes helper threads that compete with the training step (3x the time).
            diff = sampled_elements(p, index) - p0
            diff = diff if diff.dtype in (torch.float32, torch.float64) else diff.float()
            moved[layer] += scale * torch.dot(diff, diff).item()
            start[layer] += square
    return tuple((math.sqrt(m / s) if math.isfinite(m) else math.inf) if s > 0 else math.nan for m, s in zip(moved, start))

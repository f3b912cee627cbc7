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


def layer_init_distances(params: Sequence[torch.Tensor], initial: Sequence[torch.Tensor], layer_of: Sequence[int],
                         num_layers: int, initial_squares: Sequence[float] | None = None) -> tuple[float, ...]:
    """Per layer, how far its weights have moved from where the run started, relative to their size there:
    |w_l - w_l,init| / |w_l,init| (inf for a layer that started at zero and moved, 0 if it has not moved).

    What DoG and D-Adaptation estimate a step size from: a run whose LR is too low for its model
    has barely left its initialization after many steps, one whose LR is too high has left it far
    behind, whatever the model (``benchmarks/lr_scale_signals.py``). It needs a copy of the
    initial weights; ``initial_squares`` (each initial tensor's squared norm, ``squared_norms``)
    saves recomputing them every step.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0])); start = w.detach().clone()
        >>> with torch.no_grad():
        ...     w += torch.tensor([0.3, 0.4])
        >>> round(layer_init_distances([w], [start], [0], 1)[0], 4)
        0.1
    """
    squares = initial_squares if initial_squares is not None else squared_norms(initial)
    moved, start = [0.0] * num_layers, [0.0] * num_layers
    with torch.no_grad():
        for layer, p, p0, square in zip(layer_of, params, initial, squares):
            # torch.dot of the flat difference: on a CPU it runs on the calling thread for these sizes,
            # where a norm kernel wakes helper threads that compete with the training step (3x the time).
            diff = (p.detach() - p0).reshape(-1)
            diff = diff if diff.dtype in (torch.float32, torch.float64) else diff.float()
            moved[layer] += torch.dot(diff, diff).item()
            start[layer] += square
    return tuple(math.sqrt(m / s) if s > 0 else (0.0 if m == 0 else math.inf) for m, s in zip(moved, start))


def squared_norms(tensors: Sequence[torch.Tensor]) -> list[float]:
    """Each tensor's squared L2 norm (float64 accumulation), e.g. the initial weights' for ``layer_init_distances``."""
    with torch.no_grad():
        return [float(t.detach().double().square().sum()) for t in tensors]

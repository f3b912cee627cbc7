"""The trainee models: MLPs, ResNet-18 and a small CNN for MNIST, a 1-D CNN and a 1-D ResNet, a character Transformer,
and SmolLM2-135M with LoRA adapters (``tasks.llm.model.lora_trainee``). The MLPs and the two small CNNs
take batch norm on request (``TaskConfig.batch_norm``); the layer before each norm keeps its bias (redundant
under the norm's shift, kept so that every weight is the same random draw with or without batch norm).

Example:
    >>> model = build_model(TaskConfig(task="mnist-resnet18", width=16))  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn

from learned_lr.tasks.config import TaskConfig


def _normalized(features: int, batch_norm: bool, dims: int) -> nn.Module:
    """A batch norm over ``features`` channels (1-D: per feature or per channel of a sequence; 2-D: of an image), or nothing."""
    if not batch_norm:
        return nn.Identity()
    return nn.BatchNorm1d(features) if dims == 1 else nn.BatchNorm2d(features)


class MLP(nn.Module):
    """in-H-...-H-out with ``hidden_layers`` ReLU hidden layers of ``hidden`` units: 784-H-10 for MNIST with one.

    The Linear layers are ``fc1`` ... ``fc<hidden_layers + 1>``, created (and so initialized) in that order.
    ``batch_norm``: each hidden Linear is followed by ``bn<i>`` (batch norm, before the ReLU). Batch norm draws
    no random numbers at creation, so the Linear weights are the same draws with or without it.
    """

    def __init__(self, hidden: int = 256, in_features: int = 784, classes: int = 10, hidden_layers: int = 1,
                 batch_norm: bool = False):
        super().__init__()
        sizes = [in_features] + [hidden] * hidden_layers + [classes]
        self.linears = len(sizes) - 1
        for index in range(self.linears):
            self.add_module(f"fc{index + 1}", nn.Linear(sizes[index], sizes[index + 1]))
            if batch_norm and index < self.linears - 1:
                self.add_module(f"bn{index + 1}", nn.BatchNorm1d(sizes[index + 1]))
        self.batch_norm = batch_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for index in range(1, self.linears):
            x = getattr(self, f"fc{index}")(x)
            if self.batch_norm:
                x = getattr(self, f"bn{index}")(x)
            x = torch.relu(x)
        return getattr(self, f"fc{self.linears}")(x)


class BasicBlock(nn.Module):
    """Two 3-wide convolutions with batch norm and an identity (or 1-wide projection) shortcut; 2-D (3x3) or 1-D."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dims: int = 2):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.conv1 = conv(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = _normalized(out_channels, True, dims)
        self.conv2 = conv(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = _normalized(out_channels, True, dims)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(conv(in_channels, out_channels, 1, stride, bias=False), _normalized(out_channels, True, dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (BasicBlock [2, 2, 2, 2]) with a 3x3 stem and no max-pool, for 1x28x28 inputs.

    ``width`` is the first stage's channel count (64 for the real ResNet-18; stages use
    width, 2w, 4w, 8w). Width 16 makes CPU runs affordable.
    """

    def __init__(self, width: int = 64, in_channels: int = 1, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, channels = [], width
        for stage, out_channels in enumerate([width, 2 * width, 4 * width, 8 * width]):
            stride = 1 if stage == 0 else 2
            stages.append(nn.Sequential(BasicBlock(channels, out_channels, stride), BasicBlock(out_channels, out_channels, 1)))
            channels = out_channels
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 1, 28, 28)
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1)
        return self.fc(out)


class ResNet1D(nn.Module):
    """A residual 1-D CNN with batch norm for MNIST-1D (the held-out ``mnist1d-resnet``): a width-5 stem, then
    three stages of one ``BasicBlock`` each (``width``, 2w, 4w channels; stride 1, 2, 2), average pooling, a linear head."""

    def __init__(self, width: int = 32, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv1d(1, width, 5, 1, 2, bias=False)
        self.bn1 = nn.BatchNorm1d(width)
        blocks, channels = [], width
        for stage, out_channels in enumerate([width, 2 * width, 4 * width]):
            blocks.append(BasicBlock(channels, out_channels, 1 if stage == 0 else 2, dims=1))
            channels = out_channels
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = self.layers(out)
        return self.fc(out.mean(-1))


class SmallCNN(nn.Module):
    """Two 3x3 conv layers (``width``, 2 x ``width`` channels, each ReLU + 2x2 max-pool) and a linear head, for 1x28x28.

    ``batch_norm``: a batch norm after each convolution, before its ReLU (``bn1``, ``bn2``).
    """

    def __init__(self, width: int = 32, classes: int = 10, batch_norm: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.bn1 = _normalized(width, batch_norm, dims=2)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.bn2 = _normalized(2 * width, batch_norm, dims=2)
        self.fc = nn.Linear(2 * width * 7 * 7, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x.view(-1, 1, 28, 28)))), 2)
        x = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(x.flatten(1))


class Conv1DNet(nn.Module):
    """MNIST-1D's CNN: three 1-D convolutions of ``width`` channels (ReLU, stride 2 after the first) and a linear head.

    ``batch_norm``: a batch norm after each convolution, before its ReLU (``bn1`` ... ``bn3``).
    """

    def __init__(self, width: int = 32, length: int = 40, classes: int = 10, batch_norm: bool = False):
        super().__init__()
        self.conv1 = nn.Conv1d(1, width, 5, stride=1, padding=2)
        self.bn1 = _normalized(width, batch_norm, dims=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.bn2 = _normalized(width, batch_norm, dims=1)
        self.conv3 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.bn3 = _normalized(width, batch_norm, dims=1)
        self.fc = nn.Linear(width * ((length + 3) // 4), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.relu(self.bn3(self.conv3(x)))
        return self.fc(x.flatten(1))


class CharTransformer(nn.Module):
    """A causal pre-norm Transformer over bytes: ``layers`` blocks of width ``width`` (4 heads), context ``context``.

    Returns next-byte logits (B, T, 256). Built from torch's ``TransformerEncoderLayer`` with a
    causal mask; learned position embeddings; no dropout (runs are short and seeded).
    """

    def __init__(self, width: int = 128, layers: int = 2, context: int = 128, vocab: int = 256):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Embedding(context, width)
        block = nn.TransformerEncoderLayer(width, nhead=4, dim_feedforward=4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        x = self.embed(tokens) + self.position.weight[:t]
        x = self.blocks(x, mask=self.causal[:t, :t], is_causal=True)
        return self.head(self.norm(x))


# (in_features, outputs) of the MLP tasks.
MLP_SHAPES = {"mnist-mlp": (784, 10), "digits": (64, 10), "diabetes": (10, 1)}


def build_model(task: TaskConfig, seed: int) -> nn.Module:
    """The task's model with weights initialized from ``seed`` (the global RNG is left untouched), its weight
    matrices and kernels times ``task.init_scale``, its last linear layer at zero if ``task.zero_head``."""
    model = _initialized_model(task, seed)
    if task.init_scale != 1.0:
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() >= 2 and param.requires_grad:  # not biases or norm gains; not llm-lora's frozen base
                    param.mul_(task.init_scale)
    if task.zero_head:
        head = [module for module in model.modules() if isinstance(module, nn.Linear)][-1]
        with torch.no_grad():
            for param in head.parameters():
                param.zero_()
    return model


def _initialized_model(task: TaskConfig, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if task.task in MLP_SHAPES:
            return MLP(task.hidden, *MLP_SHAPES[task.task], hidden_layers=task.mlp_layers, batch_norm=task.batch_norm)
        if task.task == "mnist-resnet18":
            return ResNet18(task.width)
        if task.task == "mnist-cnn":
            return SmallCNN(task.width, batch_norm=task.batch_norm)
        if task.task == "mnist1d":
            return Conv1DNet(task.width, batch_norm=task.batch_norm)
        if task.task == "mnist1d-resnet":
            return ResNet1D(task.width)
        if task.task == "char-lm":
            return CharTransformer(task.width, task.lm_layers, task.lm_context)
        if task.task == "llm-lora":
            from learned_lr.tasks.llm.model import lora_trainee  # the llm extra, imported only when used

            return lora_trainee(task.lora_rank, seed)
    raise ValueError(f"unknown task {task.task!r}")  # unreachable: TaskConfig validates the name

"""The trainee models: a 2-layer MLP and ResNet-18 for 1x28x28 MNIST.

Example:
    >>> model = build_model(TaskConfig(task="mnist-resnet18", width=16))  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn

from learned_lr.tasks.config import TaskConfig


class MLP(nn.Module):
    """784-H-10 with one ReLU hidden layer (two Linear layers)."""

    def __init__(self, hidden: int = 256, in_features: int = 784, classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

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


def build_model(task: TaskConfig, seed: int) -> nn.Module:
    """The task's model with weights initialized from ``seed`` (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if task.task == "mnist-mlp":
            return MLP(task.hidden)
        if task.task == "mnist-resnet18":
            return ResNet18(task.width)
    raise ValueError(f"unknown task {task.task!r}")  # unreachable: TaskConfig validates the name

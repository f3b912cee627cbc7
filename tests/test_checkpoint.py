"""Checkpoint files: equal tensors stored once, restored as separate copies; bad alias maps refused by name."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from learned_lr.checkpoint import ALIASES_VERSION, FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from learned_lr.files import file_sha256


def test_equal_tensors_are_stored_once_and_load_back_as_separate_copies(tmp_path):
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(64, 64, generator=generator)
    half = torch.randn(32, generator=generator).to(torch.bfloat16)
    tensors = {"a.weight": weight, "b.weight": weight.clone(), "c.weight": weight,  # c shares a's storage (a tied member)
               "d.weight": torch.randn(64, 64, generator=generator), "a.half": half, "b.half": half.clone(),
               "a.zero": torch.zeros(3), "b.negative_zero": -torch.zeros(3)}  # equal as numbers, not bit for bit
    save_checkpoint(tmp_path / "shared.safetensors", tensors, {"note": 1})
    distinct = {k: v.clone() + i for i, (k, v) in enumerate(tensors.items())}
    save_checkpoint(tmp_path / "distinct.safetensors", distinct, {"note": 1})

    loaded, meta = load_checkpoint(tmp_path / "shared.safetensors")
    assert list(loaded) != [] and set(loaded) == set(tensors) and meta["version"] == ALIASES_VERSION and meta["note"] == 1
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name].view(torch.uint8), tensor.contiguous().view(torch.uint8))
    assert torch.signbit(loaded["b.negative_zero"]).all() and not torch.signbit(loaded["a.zero"]).any()
    # three 16 KiB matrices of four are copies: the file holds two
    shared_size, distinct_size = ((tmp_path / f"{n}.safetensors").stat().st_size for n in ("shared", "distinct"))
    assert shared_size < 0.6 * distinct_size
    # each name is its own tensor: an optimizer's in-place update of one must not reach the others
    loaded["b.weight"].add_(1.0)
    assert torch.equal(loaded["a.weight"], weight) and torch.equal(loaded["c.weight"], weight)
    _, distinct_meta = load_checkpoint(tmp_path / "distinct.safetensors")
    assert distinct_meta["version"] == FORMAT_VERSION  # nothing repeated: the format an older learned-lr reads


@pytest.mark.parametrize("aliases, message", [
    ({"b": "missing"}, "does not name one stored tensor"),
    ({"a": "a"}, "does not name one stored tensor"),
    ({"b": 3}, "must map tensor names to tensor names"),
    (["b", "a"], "must map tensor names to tensor names"),
])
def test_a_bad_alias_map_is_refused_by_name(tmp_path, aliases, message):
    document = json.dumps({"format": "learned-lr", "version": ALIASES_VERSION, "kind": "checkpoint", "tensor_aliases": aliases})
    save_file({"a": torch.zeros(2)}, str(tmp_path / "bad.safetensors"), metadata={"learned_lr": document})
    with pytest.raises(CheckpointError, match=message) as error:
        load_checkpoint(tmp_path / "bad.safetensors")
    assert "bad.safetensors" in str(error.value)


def test_a_saved_file_is_the_same_bytes_every_time_and_its_aliases_stay_out_of_the_metadata(tmp_path):
    # Two metadata entries would be written in an order that changes from call to call (a Rust hash map), and the
    # resumable commands compare files by their SHA-256: a rerun would see "other demonstrations" and train again.
    weight = torch.arange(6.0)
    digests = set()
    for attempt in range(6):
        save_checkpoint(tmp_path / f"{attempt}.safetensors", {"a": weight, "b": weight.clone(), "c": torch.ones(2)}, {"note": 1, "other": 2})
        digests.add(file_sha256(tmp_path / f"{attempt}.safetensors"))
    assert len(digests) == 1
    tensors, meta = load_checkpoint(tmp_path / "0.safetensors")
    assert "tensor_aliases" not in meta and meta["note"] == 1 and torch.equal(tensors["b"], weight)
    with pytest.raises(ValueError, match="tensor_aliases"):
        save_checkpoint(tmp_path / "x.safetensors", {"a": weight}, {"tensor_aliases": {}})


def test_a_file_of_an_unknown_version_is_refused_and_version_1_still_loads(tmp_path):
    for version in (FORMAT_VERSION, 3):
        document = json.dumps({"format": "learned-lr", "version": version, "kind": "checkpoint", "note": 2})
        save_file({"a": torch.ones(2), "b": torch.ones(2)}, str(tmp_path / f"v{version}.safetensors"), metadata={"learned_lr": document})
    tensors, meta = load_checkpoint(tmp_path / "v1.safetensors")
    assert meta["note"] == 2 and torch.equal(tensors["b"], torch.ones(2))
    with pytest.raises(CheckpointError, match="format version 3"):
        load_checkpoint(tmp_path / "v3.safetensors")

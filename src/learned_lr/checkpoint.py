"""Checkpoints: safetensors for every tensor, JSON for everything else. Never pickle.

A checkpoint is one ``.safetensors`` file whose metadata holds a JSON document (format tag,
version, configs, training counters), so weights and config are written in one atomic rename
and cannot drift apart. A readable copy of that JSON is written beside it for people; loading
reads only the safetensors file. Loading checks the format tag and tensor shapes and raises
``CheckpointError`` naming the file on anything missing, truncated, corrupt or foreign;
nothing in this path can execute code (safetensors holds raw tensor bytes only).

Tensors equal bit for bit are stored once: the bundled policies list an actor several times to weigh it
(``EnsembleActor.tie_equal_members``), and a structure gate's two sides share actors, so most of their tensors
repeat. The copies' names are listed in the JSON document (``tensor_aliases``: copy -> stored name; one metadata
entry, so the file's bytes do not depend on the order safetensors writes its metadata map in) and restored, each as
its own tensor, on load, where the key is taken out of the returned metadata. A file with aliases is format version
2, which an older learned-lr refuses by name rather than reading as an actor with missing weights; one without is
version 1, as before.

Example:
    >>> save_checkpoint("run/policy.safetensors", {"w": torch.zeros(2)}, {"epoch": 3})   # doctest: +SKIP
    >>> tensors, meta = load_checkpoint("run/policy.safetensors")
    >>> meta["epoch"]
    3
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

FORMAT_TAG = "learned-lr"
FORMAT_VERSION = 1  # a file without aliases
ALIASES_VERSION = 2  # a file whose equal tensors are stored once
_META_KEY = "learned_lr"
_ALIASES_KEY = "tensor_aliases"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or not a learned-lr checkpoint of the expected kind."""


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], kind: str = "checkpoint") -> None:
    """Write ``tensors`` and JSON-able ``meta`` atomically to ``path`` (and ``path`` with .json for people)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _ALIASES_KEY in meta:
        raise ValueError(f"'{_ALIASES_KEY}' is the checkpoint's own key; drop it from the metadata to save")
    stored, aliases = _store_equal_tensors_once(tensors)
    document = {"format": FORMAT_TAG, "version": ALIASES_VERSION if aliases else FORMAT_VERSION, "kind": kind, **meta,
                **({_ALIASES_KEY: aliases} if aliases else {})}
    text = json.dumps(document)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # one metadata entry: safetensors writes a map of several in an order that changes from call to call
    save_file(stored, str(tmp), metadata={_META_KEY: text})
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    readable = path.with_suffix(".json")
    tmp_json = readable.with_name(f".{readable.name}.{os.getpid()}.tmp")
    # the people's copy leaves the aliases out (a storage detail, hundreds of lines for an ensemble)
    tmp_json.write_text(json.dumps({k: v for k, v in document.items() if k != _ALIASES_KEY}, indent=2) + "\n")
    os.replace(tmp_json, readable)


def _store_equal_tensors_once(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(the tensors to write, {copy's name: the stored tensor's name}): a tensor equal bit for bit (dtype, shape and
    bytes) to one stored earlier is written as an alias. This also covers tensors that share storage (an ensemble's
    tied members), which safetensors refuses to write under two names."""
    stored: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first_of: dict[tuple[str, tuple[int, ...], str], str] = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().contiguous().cpu()
        raw = tensor.reshape(-1).view(torch.uint8).numpy()  # the bytes of any dtype, bfloat16 included, without a copy
        key = (str(tensor.dtype), tuple(tensor.shape), hashlib.sha256(raw).hexdigest())
        if key in first_of:
            aliases[name] = first_of[key]
        else:
            first_of[key] = name
            stored[name] = tensor
    return stored, aliases


def _restore_aliases(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Add each alias's tensor (a copy of the stored one, so that no two names share memory) to ``tensors``, taking the
    aliases out of ``meta``."""
    aliases = meta.pop(_ALIASES_KEY, {})
    if not (isinstance(aliases, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in aliases.items())):
        raise CheckpointError(f"checkpoint {path}: its aliases must map tensor names to tensor names")
    for copy_name, stored_name in aliases.items():
        if copy_name in tensors or stored_name not in tensors:
            raise CheckpointError(f"checkpoint {path}: alias {copy_name!r} -> {stored_name!r} does not name one stored tensor")
    for copy_name, stored_name in aliases.items():
        tensors[copy_name] = tensors[stored_name].clone()


def load_checkpoint(path: str | Path, kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, meta) from ``path``; ``CheckpointError`` naming the file if it is not a valid one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({exc})") from exc
    if _META_KEY not in metadata:
        raise CheckpointError(f"{path} is a safetensors file but not a learned-lr checkpoint (no '{_META_KEY}' metadata)")
    try:
        meta = json.loads(metadata[_META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {path} has unreadable metadata ({exc})") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has metadata that is a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT_TAG:
        raise CheckpointError(f"{path} is not a learned-lr checkpoint (format {meta.get('format')!r})")
    if meta.get("version") not in (FORMAT_VERSION, ALIASES_VERSION):
        raise CheckpointError(f"{path} has format version {meta.get('version')}; this learned-lr reads versions "
                              f"{FORMAT_VERSION} and {ALIASES_VERSION}")
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {meta.get('kind')!r}, expected a {kind!r}")
    _restore_aliases(path, tensors, meta)
    return tensors, meta


def flatten_state(state: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor inside a nested state (e.g. an optimizer's state_dict) by a reference,
    moving the tensor into ``tensors``; what is left is JSON-able."""
    if isinstance(state, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = state
        return {"__tensor__": key}
    if isinstance(state, dict):
        if not all(isinstance(k, (str, int)) for k in state):
            raise TypeError(f"cannot store dict keys {list(state)[:3]} in a checkpoint")
        return {"__dict__": [[k, flatten_state(v, f"{prefix}.{k}", tensors)] for k, v in state.items()]}
    if isinstance(state, (list, tuple)):
        return [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(state)]
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    raise TypeError(f"cannot store {type(state).__name__} in a checkpoint")


def unflatten_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of ``flatten_state``."""
    if isinstance(tree, dict) and "__tensor__" in tree:
        return tensors[tree["__tensor__"]]
    if isinstance(tree, dict) and "__dict__" in tree:
        return {k: unflatten_state(v, tensors) for k, v in tree["__dict__"]}
    if isinstance(tree, list):
        return [unflatten_state(v, tensors) for v in tree]
    return tree


def load_module_weights(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: str | Path) -> None:
    """Load ``prefix.*`` tensors into ``module`` strictly; a mismatch names the file and the keys."""
    own = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(own))
    unexpected = sorted(set(own) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(own) if expected[k].shape != own[k].shape)
    if missing or unexpected or wrong_shape:
        raise CheckpointError(
            f"checkpoint {path} does not fit the {prefix} network: missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong_shape[:3]}"
        )
    module.load_state_dict(own)

"""Small, atomic file writers: a crash mid-write never leaves a half-written file behind."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _json_safe(value: Any) -> Any:
    # JSON has no NaN/inf: write them as null so every reader can parse the file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def remove_stale_partial_files(folder: str | Path) -> int:
    """Delete the partial files (``.NAME.PID.tmp``) that writers killed mid-write left under ``folder``.

    Only files whose writing process is gone are removed, so a live writer's file is never
    touched. Returns the bytes freed (a killed checkpoint save can leave hundreds of MB).
    """
    freed = 0
    for path in Path(folder).rglob(".*.tmp"):
        match = re.fullmatch(r"\..+\.(\d+)\.tmp", path.name)
        if not match or not path.is_file():
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or _process_alive(pid):
            continue
        try:
            size = path.stat().st_size
            path.unlink()
            freed += size
        except OSError:
            pass  # removed meanwhile, or not ours to remove: leave it
    return freed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def write_json(path: str | Path, data: Any) -> None:
    _atomic_write_text(Path(path), json.dumps(_json_safe(data), indent=2) + "\n")


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def write_text(path: str | Path, text: str) -> None:
    _atomic_write_text(Path(path), text)


def slug(label: str) -> str:
    """A file-name-safe form of a label: 'BC (bundled)' -> 'bc-bundled'."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes: identifies a checkpoint, so a result saved for it goes stale when it changes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_saved(path: str | Path, setting: dict) -> dict | None:
    """What ``write_json`` saved at ``path`` if its ``"setting"`` equals ``setting``, else None
    (missing, unreadable, or written for another setting): how resumable commands find their
    finished work."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) and saved.get("setting") == setting else None


def saved_or_computed(path: str | Path, setting: dict, compute: Callable[[], dict]) -> dict:
    """The result saved at ``path`` for exactly ``setting``, else ``compute()``, saved there with its setting.

    The one result cache of the resumable commands (``evaluate``, ``robustness``): a result is
    reused only for the same setting (which names policies by their SHA-256), never for another.
    JSON has no NaN or inf: such values come back as None from a saved result.
    """
    saved = read_saved(path, setting)
    if saved is not None and "result" in saved:
        return saved["result"]
    result = compute()
    write_json(path, {"setting": setting, "result": result})
    return result

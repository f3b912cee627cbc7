"""Small, atomic file writers: a crash mid-write never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence


class FolderInUseError(RuntimeError):
    """Another process holds the folder's lock (``folder_lock``)."""

    def __init__(self, folder: Path, owner: str):
        super().__init__(f"another learned-lr run (pid {owner}) is using the folder {folder}; wait for it to finish or choose another folder")
        self.folder, self.owner = folder, owner


# The folder locks this process holds: resolved folder -> [open lock file, how many holders].
_HELD_LOCKS: dict[Path, list] = {}


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created if missing) while the block runs.

    Two runs writing one folder would mix or lose each other's results (two demonstration
    collections mixing their runs, two BC fits overwriting one policy), so a second process stops
    at once with ``FolderInUseError`` naming the holder's PID. The lock is an ``flock`` on
    ``FOLDER/.learned-lr.lock``: the OS releases it when the process ends, however it ends, so a
    killed run never leaves a folder locked. It is re-entrant within a process (the command
    holds it, and the stage it calls takes it again). Once taken, the partial files a killed run
    left there are removed (``remove_stale_partial_files``). Where ``fcntl`` is missing (Windows)
    nothing is locked.

    Example:
        >>> with folder_lock("runs/bc"):                                    # doctest: +SKIP
        ...     train_bc(config)
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    key = Path(folder).resolve()
    if key in _HELD_LOCKS:
        _HELD_LOCKS[key][1] += 1
    else:
        key.mkdir(parents=True, exist_ok=True)
        handle = open(key / ".learned-lr.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise FolderInUseError(Path(folder), owner) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        _HELD_LOCKS[key] = [handle, 1]
        freed = remove_stale_partial_files(key)  # no other run writes here now
        if freed:
            print(f"removed {freed / 1e6:.1f} MB of partial files left in {folder} by a killed run")
    try:
        yield
    finally:
        _HELD_LOCKS[key][1] -= 1
        if _HELD_LOCKS[key][1] == 0:
            _HELD_LOCKS.pop(key)[0].close()


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

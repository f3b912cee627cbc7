"""How the ``learned-lr`` command turns config dataclasses into flags, and flags back into configs.

One --flag per dataclass field (nested config dataclasses contribute their fields flat), with the
field's help text and default; floats must be finite; a bad value is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import typing
from pathlib import Path
from typing import Any, Callable, Iterator

from learned_lr.files import FolderInUseError, folder_lock
from learned_lr.settings import ConfigError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr (no usage block) and exit code 2."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)  # argparse: "argument --flag: invalid finite number value: 'inf'"
    return value


_finite_float.__name__ = "finite number"


def _flag_type(annotation: Any) -> Callable[[str], Any]:
    text = str(annotation)
    if "float" in text:
        return _finite_float
    if "int" in text:
        return int
    return str


def add_dataclass_flags(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """One --flag per field; nested config dataclasses contribute their fields flat."""
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        if dataclasses.is_dataclass(hints[f.name]):
            add_dataclass_flags(parser, hints[f.name])
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        # argparse %-formats help strings, so a literal % (as in "95% CI") must be doubled.
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%")}
        if hints[f.name] is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _flag_type(hints[f.name])
            kwargs["metavar"] = "FLOAT" if kwargs["type"] is _finite_float else kwargs["type"].__name__.upper()
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
                kwargs["metavar"] = "{" + ",".join(f.metadata["choices"]) + "}"
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **kwargs)


def build_config(config_cls: type, values: dict[str, Any]):
    """Instantiate ``config_cls`` (and its nested configs) from parsed flag values."""
    hints = typing.get_type_hints(config_cls)
    kwargs = {}
    for f in dataclasses.fields(config_cls):
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = build_config(hints[f.name], values)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return config_cls(**kwargs)


def check_output_folders(config: Any) -> None:
    """Every folder a command writes (``out``, ``work``) is made and written to now, before any work:
    a bad path fails in one line at once, not with a traceback after an hour of training."""
    for name in ("out", "work"):
        folder = getattr(config, name, None)
        if not folder:
            continue
        probe = Path(folder) / f".learned-lr-write-test-{os.getpid()}"
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(name, f"cannot write to the folder {folder} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def folder_locks(config: Any) -> Iterator[None]:
    """Hold ``files.folder_lock`` on each folder the command writes (``out``, ``work``) while it runs.

    A second command on a folder in use stops at once with one line naming the holder's PID (two
    ``collect`` runs would mix their demonstrations; of two ``bc`` runs one result would be lost).
    """
    with contextlib.ExitStack() as locks:
        for name in ("out", "work"):
            folder = getattr(config, name, None)
            if not folder:
                continue
            try:
                locks.enter_context(folder_lock(folder))
            except FolderInUseError as error:
                raise ConfigError(name, f"another learned-lr command (pid {error.owner}) is using the folder {folder}; "
                                        f"wait for it to finish or choose another --{name}") from None
        yield
